"""``bridge check``: validate config.yaml (and, with connectors, their options)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bridge.cli.common import Commands, add_command
from bridge.cli.output import FAILURE, OK, err, out, print_json
from bridge.errors import SettingsError
from bridge.registry import build_connectors
from bridge.settings_loader import read_settings


def register(commands: Commands) -> None:
    """Add ``check``."""
    parser = add_command(
        commands,
        "check",
        "validate the config and report every problem with file and line",
        "bridge --config /etc/bridge/config.yaml check",
        run,
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit 0 when clean, 1 with every problem listed."""
    problems: list[str] = []
    summary = ""
    try:
        loaded = read_settings(Path(args.config))
    except SettingsError as exc:
        problems = exc.problems
    else:
        _connectors, found = build_connectors(loaded.settings)
        problems = [str(loaded.document.problem(p.path, p.message)) for p in found]
        s = loaded.settings
        summary = (
            f"{len(s.systems)} systems, {len(s.mirror.routes)} routes, {len(s.clients)} clients"
        )
    if args.json:
        print_json({"ok": not problems, "problems": problems, "summary": summary or None})
    elif problems:
        for problem in problems:
            err.print(problem, markup=False, highlight=False)
        err.print(f"{len(problems)} problem(s) in {args.config}", markup=False)
    else:
        out.print(f"{args.config}: OK ({summary})", markup=False)
    return FAILURE if problems else OK
