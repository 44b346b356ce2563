"""Rows of the SQLite store read into records. Every function runs inside a job, on the
job's connection."""

from __future__ import annotations

import json
import sqlite3

from bridge.errors import NotFound
from bridge.store.records import (
    DeliveryRecord,
    EventRecord,
    Status,
    delivery_ref,
    event_ref,
)
from bridge.store.rowmaps import event_record
from bridge.store.sqlite import sql as q


def targets_of(conn: sqlite3.Connection, eid: int) -> tuple[str, ...]:
    """The targets an event has deliveries to."""
    rows = conn.execute(
        "SELECT DISTINCT d.target FROM delivery_events de JOIN deliveries d"
        " ON d.id = de.delivery_id WHERE de.event_id = ? ORDER BY 1",
        (eid,),
    ).fetchall()
    return tuple(r[0] for r in rows)


def load_delivery(conn: sqlite3.Connection, did: int) -> DeliveryRecord:
    """One delivery with the ids of the events it carries; NotFound if absent."""
    row = conn.execute(f"SELECT {q.DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = ?", (did,))
    found = row.fetchone()
    if found is None:
        raise NotFound(f"no delivery {delivery_ref(did)}")
    eids = conn.execute(
        "SELECT event_id FROM delivery_events WHERE delivery_id = ? ORDER BY 1", (did,)
    ).fetchall()
    return DeliveryRecord(
        id=delivery_ref(found[0]),
        target=found[1],
        source=found[2],
        entity=found[3],
        entity_id=found[4],
        status=Status(found[5]),
        attempts=found[6],
        due_at=found[7],
        last_error_class=found[8],
        last_error=found[9],
        created_at=found[10],
        updated_at=found[11],
        event_ids=tuple(event_ref(r[0]) for r in eids),
        generation=found[12],
    )


def load_events_of(conn: sqlite3.Connection, did: int) -> list[EventRecord]:
    """The events a delivery carries, oldest first, with payloads."""
    rows = conn.execute(
        f"SELECT {q.EVENT_COLUMNS}, e.payload FROM delivery_events de"
        " JOIN events e ON e.id = de.event_id WHERE de.delivery_id = ? ORDER BY e.id",
        (did,),
    ).fetchall()
    return [event_record(r[:10], json.loads(r[10]), ()) for r in rows]
