"""``bridge customers show PHONE``: one customer's story for support: the cards the master
ties to the phone (status, balance, main), and what the bridge kept about the phone: card
merges with their steps, the automatic registration, SMS verifications (never a code or
its digest) and programme notices. The phone is masked in what is printed."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bridge.bonus.balance import MasterUnavailable
from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.customers_master import master_of
from bridge.cli.output import FAILURE, OK, USAGE, fail, out, print_json, print_table, short_time
from bridge.customers.merges import cards_of, merge_view
from bridge.errors import BridgeError
from bridge.logs import configure_logging
from bridge.settings_loader import LoadedSettings
from bridge.store import Store
from bridge.store.customer_records import CustomerRecord, RecordKind, customer_records_of

# Body keys support never sees: a verification's code digest (and anything like a code or
# a proof, should a record ever carry one).
SECRET_KEYS = frozenset({"digest", "code", "proof", "link"})
RECORDS_SHOWN = 1000  # per kind; a phone has a handful


def register(commands: Commands) -> None:
    """Add ``customers show``."""
    group = add_command(
        commands,
        "customers",
        "the customer behind a phone, for support",
        "bridge customers show +79000000005",
        _no_subcommand,
    )
    sub = group.add_subparsers(dest="customers_command", metavar="SUBCOMMAND")
    show = add_command(
        sub,
        "show",
        "a phone's cards at the master (status, balance, main; said so when the master does"
        " not answer), merges with their steps, registration, verifications and notices",
        "bridge customers show '8 900 000-00-05' --json",
        run_show,
    )
    show.add_argument("phone", help="the phone, in any spelling")
    show.add_argument("--json", action="store_true", help="print JSON")


def _no_subcommand(_args: argparse.Namespace) -> int:
    return fail("choose a subcommand: bridge customers show PHONE", USAGE)


def run_show(args: argparse.Namespace) -> int:
    """Print one phone's cards and records."""
    try:
        phone = normalize_phone(args.phone)
    except PhoneError as exc:
        return fail(f"phone: {exc}", USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE
    configure_logging(loaded.settings.log)  # to stderr: stdout holds the answer
    view = asyncio.run(with_store(loaded, lambda store: _view(loaded, store, phone)))
    if args.json:
        print_json(view)
    else:
        _print(view)
    return OK


async def _view(loaded: LoadedSettings, store: Store, phone: str) -> dict[str, Any]:
    records = customer_records_of(store)

    async def of(kind: str) -> list[CustomerRecord]:
        return await records.list_records(kind, subject=phone, limit=RECORDS_SHOWN)

    view: dict[str, Any] = {"phone": mask(phone)}
    view |= await _cards(loaded, store, phone)
    view["merges"] = [merge_view(r) | _times(r) for r in await of(RecordKind.MERGE)]
    for name, kind in (
        ("registrations", RecordKind.REGISTRATION),
        ("verifications", RecordKind.VERIFICATION),
        ("notices", RecordKind.NOTICE),
    ):
        view[name] = [_record_view(r) for r in await of(kind)]
    return view


async def _cards(loaded: LoadedSettings, store: Store, phone: str) -> dict[str, Any]:
    """``cards`` from the master, or ``cards_error`` saying why there are none to show."""
    async with master_of(loaded, store) as bonus:
        if isinstance(bonus, str):
            return {"cards": None, "cards_error": bonus}
        try:
            ledger = cards_of(bonus)
            cards = await bonus.call_master("cards", lambda: ledger.cards(phone))
        except MasterUnavailable as exc:
            return {"cards": None, "cards_error": f"{exc}: cards not shown"}
        except BridgeError as exc:
            return {"cards": None, "cards_error": str(getattr(exc, "detail", None) or exc)}
    shown = [
        {"card": c.number, "status": str(c.status), "balance": str(c.balance), "main": c.main}
        for c in cards
    ]
    return {"master": bonus.master, "cards": shown}


def _record_view(record: CustomerRecord) -> dict[str, Any]:
    body = {k: v for k, v in _plain(record.body).items() if k not in SECRET_KEYS}
    shown: dict[str, Any] = {"key": _key(record), "status": record.status}
    return shown | _times(record) | body


def _key(record: CustomerRecord) -> str:
    """The record's key with the phone masked (registrations and notices are keyed by it)."""
    return record.key.replace(record.subject, mask(record.subject))


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if k.endswith("_at") and isinstance(v, int | float) else v
            for k, v in body.items()}  # fmt: skip


def _times(record: CustomerRecord) -> dict[str, str]:
    return {"created_at": _iso(record.created_at), "updated_at": _iso(record.updated_at)}


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _print(view: dict[str, Any]) -> None:
    out.print(f"customer {view['phone']}", markup=False)
    if view["cards"] is None:
        out.print(f"cards: unknown ({view['cards_error']})", markup=False)
    else:
        cards = [(c["card"], c["status"], c["balance"], "yes" if c["main"] else "") for c in
                 view["cards"]]  # fmt: skip
        print_table(f"Cards at {view['master']}", ["CARD", "STATUS", "BALANCE", "MAIN"], cards)
    for merge in view["merges"]:
        steps = ", ".join(
            f"{c['card']} {c['state']}" + (f" {c['amount']}" if c.get("amount") else "")
            for c in merge["cards"]
        )
        line = f"merge {merge['merge_id']} into {merge['main_card']}: {merge['status']}"
        out.print(f"{line} ({steps or 'no other cards'})", markup=False)
        if merge.get("error"):
            out.print(f"  error: {merge['error']}", markup=False)
    for name in ("registrations", "verifications", "notices"):
        rows: list[tuple[Any, ...]] = [
            (r["key"], r["status"], short_time(r["created_at"]), short_time(r["updated_at"]),
             _detail(r))
            for r in view[name]
        ]  # fmt: skip
        if rows:
            print_table(name.capitalize(), ["KEY", "STATUS", "CREATED", "UPDATED", "DETAIL"], rows)
        else:
            out.print(f"{name}: none", markup=False)


def _detail(record: dict[str, Any]) -> str:
    skip = {"key", "status", "created_at", "updated_at"}
    return ", ".join(f"{k}={v}" for k, v in record.items() if k not in skip and v is not None)
