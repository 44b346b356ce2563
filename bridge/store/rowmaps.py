"""What both SQL stores read alike: rows into records (the listing's SQL, alike too, is in
``bridge.store.listing``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.store.records import (
    EventRecord,
    HistoryEntry,
    Status,
    delivery_ref,
    event_ref,
)


def event_record(row: Sequence[Any], payload: Any, targets: tuple[str, ...]) -> EventRecord:
    """An events row (and its payload and targets) as a record."""
    return EventRecord(
        id=event_ref(row[0]),
        source=row[1],
        source_key=row[2],
        entity=row[3],
        entity_id=row[4],
        action=row[5],
        status=Status(row[6]),
        reason=row[7],
        payload=payload,
        received_at=row[8],
        updated_at=row[9],
        targets=targets,
    )


def history_entry(row: Sequence[Any]) -> HistoryEntry:
    """A history row as a record."""
    return HistoryEntry(
        at=row[0],
        kind=row[1],
        delivery_id=delivery_ref(row[2]) if row[2] is not None else None,
        event_id=event_ref(row[3]) if row[3] is not None else None,
        attempt=row[4],
        outcome=row[5],
        error_class=row[6],
        message=row[7],
        duration_ms=row[8],
        actor=row[9],
    )
