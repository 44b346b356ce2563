"""The order book and change feed of one emulated 1C infobase.

Plain state without locking or validation: `OnecLedger` (ledger.py) checks the parameters,
holds the lock and makes save_order idempotent before it calls in here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from connectors.onec.contract import CHANGE_ACTIONS, CHANGE_ENTITIES, ORIGIN_BRIDGE

ENTITIES = CHANGE_ENTITIES
ACTIONS = CHANGE_ACTIONS
# Decision: what Status an order has when neither the bridge's document nor 1C gave one.
DEFAULT_STATUS = "new"


@dataclass(frozen=True, slots=True)
class SavedOrder:
    """The result of save_order: 1C's document number, and whether the order was new."""

    external_id: str
    number: str
    created: bool


@dataclass(frozen=True, slots=True)
class OrderDocument:
    """The result of get_order: the document as JSON text and 1C's own fields beside it."""

    id: str  # 1C's own id (the document's Ref)
    external_id: str | None  # the bridge's ExternalId; None for an order entered in 1C
    number: str
    date: datetime
    status: str
    version: str
    order: str


@dataclass(frozen=True, slots=True)
class FeedChange:
    """One entry of the change feed; `version` is the entity's data version, if known;
    `origin` is ORIGIN_BRIDGE for a write the bridge made itself, else None (made in 1C)."""

    message_no: int
    entity: str
    id: str
    action: str
    version: str | None = None
    origin: str | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """A page of the change feed; when `more`, call again from `last_message_no`."""

    items: tuple[FeedChange, ...]
    last_message_no: int
    more: bool


class ChangeFeed:
    """Changes numbered 1, 2, 3… in the order they happened, like an exchange plan's messages."""

    def __init__(self) -> None:
        self._items: list[FeedChange] = []

    @property
    def last_message_no(self) -> int:
        """The number of the newest change, 0 while the feed is empty."""
        return len(self._items)

    def record(
        self,
        entity: str,
        id: str,
        action: str,
        version: str | None = None,
        origin: str | None = None,
    ) -> FeedChange:
        """Append a change and return it with its message number."""
        change = FeedChange(len(self._items) + 1, entity, id, action, version, origin)
        self._items.append(change)
        return change

    def page(self, since_message_no: int, limit: int) -> Changes:
        """Up to `limit` changes after `since_message_no`."""
        # Message n sits at index n - 1, so the changes after `since` start at index `since`.
        items = tuple(self._items[since_message_no : since_message_no + limit])
        # Decision: with nothing new the cursor stays where the caller has it.
        last = items[-1].message_no if items else since_message_no
        return Changes(items, last, len(self._items) > last)


@dataclass(slots=True)
class StoredOrder:
    seq: int  # its place in creation order: ListOrders pages by it
    id: str
    number: str
    date: datetime
    document: dict[str, object]
    status: str
    external_id: str | None
    version: int = 1

    @property
    def feed_id(self) -> str:
        # CONTRACT.md "Change feed": the bridge's ExternalId for orders it saved, else 1C's id.
        return self.external_id or self.id

    @property
    def created(self) -> datetime:
        """When the order was made: its Date, which nothing here changes afterwards."""
        return self.date


class OrderBook:
    """Orders by 1C's own id, found also by the bridge's external id; numbered as 1C does."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._orders: dict[str, StoredOrder] = {}
        self._by_external: dict[str, str] = {}

    def find(self, key: str) -> StoredOrder | None:
        """The order with this external id, else with this 1C id (the feed gives either)."""
        own = self._by_external.get(key, key)
        return self._orders.get(own)

    def save(self, external_id: str, document: dict[str, object], now: datetime) -> SavedOrder:
        """The bridge's write: create the order or replace its document, recorded as the
        bridge's own change (origin), so the bridge's poller does not mirror it back."""
        order = self.find(external_id)
        if order is None:
            order = self._new(document, now, external_id)
            self._by_external[external_id] = order.id
            self._feed.record("order", order.feed_id, "created", "1", ORIGIN_BRIDGE)
            return SavedOrder(external_id, order.number, created=True)
        # 1C's handler fills ЗаказКлиента.Статус from the document when it names one and
        # leaves the status alone when it does not.
        order.document, order.version = document, order.version + 1
        order.status = _status_of(document) or order.status
        self._feed.record("order", order.feed_id, "changed", str(order.version), ORIGIN_BRIDGE)
        return SavedOrder(external_id, order.number, created=False)

    def enter(self, document: dict[str, object], status: str | None, now: datetime) -> StoredOrder:
        """An order entered in 1C itself (a till, a manager): 1C's own id, no external id."""
        order = self._new(document, now, None)
        if status is not None:
            self._set_status(order, status)
        self._feed.record("order", order.feed_id, "created", "1")
        return order

    def change(
        self, order: StoredOrder, status: str | None, fields: Mapping[str, object] | None
    ) -> StoredOrder:
        """A change made in 1C (a new status, edited fields): recorded without an origin, so
        it flows to the other systems even for an order the bridge saved."""
        order.document = {**order.document, **(fields or {})}
        if status is not None:
            self._set_status(order, status)
        elif isinstance(fields, Mapping) and (named := _status_of(dict(fields))) is not None:
            order.status = named
        order.version += 1
        self._feed.record("order", order.feed_id, "changed", str(order.version))
        return order

    def read(self, order: StoredOrder) -> OrderDocument:
        """The order as get_order answers it."""
        text = json.dumps(json_values(order.document), ensure_ascii=False)
        return OrderDocument(
            order.id,
            order.external_id,
            order.number,
            order.date,
            order.status,
            str(order.version),
            text,
        )

    def in_creation_order(self) -> list[StoredOrder]:
        """Every order, the oldest first (ListOrders)."""
        return list(self._orders.values())  # a dict keeps insertion order, and none is deleted

    def snapshot(self) -> dict[str, tuple[str, int, dict[str, object]]]:
        """Number, version and document of every order, by the id the feed gives it."""
        return {o.feed_id: (o.number, o.version, o.document) for o in self._orders.values()}

    def _new(
        self, document: dict[str, object], now: datetime, external_id: str | None
    ) -> StoredOrder:
        count = len(self._orders) + 1
        # 1C numbers documents with a prefix and a zero-padded counter, e.g. "00-000001", and
        # identifies them by a GUID (Ref); a counter keeps both deterministic. Orders are never
        # deleted here, so the count is monotonic.
        own = str(uuid.UUID(int=(1 << 124) | count))
        status = _status_of(document) or DEFAULT_STATUS
        order = StoredOrder(count, own, f"00-{count:06d}", now, document, status, external_id)
        self._orders[own] = order
        return order

    @staticmethod
    def _set_status(order: StoredOrder, status: str) -> None:
        order.status = status
        if "status" in order.document:  # the document's own status is 1C's Status
            order.document = {**order.document, "status": status}


def _status_of(document: dict[str, object]) -> str | None:
    status = document.get("status")
    return status if isinstance(status, str) and status.strip() else None


def json_values(value: object) -> object:
    """A stored document as JSON values: decimals as numbers, as 1C's ЗаписатьJSON writes
    an Число (no trailing zeros: 10.50 comes back as 10.5)."""
    if isinstance(value, Mapping):
        return {str(key): json_values(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_values(item) for item in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
