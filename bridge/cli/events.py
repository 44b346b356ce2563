"""``bridge events list`` and ``bridge events show``."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shlex

from bridge.cli.common import Commands, add_command, load, unknown_system_problems, with_store
from bridge.cli.output import (
    FAILURE,
    OK,
    USAGE,
    fail,
    fail_all,
    out,
    print_json,
    print_table,
    short_time,
)
from bridge.errors import NotFound
from bridge.filters import FilterError, parse_filter
from bridge.views import detail_view, event_view

_EVENT_REF = re.compile(r"^(evt_)?[0-9]{1,18}$", re.ASCII)


def add_filter_options(parser: argparse.ArgumentParser, *, status_default: str | None) -> None:
    """The filters ``events list`` and ``replay`` share."""
    parser.add_argument(
        "--status", default=status_default, help="pending, in_flight, retry, done, dead or rejected"
    )
    parser.add_argument("--source", help="system the event came from")
    parser.add_argument("--target", help="system a delivery goes to")
    parser.add_argument("--since", help="ISO time (UTC unless given) or age like 30m, 2h, 7d")
    parser.add_argument("--until", help="ISO time or age, as --since")


def register(commands: Commands) -> None:
    """Add ``events list`` and ``events show``."""
    group = add_command(
        commands,
        "events",
        "list and inspect events and their deliveries",
        "bridge events list --status dead --since 2h",
        _no_subcommand,
    )
    sub = group.add_subparsers(dest="events_command", metavar="SUBCOMMAND")
    listing = add_command(
        sub,
        "list",
        "events newest received first, filtered, one page at a time (a full page ends with"
        " the command for the next one)",
        "bridge events list --status retry --target retailcrm --limit 20\n"
        "bridge events list --status retry --target retailcrm --limit 20 --after evt_4711",
        run_list,
    )
    add_filter_options(listing, status_default=None)
    listing.add_argument("--limit", default="50", help="at most this many (default 50)")
    listing.add_argument(
        "--after",
        metavar="EVENT",
        help="the next page: the events listed after this one (the last of the page before)",
    )
    listing.add_argument("--json", action="store_true", help="print JSON")
    show = add_command(
        sub,
        "show",
        "an event's payload, deliveries and every attempt",
        "bridge events show evt_42",
        run_show,
    )
    show.add_argument("id", help="event id (evt_42 or 42)")
    show.add_argument("--json", action="store_true", help="print JSON")


def _no_subcommand(_args: argparse.Namespace) -> int:
    return fail("choose a subcommand: bridge events list | bridge events show ID", USAGE)


def run_list(args: argparse.Namespace) -> int:
    """Print events as a table or JSON."""
    try:
        flt = parse_filter(
            {k: getattr(args, k) for k in ("status", "source", "target", "since", "until", "limit")}
        )
    except FilterError as exc:
        return fail(f"--{exc}", USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE
    if problems := unknown_system_problems(loaded, args):
        return fail_all(problems, USAGE)
    if args.after is not None and not _EVENT_REF.match(args.after):
        return fail(f"--after: {args.after!r} is not an event id like evt_42", USAGE)
    try:
        events = asyncio.run(with_store(loaded, lambda store: store.list_events(flt, args.after)))
    except NotFound as exc:
        return fail(f"--after: {exc}")
    full = len(events) == flt.limit
    if args.json:
        print_json(
            {
                "events": [event_view(e) for e in events],
                "next_after": events[-1].id if full else None,
            }
        )
        return OK
    if not events:
        out.print("No events match.")
        return OK
    rows = []
    for e in events:
        entity = f"{e.entity}/{e.entity_id}" if e.entity else None
        received = short_time(event_view(e)["received_at"])
        rows.append(
            (e.id, received, e.source, entity, e.status.value, ", ".join(e.targets), e.reason)
        )
    print_table(
        None, ["ID", "RECEIVED (UTC)", "SOURCE", "ENTITY", "STATUS", "TARGETS", "NOTE"], rows
    )
    if full:
        out.print(f"next page: {next_page_command(args, events[-1].id)}", markup=False)
    return OK


def next_page_command(args: argparse.Namespace, last: str) -> str:
    """The same ``bridge events list`` going on after ``last``."""
    words = ["bridge"]
    if getattr(args, "config", None) not in (None, "config.yaml"):
        words += ["--config", args.config]
    words += ["events", "list"]
    for option in ("status", "source", "target", "since", "until", "limit"):
        value = getattr(args, option)
        if value is not None and not (option == "limit" and value == "50"):
            words += [f"--{option}", value]
    return shlex.join([*words, "--after", last])


def run_show(args: argparse.Namespace) -> int:
    """Print one event in full."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    try:
        detail = asyncio.run(with_store(loaded, lambda store: store.get_event(args.id)))
    except NotFound as exc:
        return fail(str(exc))
    view = detail_view(detail)
    if args.json:
        print_json(view)
        return OK
    entity = f"{view['entity']}/{view['entity_id']}" if view["entity"] else "-"
    out.print(f"{view['id']}  {view['status']}  from {view['source']}  {entity}", markup=False)
    out.print(
        f"received {short_time(view['received_at'])} UTC, source key {view['source_key']}",
        markup=False,
    )
    if view["reason"]:
        out.print(f"note: {view['reason']}", markup=False)
    payload = view["payload"]
    text = (
        payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False, indent=2)
    )
    out.print("payload:", markup=False)
    out.print(text, markup=False, highlight=False)
    if view["deliveries"]:
        print_table(
            "Deliveries",
            ["ID", "TARGET", "STATUS", "ATTEMPTS", "DUE", "LAST ERROR"],
            [
                (
                    d["id"],
                    d["target"],
                    d["status"],
                    d["attempts"],
                    short_time(d["due_at"]),
                    d["last_error"],
                )
                for d in view["deliveries"]
            ],
        )
    if view["history"]:
        print_table(
            "History",
            ["AT (UTC)", "WHAT", "DELIVERY", "TRY", "OUTCOME", "CLASS", "MESSAGE", "MS", "BY"],
            [
                (
                    short_time(h["at"]),
                    h["kind"],
                    h["delivery_id"],
                    h["attempt"],
                    h["outcome"],
                    h["error_class"],
                    h["message"],
                    h["duration_ms"],
                    h["actor"],
                )
                for h in view["history"]
            ],
        )
    return OK
