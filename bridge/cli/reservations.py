"""``bridge reservations list|show|cancel``: the support view of reservations."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from bridge.bonus.reservations import ReservationProblem, cancel_requested, release_call
from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import FAILURE, OK, USAGE, fail, out, print_json, print_table, short_time
from bridge.errors import NotFound
from bridge.owed.calls import OwedStatus
from bridge.store import Store
from bridge.store.owed import owed_store_of
from bridge.store.reservations import RsvStatus, Step, VersionConflict
from bridge.views import reservation_view


def register(commands: Commands) -> None:
    """Add ``reservations list``, ``show`` and ``cancel``."""
    group = add_command(
        commands,
        "reservations",
        "list, inspect and cancel bonus reservations",
        "bridge reservations list --status held",
        _no_subcommand,
    )
    sub = group.add_subparsers(dest="reservations_command", metavar="SUBCOMMAND")
    listing = add_command(
        sub,
        "list",
        "reservations newest first",
        "bridge reservations list --status commit_pending --json",
        run_list,
    )
    statuses = ", ".join(s.value for s in RsvStatus)
    listing.add_argument("--status", choices=[s.value for s in RsvStatus], help=statuses)
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = add_command(
        sub,
        "show",
        "one reservation with its history",
        "bridge reservations show rsv_0123456789abcdef0123",
        run_show,
    )
    show.add_argument("id", help="reservation id (rsv_…)")
    show.add_argument("--json", action="store_true", help="print JSON")
    cancel = add_command(
        sub,
        "cancel",
        "cancel a reservation; the running daemon releases the hold at the master",
        "bridge reservations cancel rsv_0123456789abcdef0123",
        run_cancel,
    )
    cancel.add_argument("id", help="reservation id (rsv_…)")
    cancel.add_argument("--json", action="store_true", help="print JSON")


def _no_subcommand(_args: argparse.Namespace) -> int:
    return fail("choose a subcommand: bridge reservations list | show ID | cancel ID", USAGE)


def _attempts(args: argparse.Namespace) -> int:
    loaded = load(args)
    return loaded.settings.bonus.reservations.max_attempts if loaded else 5


def run_list(args: argparse.Namespace) -> int:
    """Print reservations as a table or JSON."""
    if not 1 <= args.limit <= 10_000:
        return fail("--limit: must be 1 to 10000", USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE
    found = asyncio.run(
        with_store(loaded, lambda store: store.list_reservations(args.status, args.limit))
    )
    attempts = loaded.settings.bonus.reservations.max_attempts
    views = [reservation_view(r, attempts) for r in found]
    if args.json:
        print_json({"reservations": views})
        return OK
    if not views:
        out.print("No reservations match.")
        return OK
    print_table(
        "Reservations",
        ["ID", "STATUS", "AMOUNT", "COMMITTED", "ORDER", "PHONE", "CREATED"],
        [
            (
                v["id"],
                v["status"] + (" (master call owed)" if "master_call_pending" in v else ""),
                v["amount"],
                v.get("committed", ""),
                f"{v['order']['system']}:{v['order']['id']}",
                v["code_sent_to"],
                short_time(v["created_at"]),
            )
            for v in views
        ],
    )
    return OK


async def _show(store: Store, rsv_id: str) -> tuple[Any, list[Step], float | None]:
    rsv = await store.get_reservation(rsv_id)
    owed = await owed_store_of(store).owed_for(rsv_id) if rsv.pending is not None else []
    due = min((c.due_at for c in owed if c.status is OwedStatus.PENDING), default=None)
    return rsv, await store.reservation_history(rsv_id), due


def run_show(args: argparse.Namespace) -> int:
    """Print one reservation and its history."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    try:
        rsv, history, due = asyncio.run(with_store(loaded, lambda store: _show(store, args.id)))
    except NotFound as exc:
        return fail(str(exc))
    view = reservation_view(rsv, loaded.settings.bonus.reservations.max_attempts, history, due)
    if args.json:
        print_json(view)
        return OK
    shown = ("id", "status", "master", "amount", "committed", "returned", "code_sent_to")
    for key in (*shown, "expires_at"):
        if key in view:
            out.print(f"{key}: {view[key]}", markup=False)
    out.print(f"order: {view['order']['system']}:{view['order']['id']}", markup=False)
    if "error" in view:
        out.print(f"error: {view['error']['code']}: {view['error']['detail']}", markup=False)
    print_table(
        "History",
        ["AT", "KIND", "STATUS", "DETAIL"],
        [(short_time(h["at"]), h["kind"], h["status"], h["detail"]) for h in view["history"]],
    )
    return OK


async def _cancel(store: Store, rsv_id: str) -> Any:
    owed = owed_store_of(store)
    for _ in range(5):
        rsv = await store.get_reservation(rsv_id)
        requested = cancel_requested(rsv)
        if requested is None:
            return rsv
        moved, then = requested
        try:
            cancelled, _calls = await owed.update_reservation_owing(
                moved,
                [Step("cancel_requested", RsvStatus.RELEASE_PENDING, actor="cli")],
                [release_call(moved, then)],
            )
            return cancelled
        except VersionConflict:
            continue  # the daemon moved it on meanwhile: decide again
    raise ReservationProblem("busy", "the reservation kept changing; try again")


def run_cancel(args: argparse.Namespace) -> int:
    """Owe a release; the daemon's owed-call sweeper makes it at the master within a
    second."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    try:
        rsv = asyncio.run(with_store(loaded, lambda store: _cancel(store, args.id)))
    except NotFound as exc:
        return fail(str(exc))
    except ReservationProblem as exc:
        return fail(f"{exc.code}: {exc.detail}")
    view = reservation_view(rsv, loaded.settings.bonus.reservations.max_attempts)
    if args.json:
        print_json(view)
        return OK
    if rsv.status is RsvStatus.RELEASE_PENDING:
        out.print(
            f"{rsv.id}: release requested; the running daemon releases the hold at the master.",
            markup=False,
        )
    else:
        out.print(f"{rsv.id}: nothing to cancel, it is {rsv.status}.", markup=False)
    return OK
