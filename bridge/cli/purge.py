"""``bridge purge``: delete finished events, and finished records beside the log, by hand,
in batches, through the store.

Retention (``store.retention``) prunes ``done`` events, final reservations and SMS sends by
itself; ``dead`` and ``rejected`` events, and dead owed calls, wait for support and go only
this way. An event with a delivery still waiting or in flight, a reservation still open or
owing its master a call, and a dead call a reservation waits on are never deleted,
whatever the flags say.
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
from bridge.mirror.retention import prune_all, prune_all_records
from bridge.store import Store
from bridge.store.records import Prunable, Status
from bridge.store.retention import PRUNABLE, PrunableRecords, Records
from bridge.views import iso

# How recent a record may be purged by hand: as store.retention's floors (bridge.settings),
# since a till may retry a reservation (its Idempotency-Key) while a hold may live, and the
# per-phone SMS cap reads up to a day back.
FLOORS = {Records.RESERVATIONS: 7 * 86400.0, Records.SMS_SENDS: 86400.0}
KINDS = ", ".join(Records)


def register(commands: Commands) -> None:
    """Add ``purge``."""
    parser = add_command(
        commands,
        "purge",
        "delete finished events (done, dead or rejected) last changed before a time, with"
        " their deliveries and history, in small batches; never one still on its way. With"
        f" --records: finished records beside the log ({KINDS})",
        "bridge purge --records owed_dead --records reservations --before 90d --dry-run\n"
        "bridge purge --status dead --status rejected --before 2026-01-01 --yes\n"
        "bridge purge --status done --before 30d --dry-run",
        run,
    )
    parser.add_argument(
        "--status",
        action="append",
        metavar="STATUS",
        help="events: done, dead or rejected (repeat for several)",
    )
    parser.add_argument(
        "--records",
        action="append",
        metavar="KIND",
        help="reservations (final, owing nothing: with their history and owed calls),"
        " owed_done, owed_dead (dead owed calls no open reservation waits on), sms_sends,"
        " sandbox_messages (repeat for several)",
    )
    parser.add_argument(
        "--before",
        metavar="WHEN",
        help="last changed before: 30d / 12h / 90m ago, or ISO 8601 (UTC unless it says)",
    )
    parser.add_argument("--batch", type=int, default=500, help="rows per transaction (500)")
    parser.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    parser.add_argument("--yes", action="store_true", help="do not ask before deleting")
    parser.add_argument("--json", action="store_true", help="print JSON")


def _statuses(values: list[str] | None) -> list[Status] | str:
    """The statuses asked for, or what is wrong with them."""
    allowed = ", ".join(PRUNABLE)
    chosen: list[Status] = []
    for value in values or []:
        if value not in PRUNABLE:
            return (
                f"--status: {value!r} cannot be purged; one of {allowed} (others are on their way)"
            )
        if Status(value) not in chosen:
            chosen.append(Status(value))
    return chosen


def _kinds(values: list[str] | None, before: float, now: float) -> list[Records] | str:
    """The record kinds asked for, or what is wrong with them (or with ``--before``)."""
    chosen: list[Records] = []
    for value in values or []:
        if value not in set(Records):
            return f"--records: {value!r} is not one of {KINDS}"
        kind = Records(value)
        floor = FLOORS.get(kind)
        if floor is not None and before > now - floor:
            return (
                f"--before: {kind} are kept at least {floor / 86400:g}d"
                " (store.retention's limit); give an older time"
            )
        if kind not in chosen:
            chosen.append(kind)
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


def _view(p: Prunable | PrunableRecords) -> dict[str, Any]:
    what = {"status": str(p.status)} if isinstance(p, Prunable) else {"kind": str(p.kind)}
    return {**what, "count": p.count, "oldest": iso(p.oldest_at), "newest": iso(p.newest_at)}


def _asked(args: argparse.Namespace, now: float) -> tuple[list[Status], list[Records], float] | str:
    """What to purge and before when, or the first thing wrong with the flags."""
    statuses = _statuses(args.status)
    if isinstance(statuses, str):
        return statuses
    if not statuses and not args.records:
        return "--status: give done, dead or rejected (repeat for several), or --records KIND"
    before = _before(args.before, now)
    if isinstance(before, str):
        return before
    kinds = _kinds(args.records, before, now)
    if isinstance(kinds, str):
        return kinds
    if not 1 <= args.batch <= 5000:
        return "--batch: must be a whole number from 1 to 5000"
    return statuses, kinds, before


def run(args: argparse.Namespace) -> int:
    """Count, then (unless ``--dry-run``) delete, status by status and kind by kind."""
    asked = _asked(args, time.time())
    if isinstance(asked, str):
        return fail(asked, USAGE)
    statuses, kinds, before = asked
    loaded = load(args)
    if loaded is None:
        return FAILURE

    async def count(store: Store) -> list[Prunable | PrunableRecords]:
        events = [await store.count_prunable(s, before) for s in statuses]
        return [*events, *[await store.count_prunable_records(k, before) for k in kinds]]

    plan = [_view(p) for p in asyncio.run(with_store(loaded, count))]
    total = sum(p["count"] for p in plan)
    if args.dry_run or not total:
        _report(plan, before, "would delete" if args.dry_run else "nothing to delete", args.json)
        return OK
    if not args.yes:
        matching = _matching(plan)
        if not sys.stdin.isatty():
            return fail(f"{matching} match; add --yes to delete them", USAGE)
        answer = input(f"Delete {matching} for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.print("Nothing deleted.")
            return FAILURE

    async def purge(store: Store) -> list[int]:
        events = [await prune_all(store, s, before, args.batch) for s in statuses]
        return [*events, *[await prune_all_records(store, k, before, args.batch) for k in kinds]]

    deleted = asyncio.run(with_store(loaded, purge))
    for view, n in zip(plan, deleted, strict=True):
        view["deleted"] = n
    _report(plan, before, "deleted", args.json)
    return OK


def _matching(plan: list[dict[str, Any]]) -> str:
    """``5 events``, ``3 records`` or ``5 events and 3 records``."""
    events = sum(p["count"] for p in plan if "status" in p)
    records = sum(p["count"] for p in plan if "kind" in p)
    parts = [f"{events} events"] if events else []
    return " and ".join([*parts, *([f"{records} records"] if records else [])])


def _report(plan: list[dict[str, Any]], before: float, verb: str, as_json: bool) -> None:
    events = [p for p in plan if "status" in p]
    records = [p for p in plan if "kind" in p]
    if as_json:
        print_json(
            {
                "before": iso(before),
                "dry_run": verb == "would delete",
                "statuses": events,
                "records": records,
            }
        )
        return
    when = short_time(iso(before))
    if events:
        _table(f"Events last changed before {when} UTC: {verb}", ("STATUS", "EVENTS"), events)
    if records:
        _table(f"Records last changed before {when} UTC: {verb}", ("KIND", "RECORDS"), records)


def _table(title: str, first: tuple[str, str], rows: list[dict[str, Any]]) -> None:
    print_table(
        title,
        [*first, "OLDEST CHANGE", "NEWEST CHANGE"],
        [
            (
                p.get("status", p.get("kind")),
                p.get("deleted", p["count"]),
                short_time(p["oldest"]),
                short_time(p["newest"]),
            )
            for p in rows
        ],
    )
