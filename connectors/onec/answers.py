"""What the connector reads out of 1C's answers: the ledger's records, a page of the change
feed, the count of a listing. Every value goes through ``values.py`` (1C's own spellings);
one that still cannot be read, or a required one left out, raises ``OnecBadValue`` naming
its field, which the connector classifies as the master's fault (``errors.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any, TypeVar

from bridge.ledger import LedgerBalance, LedgerCustomer, LedgerOperation
from connectors.onec.contract import OPERATION_STATUSES, OPERATIONS
from connectors.onec.errors import classify
from connectors.onec.values import (
    OnecBadValue,
    read_bool,
    read_decimal,
    read_int,
    read_moment,
    required,
)

CENT = Decimal("0.01")
T = TypeVar("T")
_STATUS = {"reserve": "reserved", "commit": "committed", "release": "released"}
_STATUS |= {"accrue": "accrued", "reverse": "reversed", "move": "moved"}


def text(value: Any) -> str | None:
    """A text value, None for no value (an unset 1C string is written empty)."""
    return None if value is None or value == "" else str(value)


def customer(r: Mapping[str, Any]) -> LedgerCustomer:
    """FindCustomer's ``Customer``."""
    return LedgerCustomer(
        customer_id=str(required(r, "customer_id")),
        phone=text(r.get("phone")),
        card=text(r.get("card")),
        name=text(r.get("name")),
    )


def balance(r: Mapping[str, Any], received: datetime, zone: tzinfo | None = None) -> LedgerBalance:
    """GetBalance's ``Balance``; ``received``: when the answer came, the moment it is of when
    1C leaves ``AsOf`` empty (its empty date); ``zone``: the infobase's, for a local time."""
    given = r.get("max_redeemable")
    limit = None if text(given) is None else _cents(read_decimal(given, "max_redeemable"))
    return LedgerBalance(
        customer_id=str(required(r, "customer_id")),
        balance=amount(r, "balance"),
        reserved=amount(r, "reserved"),
        available=amount(r, "available"),
        as_of=read_moment(r.get("as_of"), "as_of", zone) or received,
        max_redeemable=None
        if text(limit) is None
        else _cents(read_decimal(limit, "max_redeemable")),
        level=text(r.get("level")),
    )


def operation(r: Mapping[str, Any]) -> LedgerOperation:
    """An ``Operation`` (reserve, commit, release, accrue, reverse)."""
    return LedgerOperation(
        operation_id=str(required(r, "operation_id")),
        kind=str(required(r, "kind")),
        status=str(required(r, "status")),
        amount=amount(r, "amount"),
        # A hand-written service may not say the balance after the operation: unknown then.
        balance=_maybe_amount(r, "balance"),
        available=_maybe_amount(r, "available"),
        reservation_id=text(r.get("reservation_id")),
    )


def filled_operation(
    kind: str,
    r: Mapping[str, Any],
    operation_id: str,
    given: Decimal | None,
    logical: str | None = None,
) -> LedgerOperation:
    """An answer to ``logical`` (default: ``kind``) as an ``Operation`` of ``kind``; what a
    service leaves out is filled from the request (its id, kind, the amount asked) or stays
    unknown (balances)."""
    record = dict(r)
    record.setdefault("operation_id", operation_id)
    record.setdefault("kind", kind)
    if record.get("status") not in OPERATION_STATUSES:
        record["status"] = _STATUS[kind]
    if record.get("amount") in (None, ""):
        record["amount"] = given if given is not None else Decimal(0)
    return read_answer(logical or kind, operation, record)


@dataclass(frozen=True)
class ChangePage:
    """A page of GetChanges: its changes, the cursor after it, whether more wait."""

    items: list[Mapping[str, Any]]
    last: int
    more: bool


def change_page(r: Mapping[str, Any], since: int) -> ChangePage:
    """GetChanges' ``Changes`` read after ``since``.

    ``More`` is believed only when the page moved the cursor: a 1C answering "more" from
    where it was asked would have the poller call it again at once, for ever.
    """
    items = r.get("items") or []
    if not isinstance(items, list):
        items = [items]  # one Change, as a single XDTO element
    for item in items:
        if not isinstance(item, Mapping):
            raise OnecBadValue("items", f"a change that is no record: {item!r:.40}")
        read_int(required(item, "message_no"), "message_no")
        required(item, "id")
    last_given = r.get("last_message_no")
    last = since if text(last_given) is None else read_int(last_given, "last_message_no")
    more = r.get("more")
    says_more = False if text(more) is None else read_bool(more, "more")
    return ChangePage(list(items), last, says_more and last > since)


def listing_total(r: Mapping[str, Any]) -> int | None:
    """A listing page's ``Total``, if given."""
    total = r.get("total")
    return None if text(total) is None else read_int(total, "total")


def amount(r: Mapping[str, Any], field: str) -> Decimal:
    """A required amount of the record, to the kopeck."""
    return _cents(read_decimal(required(r, field), field))


def _maybe_amount(r: Mapping[str, Any], field: str) -> Decimal | None:
    return None if text(r.get(field)) is None else amount(r, field)


def _cents(amount: Decimal) -> Decimal:
    """Points to the kopeck, as the contract writes them ("150.00"): 1C's ``150,5`` or a JSON
    number 150.5 gains its zero; more places are kept as they are, never rounded away."""
    exponent = amount.as_tuple().exponent
    return amount.quantize(CENT) if isinstance(exponent, int) and exponent > -2 else amount


def read_answer(logical: str, read: Callable[[Any], T], record: Any) -> T:
    """``read(record)`` of 1C's answer to ``logical``, its values in 1C's own spellings
    (values.py); one that still cannot be read is the master's fault (errors.py)."""
    try:
        return read(record)
    except OnecBadValue as exc:
        raise classify(exc.of(OPERATIONS[logical].soap)) from exc
