"""``bridge backfill orders|customers|list|cancel``: load history from one system into others.

The command stores the backfill and follows its progress; the running daemon (``bridge
serve``) does the listing and the deliveries, after its live traffic. Running the same
command again resumes an unfinished backfill where it stopped; Ctrl-C only stops watching.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
from datetime import date
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import (
    FAILURE,
    OK,
    USAGE,
    err,
    fail,
    out,
    print_json,
    print_table,
    short_time,
)
from bridge.cli.status import daemon_systems
from bridge.errors import NotFound
from bridge.mirror.backfill import ENTITIES, backfill_problems
from bridge.mirror.router import Router
from bridge.registry import build_connectors
from bridge.settings_loader import LoadedSettings
from bridge.store import Store
from bridge.store.backfills import OPEN, Backfill, BackfillSpec, BackfillStatus
from bridge.store.records import Status
from bridge.views import backfill_view

FOLLOW_SECONDS = 0.5


def register(commands: Commands) -> None:
    """Add ``backfill`` with its subcommands."""
    group = add_command(
        commands,
        "backfill",
        "load existing orders or customers from one system into others (resumable; the"
        " running daemon does the work, after its live traffic)",
        "bridge backfill orders --from retailcrm --to onec --since 2026-01-01",
        _no_subcommand,
    )
    sub = group.add_subparsers(dest="backfill_command", metavar="SUBCOMMAND")
    for word in ENTITIES:
        start = add_command(
            sub,
            word,
            f"backfill {word} created since a date (run it again to resume)",
            f"bridge backfill {word} --from retailcrm --to onec --since 2026-01-01",
            run_start,
        )
        start.set_defaults(entity=ENTITIES[word])
        start.add_argument("--from", dest="source", required=True, metavar="SYSTEM")
        start.add_argument(
            "--to", dest="targets", required=True, action="append", metavar="SYSTEM",
            help="a target system (repeat for several); a route must send the entity there",
        )  # fmt: skip
        start.add_argument(
            "--since", metavar="DATE", help="only those created on or after DATE (YYYY-MM-DD)"
        )
        start.add_argument(
            "--no-wait", action="store_true", help="store the backfill and return at once"
        )
        start.add_argument("--json", action="store_true", help="print JSON (implies --no-wait)")
    listing = add_command(
        sub, "list", "backfills, newest first", "bridge backfill list --json", run_list
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    cancel = add_command(
        sub,
        "cancel",
        "stop listing; what was listed is still delivered",
        "bridge backfill cancel bf_3",
        run_cancel,
    )
    cancel.add_argument("id", help="backfill id (bf_…)")
    cancel.add_argument("--json", action="store_true", help="print JSON")


def _no_subcommand(_args: argparse.Namespace) -> int:
    return fail("choose a subcommand: bridge backfill orders | customers | list | cancel ID", USAGE)


def _spec(args: argparse.Namespace) -> BackfillSpec | str:
    since = None
    if args.since is not None:
        try:
            since = date.fromisoformat(args.since)
        except ValueError:
            return f"--since: {args.since!r} is not a date like 2026-01-31"
    return BackfillSpec(args.source, args.entity, tuple(dict.fromkeys(args.targets)), since)


def _problems(loaded: LoadedSettings, spec: BackfillSpec) -> list[str]:
    settings = loaded.settings
    connectors, _ = build_connectors(settings)  # `bridge check` reports the others
    enabled = {n for n, s in settings.systems.items() if s.enabled}
    return backfill_problems(spec, Router(settings), connectors.listers(), enabled)


def run_start(args: argparse.Namespace) -> int:
    """Store (or resume) a backfill and follow it to the end."""
    spec = _spec(args)
    if isinstance(spec, str):
        return fail(spec, USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE
    problems = _problems(loaded, spec)
    if problems:
        for problem in problems:
            fail(problem, USAGE)
        return USAGE
    daemon = daemon_systems(loaded.settings.http)
    wait = not (args.no_wait or args.json)
    return asyncio.run(with_store(loaded, lambda store: _start(store, spec, daemon, wait, args)))


async def _start(
    store: Store, spec: BackfillSpec, daemon: dict[str, str] | str, wait: bool, args: Any
) -> int:
    backfill, created = await store.open_backfill(spec, getpass.getuser())
    if args.json:
        print_json(backfill_view(backfill) | {"resumed": not created})
        return OK
    what = f"{spec.entity}s from {spec.source} to {', '.join(spec.targets)}"
    since = f" created since {spec.since}" if spec.since else ""
    if created:
        out.print(f"{backfill.id}: backfill of {what}{since} stored.", markup=False)
    else:
        out.print(
            f"{backfill.id}: resuming the backfill of {what}{since}"
            f" ({backfill.listed} listed so far).",
            markup=False,
        )
    if isinstance(daemon, str):
        err.print(
            f"note: {daemon}; the backfill runs when `bridge serve` runs.",
            markup=False,
            highlight=False,
        )
    if not wait:
        return OK
    try:
        backfill = await _follow(store, backfill)
    except KeyboardInterrupt:  # pragma: no cover - interactive
        out.print(f"Stopped watching; {backfill.id} goes on in the daemon (bridge backfill list).")
        return 130
    return _summary(backfill)


async def _follow(store: Store, backfill: Backfill) -> Backfill:
    """A progress bar per phase until the backfill is no longer open."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[note]}"),
    )
    with Progress(*columns, console=out, transient=False) as progress:
        listed = progress.add_task("listed   ", total=backfill.total, note="")
        delivered = progress.add_task("delivered", total=backfill.listed or None, note="")
        while True:
            note = f"listing stalled: {backfill.error}" if backfill.error else ""
            progress.update(listed, completed=backfill.listed, total=backfill.total, note=note)
            dead = backfill.events.get(Status.DEAD, 0)
            progress.update(
                delivered,
                completed=backfill.finished,
                total=backfill.listed or None,
                note=f"{dead} dead" if dead else "",
            )
            if backfill.status not in OPEN:
                return backfill
            await asyncio.sleep(FOLLOW_SECONDS)
            backfill = await store.get_backfill(backfill.id)


def _summary(backfill: Backfill) -> int:
    view = backfill_view(backfill)
    if backfill.status is BackfillStatus.FAILED:
        return fail(f"{backfill.id} failed: {backfill.error}")
    out.print(
        f"{backfill.id} {view['status']}: {view['listed']} listed, {view['delivered']} delivered,"
        f" {view['dead']} dead, {view['waiting']} still waiting.",
        markup=False,
    )
    if view["dead"]:
        err.print(
            f"see them with: bridge events list --status dead --source {backfill.spec.source}",
            markup=False,
            highlight=False,
        )
        return FAILURE
    return OK


def run_list(args: argparse.Namespace) -> int:
    """Print backfills as a table or JSON."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    found = asyncio.run(with_store(loaded, lambda store: store.list_backfills()))
    views = [backfill_view(b) for b in found]
    if args.json:
        print_json({"backfills": views})
        return OK
    if not views:
        out.print("No backfills yet.")
        return OK
    print_table(
        "Backfills",
        ["ID", "STATUS", "WHAT", "LISTED", "DELIVERED", "DEAD", "WAITING", "CREATED", "ERROR"],
        [
            (
                v["id"],
                v["status"],
                f"{v['entity']}s {v['source']} → {','.join(v['targets'])}"
                + (f" since {v['since']}" if v["since"] else ""),
                f"{v['listed']}" + (f"/{v['total']}" if v["total"] is not None else ""),
                v["delivered"],
                v["dead"],
                v["waiting"],
                short_time(v["created_at"]),
                v["error"],
            )
            for v in views
        ],
    )
    return OK


async def _cancel(store: Store, backfill_id: str) -> tuple[Backfill, bool]:
    moved = await store.set_backfill_status(backfill_id, BackfillStatus.CANCELLED, "cancelled")
    return await store.get_backfill(backfill_id), moved


def run_cancel(args: argparse.Namespace) -> int:
    """Stop an open backfill's listing."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    try:
        backfill, moved = asyncio.run(with_store(loaded, lambda store: _cancel(store, args.id)))
    except NotFound as exc:
        return fail(str(exc))
    if args.json:
        print_json(backfill_view(backfill))
        return OK
    if moved:
        out.print(
            f"{backfill.id}: cancelled after {backfill.listed} listed; those are still delivered.",
            markup=False,
        )
    else:
        out.print(f"{backfill.id}: nothing to cancel, it is {backfill.status}.", markup=False)
    return OK
