"""The documents of one emulated 1C infobase: orders and customers the bridge saves and
reads, their listings, changes made in 1C itself, and the change feed (CONTRACT.md "Orders
and customers", "Change feed").

``InfobaseDocuments`` holds the state every part of the infobase shares — one lock (an
infobase is one transaction), the customer directory, the order book, the change feed and
the results remembered by operation id — and ``OnecLedger`` (ledger.py) adds the bonus
ledger on top of it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TypeAlias, TypeVar

from connectors.onec.contract import ORIGIN_BRIDGE
from connectors.onec.emulator.checks import (
    LedgerError,
    check_count,
    check_fields,
    check_operation_id,
    check_text,
    invalid,
    is_blank,
    parse_document,
)
from connectors.onec.emulator.customers import (
    ZERO,
    BonusAccount,
    Customer,
    CustomerDirectory,
    CustomerDocument,
    SavedCustomer,
    check_phone,
)
from connectors.onec.emulator.listing import DocumentList, check_listing, page
from connectors.onec.emulator.operations import (
    MAX_LIMIT,
    CardRecord,
    Clock,
    InfobaseOperation,
    ProfileRecord,
)
from connectors.onec.emulator.orders import (
    ACTIONS,
    ENTITIES,
    ChangeFeed,
    Changes,
    FeedChange,
    OrderBook,
    OrderDocument,
    SavedOrder,
    StoredOrder,
)

R = TypeVar("R", InfobaseOperation, SavedOrder, SavedCustomer, CardRecord, ProfileRecord, Customer)
Result: TypeAlias = (
    InfobaseOperation | SavedOrder | SavedCustomer | CardRecord | ProfileRecord | Customer
)


def known(account: BonusAccount | None, by: str) -> BonusAccount:
    """``account``, or ``unknown_customer`` when no customer was found ``by`` that key."""
    if account is None:
        raise LedgerError("unknown_customer", f"Клиент не найден (by {by})")
    return account


def utc_now() -> datetime:
    """The real clock."""
    return datetime.now(UTC)


class InfobaseDocuments:
    """Orders, customers and the change feed of one infobase."""

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # one lock for everything: an infobase is one transaction
        self._customers = CustomerDirectory()
        self._done: dict[str, tuple[tuple[object, ...], Result]] = {}
        self._feed = ChangeFeed()
        self._orders = OrderBook(self._feed)

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
            return self._customers.read(known(self._customers.find(key), "id"))

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
            acc = known(self._customers.find(key), "id")
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
    ) -> FeedChange:
        """Append a change made inside 1C (a till receipt, a new customer) to the feed; with
        ``origin`` one a writer names as its own (the bridge's: ``bridge``)."""
        if entity not in ENTITIES:
            raise invalid("entity", f"{entity!r} is not one of {sorted(ENTITIES)}")
        if action not in ACTIONS:
            raise invalid("action", f"{action!r} is not one of {sorted(ACTIONS)}")
        with self._lock:
            return self._feed.record(entity, check_text(id, "id"), action, version, origin)

    # Internals below run under self._lock.

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

    def _recall(self, op: str, params: tuple[object, ...], kind: type[R]) -> R | None:
        # Decision: only successes are remembered. A failed call changed nothing, so running its
        # repeat again is safe; and the bridge derives OperationIds from its events, so a
        # remembered insufficient_balance would fail that event's retries even after an accrual.
        if op not in self._done:
            return None
        seen, result = self._done[op]
        if seen != params or not isinstance(result, kind):
            raise LedgerError("operation_conflict", f"{op!r} was used with other parameters")
        return result

    def _remember(self, op: str, params: tuple[object, ...], result: R) -> R:
        self._done[op] = (params, result)
        return result

    def _touch(self, acc: BonusAccount, origin: str | None = None) -> None:
        # Decision: a change of Balance (commit, accrue, reverse) is a customer change, as 1C
        # registers the partner when its points move; reserve and release only move holds.
        # ``origin``: the bridge's own write of the customer's data (CONTRACT.md "No echoes").
        acc.version += 1
        cid = acc.customer.customer_id
        self._feed.record("customer", cid, "changed", str(acc.version), origin)
