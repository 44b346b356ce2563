"""The order book and change feed of one emulated 1C infobase.

Plain state without locking or validation: `OnecLedger` (ledger.py) checks the parameters,
holds the lock and makes save_order idempotent before it calls in here.
"""

from __future__ import annotations

from dataclasses import dataclass

from connectors.onec.contract import CHANGE_ACTIONS, CHANGE_ENTITIES

ENTITIES = CHANGE_ENTITIES
ACTIONS = CHANGE_ACTIONS


@dataclass(frozen=True, slots=True)
class SavedOrder:
    """The result of save_order: 1C's document number, and whether the order was new."""

    external_id: str
    number: str
    created: bool


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the change feed; `version` is the entity's data version, if known."""

    message_no: int
    entity: str
    id: str
    action: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class Changes:
    """A page of the change feed; when `more`, call again from `last_message_no`."""

    items: tuple[Change, ...]
    last_message_no: int
    more: bool


class ChangeFeed:
    """Changes numbered 1, 2, 3… in the order they happened, like an exchange plan's messages."""

    def __init__(self) -> None:
        self._items: list[Change] = []

    @property
    def last_message_no(self) -> int:
        """The number of the newest change, 0 while the feed is empty."""
        return len(self._items)

    def record(self, entity: str, id: str, action: str, version: str | None = None) -> Change:
        """Append a change and return it with its message number."""
        change = Change(len(self._items) + 1, entity, id, action, version)
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
class _Order:
    number: str
    document: dict[str, object]
    version: int = 1


class OrderBook:
    """Orders keyed by the bridge's external id, numbered as 1C numbers documents."""

    def __init__(self, feed: ChangeFeed) -> None:
        self._feed = feed
        self._orders: dict[str, _Order] = {}

    def save(self, external_id: str, document: dict[str, object]) -> SavedOrder:
        """Create the order or replace its document, recording order/created or order/changed."""
        order = self._orders.get(external_id)
        if order is None:
            # 1C numbers documents with a prefix and a zero-padded counter, e.g. "00-000001";
            # orders are never deleted here, so the count is monotonic.
            order = _Order(f"00-{len(self._orders) + 1:06d}", document)
            self._orders[external_id] = order
            self._feed.record("order", external_id, "created", "1")
        else:
            order.document, order.version = document, order.version + 1
            self._feed.record("order", external_id, "changed", str(order.version))
        return SavedOrder(external_id, order.number, created=order.version == 1)

    def snapshot(self) -> dict[str, tuple[str, int, dict[str, object]]]:
        """Number, version and document of every order, by external id."""
        return {k: (o.number, o.version, o.document) for k, o in self._orders.items()}
