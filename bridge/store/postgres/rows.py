"""Rows of the PostgreSQL store read into records, and the refresh of events' derived
status. Every function runs inside a job, on the job's connection."""

from __future__ import annotations

import json
from collections.abc import Sequence

from bridge.errors import NotFound
from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, fetchall, fetchone
from bridge.store.records import (
    DeliveryRecord,
    EventRecord,
    Status,
    delivery_ref,
    event_ref,
)
from bridge.store.rowmaps import event_record


async def targets_of(conn: Conn, eids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The targets each event has deliveries to."""
    rows = await fetchall(
        conn,
        'SELECT DISTINCT de.event_id, d.target COLLATE "C" FROM delivery_events de'
        " JOIN deliveries d ON d.id = de.delivery_id WHERE de.event_id = ANY(%s) ORDER BY 1, 2",
        (list(eids),),
    )
    found: dict[int, tuple[str, ...]] = {}
    for eid, target in rows:
        found[eid] = (*found.get(eid, ()), target)
    return found


async def load_delivery(conn: Conn, did: int) -> DeliveryRecord:
    """One delivery with the ids of the events it carries; NotFound if absent."""
    found = await fetchone(
        conn, f"SELECT {q.DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = %s", (did,)
    )
    if found is None:
        raise NotFound(f"no delivery {delivery_ref(did)}")
    eids = await fetchall(
        conn, "SELECT event_id FROM delivery_events WHERE delivery_id = %s ORDER BY 1", (did,)
    )
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


async def load_events_of(conn: Conn, did: int) -> list[EventRecord]:
    """The events a delivery carries, oldest first, with payloads."""
    rows = await fetchall(
        conn,
        f"SELECT {q.EVENT_COLUMNS}, e.payload FROM delivery_events de"
        " JOIN events e ON e.id = de.event_id WHERE de.delivery_id = %s ORDER BY e.id",
        (did,),
    )
    return [event_record(r[:10], json.loads(r[10]), ()) for r in rows]


async def refresh_events(conn: Conn, dids: Sequence[int], now: float) -> None:
    """Re-derive the status of the events these deliveries carry (locked in id order
    first, then read afresh: see ``sql``)."""
    if not dids:
        return
    locked = await fetchall(conn, q.LOCK_EVENTS, (list(dids),))
    if locked:
        await conn.execute(q.REFRESH_EVENTS, (now, [r[0] for r in locked]))
