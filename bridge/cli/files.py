"""``bridge files list`` and ``bridge files show NAME``: the sales report files a files
source has read, for support: per file its size, documents, accruals owed and made, and
the lines kept out (``file:line:field: message``)."""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import FAILURE, OK, USAGE, fail, out, print_json, print_table, short_time
from bridge.logs import configure_logging
from bridge.settings_loader import LoadedSettings
from bridge.store import Store
from bridge.store.customer_records import CustomerRecord, RecordKind, customer_records_of
from bridge.store.owed import owed_store_of

LISTED = 10_000  # files per system shown by list; a source takes a few a day


def register(commands: Commands) -> None:
    """Add ``files list`` and ``files show``."""
    group = add_command(
        commands,
        "files",
        "sales report files read by a files source (type: files), for support",
        "bridge files list --system shop",
        _no_subcommand,
    )
    sub = group.add_subparsers(dest="files_command", metavar="SUBCOMMAND")
    listing = add_command(
        sub,
        "list",
        "every file read: status, size, documents, accruals owed, bad lines",
        "bridge files list --system shop --json",
        run_list,
    )
    listing.add_argument("--system", help="only this files source")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = add_command(
        sub,
        "show",
        "one file by name: its counts, where its accruals are (done, pending, dead) and every"
        " line kept out as file:line:field: message",
        "bridge files show sales-2026-12-06.csv",
        run_show,
    )
    show.add_argument("name", help="the file's name as it was dropped")
    show.add_argument("--system", help="only this files source")
    show.add_argument("--json", action="store_true", help="print JSON")


def _no_subcommand(_args: argparse.Namespace) -> int:
    return fail("choose a subcommand: bridge files list | bridge files show NAME", USAGE)


def _sources(loaded: LoadedSettings, args: argparse.Namespace) -> list[str] | str:
    """The files systems asked about, or the problem with ``--system``."""
    names = sorted(n for n, s in loaded.settings.systems.items() if s.type == "files")
    if args.system is None:
        return names
    if args.system not in names:
        known = ", ".join(names) or "none"
        return f"--system: no files source is named {args.system!r}; files sources: {known}"
    return [args.system]


def run_list(args: argparse.Namespace) -> int:
    """Print every file read."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    systems = _sources(loaded, args)
    if isinstance(systems, str):
        return fail(systems, USAGE)
    configure_logging(loaded.settings.log)
    views = asyncio.run(with_store(loaded, lambda store: _files(store, systems, None)))
    if args.json:
        print_json(views)
        return OK
    rows = [
        (v["system"], v["name"], v["status"], v["size"], v["documents"], v["owed"],
         v["accruals"]["done"], v["accruals"]["dead"], v["owed_before"], v["bad_line_count"],
         short_time(v["updated_at"]))
        for v in views
    ]  # fmt: skip
    columns = [
        "SYSTEM", "FILE", "STATUS", "SIZE", "DOCS", "OWED", "ACCRUED", "DEAD", "SEEN BEFORE",
        "BAD", "UPDATED",
    ]  # fmt: skip
    print_table("Report files", columns, rows)
    return OK


def run_show(args: argparse.Namespace) -> int:
    """Print one file's counts, accruals and bad lines (each time it was dropped)."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    systems = _sources(loaded, args)
    if isinstance(systems, str):
        return fail(systems, USAGE)
    configure_logging(loaded.settings.log)
    views = asyncio.run(with_store(loaded, lambda store: _files(store, systems, args.name)))
    if not views:
        return fail(f"no file named {args.name!r} was read (bridge files list shows those read)")
    if args.json:
        print_json(views)
        return OK
    for view in views:
        _print(view)
    return OK


async def _files(store: Store, systems: list[str], name: str | None) -> list[dict[str, Any]]:
    records = customer_records_of(store)
    found: list[CustomerRecord] = []
    for system in systems:
        found += await records.list_records(RecordKind.REPORT_FILE, subject=system, limit=LISTED)
    views = [_view(r) for r in found if name is None or r.body.get("name") == name]
    owed = owed_store_of(store)
    for view in views:  # a source takes a few files a day: one look-up each is cheap
        calls = Counter(str(c.status) for c in await owed.owed_for(view["key"]))
        view["accruals"] = {s: calls.get(s, 0) for s in ("done", "pending", "in_flight", "dead")}
    return views


def _view(record: CustomerRecord) -> dict[str, Any]:
    body = record.body
    return {
        "key": record.key,
        "system": body.get("system"),
        "name": body.get("name"),
        "status": record.status,
        "size": body.get("size"),
        "documents": body.get("documents"),
        "owed": body.get("owed"),
        "owed_before": body.get("owed_before"),
        "bad_line_count": body.get("bad_line_count"),
        "bad_lines": list(body.get("bad_lines", [])),
        "moved_to": body.get("moved_to"),
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
    }


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _print(view: dict[str, Any]) -> None:
    out.print(f"file {view['name']} ({view['system']}): {view['status']}", markup=False)
    out.print(f"  key: {view['key']}; size {view['size']} bytes", markup=False)
    out.print(
        f"  documents: {view['documents']}; owed now: {view['owed']};"
        f" owed before by another file: {view['owed_before']}",
        markup=False,
    )
    acc = view["accruals"]
    out.print(
        f"  accruals: {acc['done']} done, {acc['pending'] + acc['in_flight']} pending,"
        f" {acc['dead']} dead (bridge status; bridge replay own_… after a fix)",
        markup=False,
    )
    if view["moved_to"]:
        out.print(f"  put aside as: {view['moved_to']}", markup=False)
    shown = view["bad_lines"]
    out.print(f"  bad lines: {view['bad_line_count']}", markup=False)
    for line in shown:
        out.print(f"    {line}", markup=False)
    if view["bad_line_count"] and len(shown) < view["bad_line_count"]:
        out.print(f"    … {view['bad_line_count'] - len(shown)} more not kept", markup=False)
    out.print(
        f"  read {short_time(view['created_at'])}, updated {short_time(view['updated_at'])}",
        markup=False,
    )
