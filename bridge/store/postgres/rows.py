"""Rows of the PostgreSQL store read into records, the WHERE clause of an event filter,
and the refresh of events' derived status. Every function runs inside a job, on the job's
connection."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bridge.errors import NotFound
from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, fetchall, fetchone
from bridge.store.records import (
    DeliveryRecord,
    EventFilter,
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


async def refresh_events(conn: Conn, dids: Sequence[int], now: float) -> None:
    """Re-derive the status of the events these deliveries carry (locked in id order
    first, then read afresh: see ``sql``)."""
    if not dids:
        return
    locked = await fetchall(conn, q.LOCK_EVENTS, (list(dids),))
    if locked:
        await conn.execute(q.REFRESH_EVENTS, (now, [r[0] for r in locked]))


def event_where(flt: EventFilter) -> tuple[str, list[Any]]:
    """The WHERE clause and arguments of an event filter."""
    clauses: list[str] = []
    args: list[Any] = []
    if flt.target is not None:
        sub = (
            "e.id IN (SELECT de.event_id FROM delivery_events de JOIN deliveries d"
            " ON d.id = de.delivery_id WHERE d.target = %s"
        )
        args.append(flt.target)
        if flt.status is not None:
            sub += " AND d.status = %s"
            args.append(str(flt.status))
        clauses.append(sub + ")")
    elif flt.status is not None:
        clauses.append("e.status = %s")
        args.append(str(flt.status))
    if flt.source is not None:
        clauses.append("e.source = %s")
        args.append(flt.source)
    if flt.since is not None:
        clauses.append("e.received_at >= %s")
        args.append(flt.since)
    if flt.until is not None:
        clauses.append("e.received_at < %s")
        args.append(flt.until)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), args
