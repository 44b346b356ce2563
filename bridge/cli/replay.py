"""``bridge replay``: requeue dead deliveries by id or by filter."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from typing import Any

from rich.progress import Progress

from bridge.cli.common import Commands, add_command, load, unknown_system_problems, with_store
from bridge.cli.events import add_filter_options
from bridge.cli.output import FAILURE, OK, USAGE, fail, fail_all, out, print_json
from bridge.errors import NotFound
from bridge.filters import FilterError, parse_filter
from bridge.owed.calls import OwedStatus, parse_owed_ref
from bridge.store import Store
from bridge.store.owed import owed_store_of
from bridge.store.records import EventFilter, ReplayResult, Status
from bridge.views import replay_view

CHUNK = 500


def register(commands: Commands) -> None:
    """Add ``replay``."""
    parser = add_command(
        commands,
        "replay",
        "requeue deliveries by id (evt_/dlv_) or by filter, or dead owed calls by id (own_);"
        " history records the replay",
        "bridge replay evt_42 dlv_7\nbridge replay own_12\n"
        "bridge replay --status dead --target retailcrm --since 1d --dry-run",
        run,
    )
    parser.add_argument(
        "ids",
        nargs="*",
        help="event ids (replays their dead deliveries), delivery ids, or owed-call ids",
    )
    add_filter_options(parser, status_default=None)
    parser.add_argument("--dry-run", action="store_true", help="show what would be requeued")
    parser.add_argument("--yes", action="store_true", help="do not ask before a bulk replay")
    parser.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Replay owed calls by id (``own_``), or deliveries by id or by filter."""
    if any(parse_owed_ref(i) is not None for i in args.ids):
        return replay_owed(args)
    return replay_deliveries(args)


FILTERS = ("status", "source", "target", "since", "until")


def replay_deliveries(args: argparse.Namespace) -> int:
    """Replay deliveries by ids, or by filter with confirmation."""
    flt = _bulk_filter(args)
    if isinstance(flt, int):
        return flt
    loaded = load(args)
    if loaded is None:
        return FAILURE
    if problems := unknown_system_problems(loaded, args):
        return fail_all(problems, USAGE)
    actor = f"cli:{getpass.getuser()}"
    try:
        plan = asyncio.run(
            with_store(loaded, lambda store: store.replay(args.ids, flt, actor, dry_run=True))
        )
    except NotFound as exc:
        return fail(str(exc), USAGE)
    if args.dry_run:
        _report(plan, dry_run=True, as_json=args.json)
        return OK
    if not plan.requeued:  # nothing to do: say so, and why, rather than what "would" happen
        _report(plan, dry_run=False, as_json=args.json)
        return FAILURE
    if flt is not None and (refused := _confirmed(args, len(plan.requeued))) is not None:
        return refused
    done = asyncio.run(with_store(loaded, lambda store: _requeue(store, plan, actor, args.json)))
    _report(ReplayResult(done, plan.skipped), dry_run=False, as_json=args.json)
    # An id that names nothing is a mistake worth an exit code, even beside ones that worked.
    return FAILURE if "not found" in plan.skipped.values() else OK


def _bulk_filter(args: argparse.Namespace) -> EventFilter | int | None:
    """The filter of a bulk replay, None for a replay by ids, or the exit code of a usage
    mistake (already reported)."""
    bulk = any(getattr(args, k) for k in FILTERS)
    if not args.ids and not bulk:
        return fail("give ids, or --status dead with filters (see bridge replay --help)", USAGE)
    if args.ids and bulk:
        return fail("give ids or filters, not both", USAGE)
    if not bulk:
        return None
    if args.status not in (Status.DEAD.value, Status.DONE.value):
        return fail("a bulk replay needs --status dead (or --status done)", USAGE)
    try:
        return parse_filter({k: getattr(args, k) for k in FILTERS}, default_limit=1_000_000)
    except FilterError as exc:
        return fail(f"--{exc}", USAGE)


def _confirmed(args: argparse.Namespace, count: int) -> int | None:
    """None when a bulk replay may go ahead (``--yes`` or a "y" at the prompt), else the
    exit code."""
    if args.yes:
        return None
    if not sys.stdin.isatty():
        return fail(f"{count} deliveries match; add --yes to requeue them", USAGE)
    answer = input(f"Requeue {count} deliveries? [y/N] ")
    if answer.strip().lower() not in ("y", "yes"):
        out.print("Nothing requeued.")
        return FAILURE
    return None


def replay_owed(args: argparse.Namespace) -> int:
    """Requeue dead owed calls (``own_12``) by id; the running daemon makes them again."""
    if not all(parse_owed_ref(i) is not None for i in args.ids):
        return fail("give owed-call ids (own_) apart from event and delivery ids", USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE
    actor = f"cli:{getpass.getuser()}"
    report = asyncio.run(with_store(loaded, lambda store: _replay_owed(store, args, actor)))
    if args.json:
        print_json(report)
    else:
        for ref, what in report["owed"].items():
            out.print(f"{ref}: {what}", markup=False)
    done = all(w in ("requeued", "would requeue") for w in report["owed"].values())
    return OK if done else FAILURE


async def _replay_owed(store: Store, args: argparse.Namespace, actor: str) -> dict[str, Any]:
    owed = owed_store_of(store)
    report: dict[str, str] = {}
    for ref in args.ids:
        try:
            call = await owed.get_owed(ref)
        except NotFound:
            report[ref] = "not found"
            continue
        if call.status is not OwedStatus.DEAD:
            report[ref] = f"not dead ({call.status}): nothing to requeue"
        elif args.dry_run:
            report[ref] = "would requeue"
        else:
            await owed.replay_owed(ref, actor, time.time())
            report[ref] = "requeued"
    return {"dry_run": bool(args.dry_run), "owed": report}


async def _requeue(store: Store, plan: ReplayResult, actor: str, quiet: bool) -> list[str]:
    """Requeue the planned deliveries in chunks, with a progress bar for long runs."""
    done: list[str] = []
    with Progress(transient=True, disable=quiet or len(plan.requeued) <= CHUNK) as bar:
        task = bar.add_task("requeueing", total=len(plan.requeued))
        for start in range(0, len(plan.requeued), CHUNK):
            chunk = plan.requeued[start : start + CHUNK]
            result = await store.replay(chunk, None, actor, dry_run=False)
            done += result.requeued
            bar.advance(task, len(chunk))
    return done


def _report(result: ReplayResult, *, dry_run: bool, as_json: bool) -> None:
    if as_json:
        print_json(replay_view(result, dry_run))
        return
    if not result.requeued and not dry_run:
        out.print("requeued nothing", markup=False)
    else:
        verb = "would requeue" if dry_run else "requeued"
        out.print(f"{verb} {len(result.requeued)} deliveries", markup=False)
    for delivery in result.requeued[:20]:
        out.print(f"  {delivery}", markup=False)
    if len(result.requeued) > 20:
        out.print(f"  … and {len(result.requeued) - 20} more", markup=False)
    for ref, why in result.skipped.items():
        out.print(f"skipped {ref}: {why}", markup=False)
