"""``bridge map``: what a mapping file makes of a sample document (a dry run, no systems)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bridge.cli.common import Commands, add_command
from bridge.cli.output import FAILURE, OK, USAGE, err, fail, out, print_json
from bridge.mapping import MappingFailed, inspect_mapping

EXAMPLE = """\
bridge map mappings/retailcrm_order_to_onec.yaml examples/retailcrm_order.json
bridge map mappings/onec_order_to_retailcrm.yaml examples/onec_order.json --edit   (a write-back)
bridge map mappings/onec_customer_to_retailcrm.yaml - < examples/onec_customer.json  (stdin)"""


def register(commands: Commands) -> None:
    """Add ``map``."""
    parser = add_command(
        commands,
        "map",
        "show what a mapping file makes of a sample source document, or every error",
        EXAMPLE,
        run,
    )
    parser.add_argument("mapping_file", metavar="MAPPING_FILE", help="the mapping (YAML)")
    parser.add_argument(
        "input_json",
        metavar="INPUT_JSON",
        help="the source entity as its system's API returns it (JSON object); - for stdin",
    )
    parser.add_argument(
        "--edit",
        action="store_true",
        help="map as a write to a target that already holds the entity: rules with"
        " `when: create` are left out (default: as the write that creates it)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object: ok, document, skipped, problems"
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when mapped or skipped, 1 when the mapping is wrong or fails, 2 on bad input."""
    mapping_file = Path(args.mapping_file)
    if not mapping_file.is_file():
        return fail(f"{mapping_file}: no such file", USAGE)
    source = read_input(args.input_json)
    if isinstance(source, str):
        return fail(source, USAGE)
    compiled = inspect_mapping(mapping_file)
    if compiled.mapping is None:
        return report(args, [str(p) for p in compiled.problems], f"in {mapping_file}")
    try:
        result = compiled.mapping.apply(source, creating=not args.edit)
    except MappingFailed as exc:
        return report(args, [str(exc)], f"mapping {args.input_json}")
    if args.json:
        body = {"ok": True, "document": result.document, "skipped": result.skipped}
        print_json({**body, "problems": []})
    elif result.skipped is not None:
        out.print(f"skipped: {result.skipped}", markup=False)
    else:
        print_json(result.document)
    return OK


def read_input(name: str) -> dict[str, Any] | str:
    """The sample document, or a message naming the file and what is wrong with it."""
    try:
        raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
    except OSError as exc:
        return f"{name}: cannot read: {exc.strerror or exc}"
    label = "stdin" if name == "-" else name
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return f"{label}: is not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"{label}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}"
    except RecursionError:
        return f"{label}: nested too deeply"
    if not isinstance(data, dict):
        kind = _JSON_KINDS.get(type(data), "a value")
        return f"{label}: must hold one JSON object (the source entity), not {kind}"
    return data


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}
_JSON_KINDS.update({bool: "true/false", type(None): "null"})


def report(args: argparse.Namespace, problems: list[str], where: str) -> int:
    """Print problems as ``bridge check`` does (or as JSON); exit 1."""
    if args.json:
        print_json({"ok": False, "document": None, "skipped": None, "problems": problems})
    else:
        for problem in problems:
            err.print(problem, markup=False, highlight=False)
        err.print(f"{len(problems)} problem(s) {where}", markup=False)
    return FAILURE
