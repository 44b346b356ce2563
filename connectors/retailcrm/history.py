"""Turning pages of ``/orders/history`` and ``/customers/history`` into change events.

retailcrm-api.md §2.5: one history record is one changed field of one entity, ids ascend,
and a record made with the caller's own key carries ``source: "api"`` and
``apiKey.current: true``. The bridge drops those (they are echoes of its own writes, §7.2)
and folds the rest of a page into one event per entity: deliveries re-read the full state
anyway (history gives changes, not state), so a page is "these entities changed".

A merge (``customers/combine``, ``orders/combine``) leaves the absorbed entity's ``deleted``
record with the survivor as ``combinedTo`` (§10.2, §10.3): the absorbed one becomes a
``merged`` event naming the survivor (the poller records the alias), and the survivor a
change of its own, since RetailCRM writes it no record (the survivor took the absorbed
one's orders, bonuses and data).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.connector import MERGED_ACTION, MERGED_INTO
from bridge.errors import PermanentError
from bridge.store.records import InboundEvent

# feed name → (entity of its events, key of the entity object in a history record)
FEEDS: dict[str, tuple[str, str]] = {
    "orders": ("order", "order"),
    "customers": ("customer", "customer"),
    # §10.4: the PHP fixture puts the corporate customer under `customer`, GO under
    # `corporateCustomer` [unconfirmed]: both are read.
    "corporate_customers": ("corporate_customer", "customer"),
}


@dataclass
class _Folded:
    entity_id: str
    last_record: int = 0
    external_id: str | None = None
    site: str | None = None
    created: bool = False
    deleted: bool = False
    merged_into: str | None = None
    fields: list[str] = field(default_factory=list)
    sources: set[str] = field(default_factory=set)


def is_own_echo(record: Mapping[str, Any]) -> bool:
    """A change the bridge made itself, with its own API key (§2.5 ``apiKey.current``)."""
    api_key = record.get("apiKey")
    return (
        record.get("source") == "api"
        and isinstance(api_key, Mapping)
        and api_key.get("current") is True
    )


def fold_history(feed: str, records: Iterable[Mapping[str, Any]]) -> list[InboundEvent]:
    """One event per entity changed on the page by someone other than the bridge.

    The source key names the entity and the last history id folded into it, so reading the
    same page again (after a crash before the cursor was stored) gives the same keys.
    """
    entity, key = FEEDS[feed]
    folded: dict[str, _Folded] = {}
    for record in records:
        if is_own_echo(record):
            continue
        obj = record.get(key)
        if not isinstance(obj, Mapping) and feed == "corporate_customers":
            obj = record.get("corporateCustomer")
        if not isinstance(obj, Mapping) or obj.get("id") is None:
            continue  # a record without its entity cannot be re-read
        item = _fold(folded, record, obj, _text(record.get("field")))
        item.created = item.created or record.get("created") is True
        item.deleted = item.deleted or record.get("deleted") is True
        survivor = record.get("combinedTo")
        if isinstance(survivor, Mapping) and survivor.get("id") is not None:
            item.merged_into = str(survivor["id"])
            _fold(folded, record, survivor, "combined")
    return [_event(feed, entity, item) for item in folded.values()]


def _fold(
    folded: dict[str, _Folded], record: Mapping[str, Any], obj: Mapping[str, Any], name: Any
) -> _Folded:
    """Fold one record into the entity ``obj`` names."""
    entity_id = str(obj["id"])
    item = folded.setdefault(entity_id, _Folded(entity_id))
    item.last_record = max(item.last_record, record_id(record))
    item.external_id = _text(obj.get("externalId")) or item.external_id
    item.site = _text(obj.get("site")) or item.site
    if name and name not in item.fields:
        item.fields.append(name)
    item.sources.add(str(record.get("source") or "unknown"))
    return item


def _event(feed: str, entity: str, item: _Folded) -> InboundEvent:
    payload: dict[str, Any] = {
        "external_id": item.external_id,
        "site": item.site,
        "fields": item.fields,
        "sources": sorted(item.sources),
        "history_id": item.last_record,
    }
    action = "deleted" if item.deleted else "created" if item.created else "changed"
    if item.merged_into is not None:
        action, payload[MERGED_INTO] = MERGED_ACTION, item.merged_into
    return InboundEvent(
        source_key=f"{feed}-history:{item.entity_id}:{item.last_record}",
        entity=entity,
        entity_id=item.entity_id,
        action=action,
        payload=payload,
    )


def last_history_id(records: Iterable[Mapping[str, Any]], since: int) -> int:
    """The cursor after a page: its highest record id (own echoes included)."""
    return max([since, *(record_id(r) for r in records)])


def record_id(record: Mapping[str, Any]) -> int:
    """A history record's id (§2.5: an increasing integer, the cursor); a record without one
    is a named error, not a guess that could move the cursor past changes."""
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise PermanentError(f"RetailCRM sent a history record without a numeric id: {value!r:.40}")


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def bonus_operation_events(
    rows: Iterable[Mapping[str, Any]], page_cursor: str | None
) -> list[InboundEvent]:
    """One event per bonus operation of the global feed (§4.4), entity ``loyalty_account``.

    Operations carry no id in any client model (§4.4). The key is the cursor the page was
    read from and the row's place on it: the poller only ever re-reads from a stored cursor
    (which moves with the events), so a re-read gives the same keys, while two identical
    operations read in different polls stay two.
    """
    events = []
    for index, row in enumerate(rows):
        account = (row.get("loyaltyAccount") or {}).get("id")
        if account is None:
            continue
        order = row.get("order") or {}
        digest = hashlib.sha256(f"{page_cursor or ''}#{index}".encode()).hexdigest()[:32]
        events.append(
            InboundEvent(
                source_key=f"bonus-op:{digest}",
                entity="loyalty_account",
                entity_id=str(account),
                action=str(row.get("type") or "changed"),
                payload={
                    "type": row.get("type"),
                    "amount": str(row.get("amount")),
                    "created_at": row.get("createdAt"),
                    "order_id": order.get("id"),
                    "order_external_id": order.get("externalId"),
                },
            )
        )
    return events
