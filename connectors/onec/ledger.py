"""The state of one 1C infobase behind the emulator: bonus ledger, customers, orders, change feed.

Pure and in memory: the rules are CONTRACT.md's ("Ledger rules", "Idempotency", "Errors"),
the names its HTTP/JSON (snake_case) form; the emulator adds SOAP/HTTP around it. Choices
the contract leaves open are marked "Decision:" where they are made.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Literal, TypeVar, cast

from connectors.onec.contract import OPERATION_ID_MAX_LENGTH, ErrorCode
from connectors.onec.orders import (
    ACTIONS,
    ENTITIES,
    Change,
    ChangeFeed,
    Changes,
    OrderBook,
    SavedOrder,
)

# CONTRACT.md "Errors": the stable codes, as contract.py lists them.
ERROR_CODES = frozenset(code.value for code in ErrorCode)
MAX_OPERATION_ID = OPERATION_ID_MAX_LENGTH  # CONTRACT.md "Idempotency"
MAX_LIMIT = 1000
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# (phone, card, name, points, level); the first is the product requirement for every master.
SANDBOX_CUSTOMERS = (
    ("+79000000001", "2000000000015", "Иван Петров", "1000.00", "Базовый"),
    ("+79000000002", "2000000000022", "Мария Смирнова", "250.00", "Серебряный"),
    ("+79000000003", None, "Ольга Иванова", "0.00", None),
)

Kind = Literal["reserve", "commit", "release", "accrue", "reverse"]
Status = Literal["reserved", "committed", "released", "accrued", "reversed"]
_STATUS: dict[Kind, Status] = {
    "reserve": "reserved",
    "commit": "committed",
    "release": "released",
    "accrue": "accrued",
    "reverse": "reversed",
}
Clock = Callable[[], datetime]
_R = TypeVar("_R", "Operation", "SavedOrder")


class LedgerError(Exception):
    """A business error with its stable contract code; str() is the SOAP faultstring form."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"not a contract error code: {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as find_customer returns it; `phone` is the phone on file, E.164."""

    customer_id: str
    phone: str
    card: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Balance:
    """Points of one customer at `as_of`; available = balance - reserved."""

    customer_id: str
    balance: Decimal
    reserved: Decimal
    available: Decimal
    max_redeemable: Decimal | None
    level: str | None
    as_of: datetime


@dataclass(frozen=True, slots=True)
class Operation:
    """The result of reserve/commit/release/accrue/reverse, with balances after it."""

    operation_id: str
    kind: Kind
    status: Status
    reservation_id: str | None
    amount: Decimal
    balance: Decimal
    available: Decimal


@dataclass(slots=True)
class _Account:
    customer: Customer
    balance: Decimal
    level: str | None
    reserved: Decimal = ZERO
    version: int = 1

    @property
    def available(self) -> Decimal:
        return self.balance - self.reserved


@dataclass(slots=True)
class _Reservation:
    customer_id: str
    amount: Decimal
    closed: Status | None = None  # "committed" or "released" once closed


def normalize_phone(raw: str) -> str | None:
    """Return `raw` in E.164 (8XXXXXXXXXX, 7XXXXXXXXXX and 9XXXXXXXXX read as +7), else None."""
    text = raw.strip()
    if not text or set(text) - set("0123456789+-() ") or "+" in text[1:]:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("+"):  # an explicit country code is trusted: +81… is Japan, not 8…
        return "+" + digits if 8 <= len(digits) <= 15 else None
    if len(digits) == 11 and digits[0] in "78":  # Russian trunk prefix 8 or country code 7
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":  # a mobile number typed without any prefix
        return "+7" + digits
    return None


def _op(value: object) -> str:
    return _text(value, "operation_id", MAX_OPERATION_ID)


def _invalid(field: str, problem: str) -> LedgerError:
    return LedgerError("invalid_request", f"{field}: {problem}")


def _text(value: object, field: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _invalid(field, "required, a non-empty string")
    if len(value) > limit:
        raise _invalid(field, f"longer than {limit} characters")
    return value


def _amount(value: object, field: str = "amount", *, allow_zero: bool = False) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise _invalid(field, 'required, a decimal such as "150.00" (never a float)')
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
        exact = number.quantize(CENT) if number.is_finite() else None
    except InvalidOperation:
        exact = None
    if exact is None:
        raise _invalid(field, f"{value!r} is not a decimal number")
    if exact != number:
        raise _invalid(field, f"{value!r} has more than 2 decimal places")
    if exact < 0 or (exact == 0 and not allow_zero):
        raise _invalid(field, f"{value!r} must be {'zero or more' if allow_zero else 'positive'}")
    return exact


def _count(value: object, field: str, low: int, high: int | None = None) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(field, "required, an integer")
    if value < low or (high is not None and value > high):
        raise _invalid(field, f"{value} is outside {low}..{high if high is not None else ''}")
    return value


def _moment(value: object, field: str) -> datetime:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        when = None
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise _invalid(field, "an ISO 8601 dateTime with an offset, e.g. 2026-11-22T10:00:00Z")
    return when.astimezone(UTC)


def _not_json(constant: str) -> object:
    raise ValueError(constant)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class OnecLedger:
    """One 1C infobase: bonus ledger, customer directory, order book and change feed."""

    def __init__(self, *, clock: Clock = _utc_now, max_share: Decimal | str = "0.5") -> None:
        self._clock = clock
        self._max_share = Decimal(max_share)  # the program's limit: part of a cart paid by points
        if not 0 < self._max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        self._lock = threading.Lock()  # one lock for everything: an infobase is one transaction
        self._accounts: dict[str, _Account] = {}
        self._by_phone: dict[str, str] = {}
        self._by_card: dict[str, str] = {}
        self._reservations: dict[str, _Reservation] = {}
        self._left: dict[str, tuple[Kind, str, Decimal]] = {}  # accrue/commit -> left to reverse
        self._done: dict[str, tuple[tuple[object, ...], Operation | SavedOrder]] = {}
        self._feed = ChangeFeed()
        self._orders = OrderBook(self._feed)

    def seed_sandbox(self) -> None:
        """Add SANDBOX_CUSTOMERS, as data entered before the exchange began (not in the feed)."""
        with self._lock:
            for phone, card, name, points, level in SANDBOX_CUSTOMERS:
                self._add(phone, card, name, Decimal(points), level)

    def find_customer(
        self, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> Customer:
        """Find a customer by exactly one of phone (any Russian spelling), card or id."""
        # Blank counts as absent: 1C's XDTO writes an unset optional string as an empty element.
        keys = {"phone": phone, "card": card, "customer_id": customer_id}
        given = {k: v for k, v in keys.items() if not (v is None or str(v).strip() == "")}
        if len(given) != 1:
            raise _invalid("phone, card, customer_id", f"exactly one is required, got {len(given)}")
        ((field, value),) = given.items()
        with self._lock:
            if field == "phone":
                cid = self._by_phone.get(self._phone(value))
            elif field == "card":
                cid = self._by_card.get(_text(value, "card").strip())
            else:
                cid = _text(value, "customer_id")
            return self._account(cid or "", field).customer

    def balance(self, customer_id: str, cart_total: Decimal | str | None = None) -> Balance:
        """Points of a customer; with a cart total also the most that cart may be paid with."""
        cid = _text(customer_id, "customer_id")
        total = None if cart_total is None else _amount(cart_total, "cart_total", allow_zero=True)
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        with self._lock:
            acc = self._account(cid)
            limit = None
            if total is not None:
                share = (total * self._max_share).quantize(CENT, ROUND_DOWN)
                limit = max(ZERO, min(acc.available, share))  # available < 0 after a reverse
            return Balance(cid, acc.balance, acc.reserved, acc.available, limit, acc.level, now)

    def reserve(
        self,
        operation_id: str,
        customer_id: str,
        amount: Decimal | str,
        order_id: str,
        expires_at: datetime | str | None = None,
    ) -> Operation:
        """Hold points out of available until commit or release."""
        op, cid, points = _op(operation_id), _text(customer_id, "customer_id"), _amount(amount)
        order = _text(order_id, "order_id")
        # Decision: expires_at is only part of the request. CONTRACT.md keeps a reservation
        # open until commit or release, so nothing here expires it.
        expiry = None if expires_at is None else _moment(expires_at, "expires_at")
        params = ("reserve", cid, points, order, expiry)
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            acc = self._account(cid)
            if points > acc.available:
                raise LedgerError("insufficient_balance", f"{points} > available {acc.available}")
            acc.reserved += points
            self._reservations[op] = _Reservation(cid, points)
            return self._settle(op, params, op, points, acc)

    def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | str | None = None
    ) -> Operation:
        """Write off the reservation (or `amount` of it, releasing the rest) and close it."""
        op, rid = _op(operation_id), _text(reservation_id, "reservation_id")
        points = None if amount is None else _amount(amount)
        params = ("commit", rid, points)  # "same parameters" = same request: None != full amount
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            res = self._open(rid)
            written = res.amount if points is None else points
            if written > res.amount:
                raise LedgerError("amount_exceeds_reservation", f"{written} > {res.amount} held")
            acc = self._accounts[res.customer_id]
            acc.reserved -= res.amount
            acc.balance -= written
            res.closed = "committed"
            self._left[op] = ("commit", res.customer_id, written)
            self._touch(acc)
            return self._settle(op, params, rid, written, acc)

    def release(self, operation_id: str, reservation_id: str) -> Operation:
        """Close a reservation without a write-off; the result's amount is what was held."""
        op, rid = _op(operation_id), _text(reservation_id, "reservation_id")
        with self._lock:
            if (known := self._recall(op, ("release", rid), Operation)) is not None:
                return known
            res = self._open(rid)
            acc = self._accounts[res.customer_id]
            acc.reserved -= res.amount
            res.closed = "released"
            return self._settle(op, ("release", rid), rid, res.amount, acc)

    def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal | str, order_id: str
    ) -> Operation:
        """Add points to a customer for an order."""
        op, cid, points = _op(operation_id), _text(customer_id, "customer_id"), _amount(amount)
        params = ("accrue", cid, points, _text(order_id, "order_id"))
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            acc = self._account(cid)
            acc.balance += points
            self._left[op] = ("accrue", cid, points)
            self._touch(acc)
            return self._settle(op, params, None, points, acc)

    def reverse(
        self, operation_id: str, original_operation_id: str, amount: Decimal | str
    ) -> Operation:
        """Take back part of an accrue (points removed) or of a commit (points returned)."""
        op, orig = _op(operation_id), _text(original_operation_id, "original_operation_id")
        points = _amount(amount)
        params = ("reverse", orig, points)
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            if orig not in self._left:  # Decision: the contract has no code for this case.
                raise _invalid("original_operation_id", f"{orig!r} is no accrue or commit here")
            kind, cid, left = self._left[orig]
            if points > left:
                raise LedgerError("amount_exceeds_original", f"{points} > {left} left of {orig}")
            self._left[orig] = (kind, cid, left - points)
            acc = self._accounts[cid]
            # Decision: reversing accrued points already spent takes the balance below zero (a
            # debt): the contract gives reverse no insufficient_balance, and a return must pass.
            acc.balance += points if kind == "commit" else -points
            self._touch(acc)
            return self._settle(op, params, None, points, acc)

    def save_order(self, operation_id: str, external_id: str, order: str) -> SavedOrder:
        """Create or update the order with this external id; `order` is a JSON object as text."""
        op, ext = _op(operation_id), _text(external_id, "external_id")
        try:
            # Decimal keeps amounts exact; NaN/Infinity are not JSON and would never compare equal.
            document = json.loads(order, parse_float=Decimal, parse_constant=_not_json)
        except (TypeError, ValueError):
            document = None
        if not isinstance(document, dict):
            raise _invalid("order", "required, a JSON object as a string")
        params = ("save_order", ext, document)  # parsed: spacing and key order do not count
        with self._lock:
            if (known := self._recall(op, params, SavedOrder)) is not None:
                return known
            return self._remember(op, params, self._orders.save(ext, document))

    def get_changes(self, since_message_no: int, limit: int = 100) -> Changes:
        """Changes after `since_message_no`, at most `limit` (1..1000) of them."""
        since = _count(since_message_no, "since_message_no", 0)
        size = _count(limit, "limit", 1, MAX_LIMIT)
        with self._lock:
            return self._feed.page(since, size)

    def push_change(
        self, entity: str, id: str, action: str = "changed", version: str | None = None
    ) -> Change:
        """Append a change made inside 1C (a till receipt, a new customer) to the feed."""
        if entity not in ENTITIES:
            raise _invalid("entity", f"{entity!r} is not one of {sorted(ENTITIES)}")
        if action not in ACTIONS:
            raise _invalid("action", f"{action!r} is not one of {sorted(ACTIONS)}")
        with self._lock:
            return self._feed.record(entity, _text(id, "id"), action, version)

    def snapshot(self) -> dict[str, object]:
        """Everything an operation can change, as plain values to compare in tests."""
        with self._lock:
            return {
                "balances": {k: (a.balance, a.reserved) for k, a in self._accounts.items()},
                "open": {k: r.amount for k, r in self._reservations.items() if r.closed is None},
                "left_to_reverse": {k: left for k, (_, _, left) in self._left.items()},
                "orders": self._orders.snapshot(),
                "operations": len(self._done),
                "last_message_no": self._feed.last_message_no,
            }

    # Internals below run under self._lock.

    def _phone(self, raw: object) -> str:
        e164 = normalize_phone(raw) if isinstance(raw, str) else None
        if e164 is None:
            raise _invalid("phone", f"{raw!r} is not a phone number")
        return e164

    def _add(
        self, phone: str, card: str | None, name: str | None, points: Decimal, level: str | None
    ) -> Customer:
        e164 = self._phone(phone)
        card = None if card is None else _text(card, "card").strip()
        if e164 in self._by_phone or card in self._by_card:
            raise _invalid("phone" if e164 in self._by_phone else "card", "already on file")
        # 1C identifies catalog items by a GUID (Ref_Key); a counter keeps them deterministic.
        customer = Customer(str(uuid.UUID(int=len(self._accounts) + 1)), e164, card, name)
        self._accounts[customer.customer_id] = _Account(customer, points, level)
        self._by_phone[e164] = customer.customer_id
        if card is not None:
            self._by_card[card] = customer.customer_id
        return customer

    def _account(self, customer_id: str, by: str = "customer_id") -> _Account:
        account = self._accounts.get(customer_id)
        if account is None:
            raise LedgerError("unknown_customer", f"Клиент не найден (by {by})")
        return account

    def _open(self, reservation_id: str) -> _Reservation:
        res = self._reservations.get(reservation_id)
        if res is None:
            raise LedgerError("reservation_not_found", f"no reservation {reservation_id!r}")
        if res.closed is not None:
            raise LedgerError("reservation_closed", f"{reservation_id!r} is already {res.closed}")
        return res

    def _recall(self, op: str, params: tuple[object, ...], kind: type[_R]) -> _R | None:
        # Decision: only successes are remembered. A failed call changed nothing, so running its
        # repeat again is safe; and the bridge derives OperationIds from its events, so a
        # remembered insufficient_balance would fail that event's retries even after an accrual.
        if op not in self._done:
            return None
        seen, result = self._done[op]
        if seen != params or not isinstance(result, kind):
            raise LedgerError("operation_conflict", f"{op!r} was used with other parameters")
        return result

    def _remember(self, op: str, params: tuple[object, ...], result: _R) -> _R:
        self._done[op] = (params, result)
        return result

    def _settle(
        self, op: str, params: tuple[object, ...], rid: str | None, amount: Decimal, acc: _Account
    ) -> Operation:
        kind = cast(Kind, params[0])
        result = Operation(op, kind, _STATUS[kind], rid, amount, acc.balance, acc.available)
        return self._remember(op, params, result)

    def _touch(self, acc: _Account) -> None:
        # Decision: a change of Balance (commit, accrue, reverse) is a customer change, as 1C
        # registers the partner when its points move; reserve and release only move holds.
        acc.version += 1
        self._feed.record("customer", acc.customer.customer_id, "changed", str(acc.version))
