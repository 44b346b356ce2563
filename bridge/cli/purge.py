"""``bridge purge``: delete finished events by hand, in batches, through the store.

Retention (``store.retention``) prunes ``done`` events by itself; ``dead`` and ``rejected``
ones wait for support and go only this way. An event with a delivery still waiting or in
flight is never deleted, whatever the flags say.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import FAILURE, OK, USAGE, fail, out, print_json, print_table, short_time
from bridge.filters import FilterError, parse_time
from bridge.mirror.retention import prune_all
from bridge.store import Store
from bridge.store.records import Prunable, Status
from bridge.store.retention import PRUNABLE
from bridge.views import iso


def register(commands: Commands) -> None:
    """Add ``purge``."""
    parser = add_command(
        commands,
        "purge",
        "delete finished events (done, dead or rejected) last changed before a time, with"
        " their deliveries and history, in small batches; never one still on its way",
        "bridge purge --status done --before 30d --dry-run\n"
        "bridge purge --status dead --status rejected --before 2026-01-01 --yes",
        run,
    )
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="done, dead or rejected (repeat for several)",
    )
    parser.add_argument(
        "--before",
        metavar="WHEN",
        help="last changed before: 30d / 12h / 90m ago, or ISO 8601 (UTC unless it says)",
    )
    parser.add_argument("--batch", type=int, default=500, help="events per transaction (500)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    parser.add_argument("--yes", action="store_true", help="do not ask before deleting")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _statuses(values: list[str] | None) -> list[Status] | str:
    """The statuses asked for, or what is wrong with them."""
    if not values:
        return "--status: give done, dead or rejected (repeat for several)"
    allowed = ", ".join(PRUNABLE)
    chosen: list[Status] = []
    for value in values:
        if value not in PRUNABLE:
            return (
                f"--status: {value!r} cannot be purged; one of {allowed} (others are on their way)"
            )
        if Status(value) not in chosen:
            chosen.append(Status(value))
    return chosen


def _before(text: str | None, now: float) -> float | str:
    """The moment asked for, or what is wrong with it."""
    if not text:
        return "--before: give a time, e.g. --before 30d (last changed more than 30 days ago)"
    try:
        before = parse_time("before", text, now)
    except FilterError as exc:
        return f"--{exc}"
    if before > now:
        return "--before: must not be in the future"
    return before


def _view(p: Prunable) -> dict[str, Any]:
    return {
        "status": str(p.status),
        "count": p.count,
        "oldest": iso(p.oldest_at),
        "newest": iso(p.newest_at),
    }


def run(args: argparse.Namespace) -> int:
    """Count, then (unless ``--dry-run``) delete, status by status."""
    now = time.time()
    statuses = _statuses(args.status)
    if isinstance(statuses, str):
        return fail(statuses, USAGE)
    before = _before(args.before, now)
    if isinstance(before, str):
        return fail(before, USAGE)
    if not 1 <= args.batch <= 5000:
        return fail("--batch: must be a whole number from 1 to 5000", USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE

    async def count(store: Store) -> list[Prunable]:
        return [await store.count_prunable(s, before) for s in statuses]

    plan = [_view(p) for p in asyncio.run(with_store(loaded, count))]
    total = sum(p["count"] for p in plan)
    if args.dry_run or not total:
        _report(plan, before, "would delete" if args.dry_run else "nothing to delete", args.json)
        return OK
    if not args.yes:
        if not sys.stdin.isatty():
            return fail(f"{total} events match; add --yes to delete them", USAGE)
        answer = input(f"Delete {total} events for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.print("Nothing deleted.")
            return FAILURE

    async def purge(store: Store) -> list[int]:
        return [await prune_all(store, s, before, args.batch) for s in statuses]

    deleted = asyncio.run(with_store(loaded, purge))
    for view, n in zip(plan, deleted, strict=True):
        view["deleted"] = n
    _report(plan, before, "deleted", args.json)
    return OK


def _report(plan: list[dict[str, Any]], before: float, verb: str, as_json: bool) -> None:
    if as_json:
        print_json({"before": iso(before), "dry_run": verb == "would delete", "statuses": plan})
        return
    print_table(
        f"Events last changed before {short_time(iso(before))} UTC: {verb}",
        ["STATUS", "EVENTS", "OLDEST CHANGE", "NEWEST CHANGE"],
        [
            (
                p["status"],
                p.get("deleted", p["count"]),
                short_time(p["oldest"]),
                short_time(p["newest"]),
            )
            for p in plan
        ],
    )
