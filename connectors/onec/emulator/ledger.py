"""The state of one 1C infobase behind the emulator: bonus ledger, customers, orders, change feed.

Pure and in memory: the rules are CONTRACT.md's ("Ledger rules", "Idempotency", "Errors"),
the names its HTTP/JSON (snake_case) form; the emulator adds SOAP/HTTP around it. Choices
the contract leaves open are marked "Decision:" where they are made.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal
from typing import TypeAlias, TypeVar, cast

from connectors.onec.contract import ORIGIN_BRIDGE
from connectors.onec.emulator.checks import (
    CENT,
    ERROR_CODES,
    LedgerError,
    check_amount,
    check_count,
    check_fields,
    check_moment,
    check_operation_id,
    check_text,
    invalid,
    is_blank,
    parse_document,
)
from connectors.onec.emulator.customers import (
    ZERO,
    Account,
    Customer,
    CustomerDirectory,
    CustomerDocument,
    SavedCustomer,
    check_phone,
    normalize_phone,
)
from connectors.onec.emulator.listing import DocumentList, check_listing, page
from connectors.onec.emulator.operations import (
    MAX_LIMIT,
    SANDBOX_CUSTOMERS,
    STATUS_OF,
    Balance,
    Clock,
    Kind,
    Operation,
    Reservation,
)
from connectors.onec.emulator.orders import (
    ACTIONS,
    ENTITIES,
    Change,
    ChangeFeed,
    Changes,
    OrderBook,
    OrderDocument,
    SavedOrder,
    StoredOrder,
)

_R = TypeVar("_R", "Operation", SavedOrder, SavedCustomer)
_Result: TypeAlias = "Operation | SavedOrder | SavedCustomer"


def _known(account: Account | None, by: str) -> Account:
    if account is None:
        raise LedgerError("unknown_customer", f"Клиент не найден (by {by})")
    return account


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
        self._customers = CustomerDirectory()
        self._reservations: dict[str, Reservation] = {}
        self._left: dict[str, tuple[Kind, str, Decimal]] = {}  # accrue/commit -> left to reverse
        self._done: dict[str, tuple[tuple[object, ...], _Result]] = {}
        self._feed = ChangeFeed()
        self._orders = OrderBook(self._feed)

    def seed_sandbox(self) -> None:
        """Add SANDBOX_CUSTOMERS, as data entered before the exchange began (not in the feed)."""
        now = self._now()
        with self._lock:
            for phone, card, name, points, level in SANDBOX_CUSTOMERS:
                e164, card_no = self._customers.free(phone, card)
                self._customers.add(e164, card_no, name, Decimal(points), level, now)

    def find_customer(
        self, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> Customer:
        """Find a customer by exactly one of phone (any Russian spelling), card or id."""
        # Blank counts as absent: 1C's XDTO writes an unset optional string as an empty element.
        keys = {"phone": phone, "card": card, "customer_id": customer_id}
        given = {k: v for k, v in keys.items() if not (v is None or str(v).strip() == "")}
        if len(given) != 1:
            raise invalid("phone, card, customer_id", f"exactly one is required, got {len(given)}")
        ((field, value),) = given.items()
        with self._lock:
            if field == "phone":
                found = self._customers.by_phone(check_phone(value))
            elif field == "card":
                found = self._customers.by_card(check_text(value, "card").strip())
            else:
                found = self._customers.accounts.get(check_text(value, "customer_id"))
            return _known(found, field).customer

    def balance(self, customer_id: str, cart_total: Decimal | str | None = None) -> Balance:
        """Points of a customer; with a cart total also the most that cart may be paid with."""
        cid = check_text(customer_id, "customer_id")
        total = None
        if cart_total is not None:
            total = check_amount(cart_total, "cart_total", allow_zero=True)
        now = self._now()
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
        op, cid, points = (
            check_operation_id(operation_id),
            check_text(customer_id, "customer_id"),
            check_amount(amount),
        )
        order = check_text(order_id, "order_id")
        # Decision: expires_at is only part of the request. CONTRACT.md keeps a reservation
        # open until commit or release, so nothing here expires it.
        expiry = None if expires_at is None else check_moment(expires_at, "expires_at")
        params = ("reserve", cid, points, order, expiry)
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            acc = self._account(cid)
            if points > acc.available:
                raise LedgerError("insufficient_balance", f"{points} > available {acc.available}")
            acc.reserved += points
            self._reservations[op] = Reservation(cid, points)
            return self._settle(op, params, op, points, acc)

    def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | str | None = None
    ) -> Operation:
        """Write off the reservation (or `amount` of it, releasing the rest) and close it."""
        op, rid = check_operation_id(operation_id), check_text(reservation_id, "reservation_id")
        points = None if amount is None else check_amount(amount)
        params = ("commit", rid, points)  # "same parameters" = same request: None != full amount
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            res = self._open(rid)
            written = res.amount if points is None else points
            if written > res.amount:
                raise LedgerError("amount_exceeds_reservation", f"{written} > {res.amount} held")
            acc = self._customers.accounts[res.customer_id]
            acc.reserved -= res.amount
            acc.balance -= written
            res.closed = "committed"
            self._left[op] = ("commit", res.customer_id, written)
            self._touch(acc)
            return self._settle(op, params, rid, written, acc)

    def release(self, operation_id: str, reservation_id: str) -> Operation:
        """Close a reservation without a write-off; the result's amount is what was held."""
        op, rid = check_operation_id(operation_id), check_text(reservation_id, "reservation_id")
        with self._lock:
            if (known := self._recall(op, ("release", rid), Operation)) is not None:
                return known
            res = self._open(rid)
            acc = self._customers.accounts[res.customer_id]
            acc.reserved -= res.amount
            res.closed = "released"
            return self._settle(op, ("release", rid), rid, res.amount, acc)

    def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal | str, order_id: str
    ) -> Operation:
        """Add points to a customer for an order."""
        op, cid, points = (
            check_operation_id(operation_id),
            check_text(customer_id, "customer_id"),
            check_amount(amount),
        )
        params = ("accrue", cid, points, check_text(order_id, "order_id"))
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
        op, orig = (
            check_operation_id(operation_id),
            check_text(original_operation_id, "original_operation_id"),
        )
        points = check_amount(amount)
        params = ("reverse", orig, points)
        with self._lock:
            if (known := self._recall(op, params, Operation)) is not None:
                return known
            if orig not in self._left:  # Decision: the contract has no code for this case.
                raise invalid("original_operation_id", f"{orig!r} is no accrue or commit here")
            kind, cid, left = self._left[orig]
            if points > left:
                raise LedgerError("amount_exceeds_original", f"{points} > {left} left of {orig}")
            self._left[orig] = (kind, cid, left - points)
            acc = self._customers.accounts[cid]
            # Decision: reversing accrued points already spent takes the balance below zero (a
            # debt): the contract gives reverse no insufficient_balance, and a return must pass.
            acc.balance += points if kind == "commit" else -points
            self._touch(acc)
            return self._settle(op, params, None, points, acc)

    def save_order(self, operation_id: str, external_id: str, order: str) -> SavedOrder:
        """Create or update the order with this external id; `order` is a JSON object as text."""
        op, ext = check_operation_id(operation_id), check_text(external_id, "external_id")
        document = parse_document(order, "order")
        params = ("save_order", ext, document)  # parsed: spacing and key order do not count
        now = self._now()
        with self._lock:
            if (known := self._recall(op, params, SavedOrder)) is not None:
                return known
            return self._remember(op, params, self._orders.save(ext, document, now))

    def get_order(self, id: str) -> OrderDocument:
        """The order the change feed calls ``id``: the bridge's external id, or 1C's own id."""
        key = check_text(id, "id")
        with self._lock:
            return self._orders.read(self._order(key))

    def save_customer(self, operation_id: str, external_id: str, customer: str) -> SavedCustomer:
        """Create or update the customer with this external id; `customer` is a JSON object
        as text, of which 1C reads `phone`, `card` and `name` into its catalog."""
        op, ext = check_operation_id(operation_id), check_text(external_id, "external_id")
        document = parse_document(customer, "customer")
        name = document.get("name")
        if not (name is None or isinstance(name, str)):
            raise invalid("customer.name", "a string")
        params = ("save_customer", ext, document)
        now = self._now()
        with self._lock:
            if (known := self._recall(op, params, SavedCustomer)) is not None:
                return known
            phone = None if is_blank(document.get("phone")) else document["phone"]
            e164 = None if phone is None else check_phone(phone, "customer.phone")
            acc = self._customers.find(ext)
            if acc is None and e164 is not None:
                # Decision: a new external id whose phone is on file names that customer: 1C
                # keys loyalty customers by phone, and a second partner with the same phone
                # would split the points (issue 6: customers are matched by normalised phone).
                acc = self._customers.by_phone(e164)
            if acc is None and e164 is None:
                raise invalid("customer.phone", "required for a new customer")
            current = acc.customer if acc is not None else None
            # A key the document leaves out keeps 1C's value; one it sends empty clears it.
            if current is not None:
                e164 = e164 or current.phone
                name = name if "name" in document else current.name
            card = document.get("card", current.card if current else None)
            e164, card = self._customers.free(e164, card, acc, "customer.")
            name = name.strip() or None if isinstance(name, str) else None
            if acc is None:
                acc = self._customers.add(e164, card, name, ZERO, None, now)
            else:
                self._customers.update(acc, e164, card, name)
                acc.version += 1
            self._customers.link(acc, ext)
            acc.document = document
            cid, created = acc.customer.customer_id, current is None
            action = "created" if created else "changed"
            self._feed.record("customer", cid, action, str(acc.version), ORIGIN_BRIDGE)
            return self._remember(op, params, SavedCustomer(ext, cid, created))

    def get_customer(self, id: str) -> CustomerDocument:
        """The customer saved under external id ``id``, else with 1C's customer id ``id``."""
        key = check_text(id, "id")
        with self._lock:
            return self._customers.read(_known(self._customers.find(key), "id"))

    def list_orders(
        self, created_from: object = None, after: object = None, limit: object = None
    ) -> DocumentList:
        """A page of the orders made at or after ``created_from``, in creation order, after
        the cursor ``after``; each as get_order answers it."""
        query = check_listing("orders", created_from, after, limit)
        with self._lock:
            orders, cursor, total = page(query, self._orders.in_creation_order())
            return DocumentList(tuple(self._orders.read(o) for o in orders), cursor, total)

    def list_customers(
        self, created_from: object = None, after: object = None, limit: object = None
    ) -> DocumentList:
        """A page of the customers entered at or after ``created_from``, in creation order,
        after the cursor ``after``; each as get_customer answers it."""
        query = check_listing("customers", created_from, after, limit)
        with self._lock:
            accounts, cursor, total = page(query, self._customers.in_creation_order())
            return DocumentList(tuple(self._customers.read(a) for a in accounts), cursor, total)

    # Changes made in 1C itself (a manager, a till): the emulator's admin API and tests use
    # these to play the 1C side. None of them carries the bridge's origin.

    def enter_order(
        self, document: Mapping[str, object] | None = None, status: str | None = None
    ) -> OrderDocument:
        """An order entered in 1C: 1C's own id and number, no external id."""
        fields = check_fields(document, "document")
        state = None if status is None else check_text(status, "status")
        now = self._now()
        with self._lock:
            return self._orders.read(self._orders.enter(fields, state, now))

    def change_order(
        self,
        id: str,
        status: str | None = None,
        fields: Mapping[str, object] | None = None,
    ) -> OrderDocument:
        """A change of an order in 1C: a new status and/or fields merged into its document."""
        key, patch = check_text(id, "id"), check_fields(fields, "fields")
        state = None if status is None else check_text(status, "status")
        if state is None and not patch:
            raise invalid("status, fields", "at least one is required")
        with self._lock:
            return self._orders.read(self._orders.change(self._order(key), state, patch))

    def change_customer(
        self,
        id: str,
        phone: str | None = None,
        card: str | None = None,
        name: str | None = None,
    ) -> CustomerDocument:
        """A change of a customer in 1C: a new phone, card or name."""
        key = check_text(id, "id")
        if phone is None and card is None and name is None:
            raise invalid("phone, card, name", "at least one is required")
        with self._lock:
            acc = _known(self._customers.find(key), "id")
            c = acc.customer
            e164, card_no = self._customers.free(
                c.phone if phone is None else phone, card or c.card, acc
            )
            self._customers.update(acc, e164, card_no, c.name if name is None else name)
            self._touch(acc)
            return self._customers.read(acc)

    def get_changes(self, since_message_no: int, limit: int = 100) -> Changes:
        """Changes after `since_message_no`, at most `limit` (1..1000) of them."""
        since = check_count(since_message_no, "since_message_no", 0)
        size = check_count(limit, "limit", 1, MAX_LIMIT)
        with self._lock:
            return self._feed.page(since, size)

    def push_change(
        self,
        entity: str,
        id: str,
        action: str = "changed",
        version: str | None = None,
        origin: str | None = None,
    ) -> Change:
        """Append a change made inside 1C (a till receipt, a new customer) to the feed; with
        ``origin`` one a writer names as its own (the bridge's: ``bridge``)."""
        if entity not in ENTITIES:
            raise invalid("entity", f"{entity!r} is not one of {sorted(ENTITIES)}")
        if action not in ACTIONS:
            raise invalid("action", f"{action!r} is not one of {sorted(ACTIONS)}")
        with self._lock:
            return self._feed.record(entity, check_text(id, "id"), action, version, origin)

    def snapshot(self) -> dict[str, object]:
        """Everything an operation can change, as plain values to compare in tests."""
        with self._lock:
            accounts = self._customers.accounts
            return {
                "balances": {k: (a.balance, a.reserved) for k, a in accounts.items()},
                "customers": {
                    k: (a.customer.phone, a.customer.card, a.customer.name, a.version, a.document)
                    for k, a in accounts.items()
                },
                "open": {k: r.amount for k, r in self._reservations.items() if r.closed is None},
                "left_to_reverse": {k: left for k, (_, _, left) in self._left.items()},
                "orders": self._orders.snapshot(),
                "operations": len(self._done),
                "last_message_no": self._feed.last_message_no,
            }

    # Internals below run under self._lock.

    def _account(self, customer_id: str) -> Account:
        return _known(self._customers.accounts.get(customer_id), "customer_id")

    def _order(self, key: str) -> StoredOrder:
        order = self._orders.find(key)
        if order is None:
            raise LedgerError("unknown_order", f"Заказ не найден: {key!r}")
        return order

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:
            raise ValueError("the clock must return an aware datetime")
        return now

    def _open(self, reservation_id: str) -> Reservation:
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
        self, op: str, params: tuple[object, ...], rid: str | None, amount: Decimal, acc: Account
    ) -> Operation:
        kind = cast(Kind, params[0])
        result = Operation(op, kind, STATUS_OF[kind], rid, amount, acc.balance, acc.available)
        return self._remember(op, params, result)

    def _touch(self, acc: Account) -> None:
        # Decision: a change of Balance (commit, accrue, reverse) is a customer change, as 1C
        # registers the partner when its points move; reserve and release only move holds.
        acc.version += 1
        self._feed.record("customer", acc.customer.customer_id, "changed", str(acc.version))


__all__ = [
    "ERROR_CODES",
    "SANDBOX_CUSTOMERS",
    "Balance",
    "Customer",
    "LedgerError",
    "OnecLedger",
    "Operation",
    "normalize_phone",
]
