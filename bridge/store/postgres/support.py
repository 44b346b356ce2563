"""What support and the metrics read: events listed and in detail, queue depth, counts,
and when an entity last changed."""

from __future__ import annotations

import json
from typing import Any

from bridge.errors import NotFound
from bridge.store import rowmaps
from bridge.store.postgres import rows as row_io
from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone
from bridge.store.records import (
    EventDetail,
    EventFilter,
    EventRecord,
    QueueDepth,
    Status,
    event_ref,
)
from bridge.store.refs import parse_ref


async def load_event_detail(conn: Conn, eid: int) -> EventDetail:
    """An event, its deliveries and the history of both; NotFound if absent."""
    row = await fetchone(
        conn, f"SELECT {q.EVENT_COLUMNS}, e.payload FROM events e WHERE e.id = %s", (eid,)
    )
    if row is None:
        raise NotFound(f"no event {event_ref(eid)}")
    payload: Any = row[10]
    if row[6] != Status.REJECTED:
        payload = json.loads(payload)
    dids = [
        r[0]
        for r in await fetchall(
            conn, "SELECT delivery_id FROM delivery_events WHERE event_id = %s ORDER BY 1", (eid,)
        )
    ]
    deliveries = [await row_io.load_delivery(conn, did) for did in dids]
    history = await fetchall(
        conn,
        "SELECT at, kind, delivery_id, event_id, attempt, outcome, error_class, message,"
        " duration_ms, actor FROM history WHERE event_id = %s OR delivery_id = ANY(%s)"
        " ORDER BY id",
        (eid, dids),
    )
    event = rowmaps.event_record(row[:10], payload, tuple(d.target for d in deliveries))
    return EventDetail(event, deliveries, [rowmaps.history_entry(h) for h in history])


async def list_events(conn: Conn, flt: EventFilter) -> list[EventRecord]:
    """Events newest first, without payloads."""
    where, args = row_io.event_where(flt)
    rows = await fetchall(
        conn,
        f"SELECT {q.EVENT_COLUMNS} FROM events e {where} ORDER BY e.id DESC LIMIT %s",
        (*args, flt.limit),
    )
    targets = await row_io.targets_of(conn, [row[0] for row in rows])
    return [rowmaps.event_record(row, None, targets.get(row[0], ())) for row in rows]


class PostgresSupport(Engine):
    """Reads for support, the admin API and the metrics."""

    async def list_events(self, flt: EventFilter) -> list[EventRecord]:
        """Events newest first, without payloads."""
        return await self._read(lambda conn: list_events(conn, flt))

    async def get_event(self, event_id: str) -> EventDetail:
        """An event, its deliveries and its history (attempts of all its deliveries)."""
        eid = parse_ref(event_id, "evt")
        return await self._read(lambda conn: load_event_detail(conn, eid))

    async def queue_depth(self) -> list[QueueDepth]:
        """Waiting, in-flight and dead deliveries per target."""
        rows = await self._read(lambda conn: fetchall(conn, q.QUEUE_DEPTH))
        return [QueueDepth(r[0], Status(r[1]), r[2], r[3]) for r in rows]

    async def count_events(self) -> dict[Status, int]:
        """How many events are in each status."""
        rows = await self._read(
            lambda conn: fetchall(conn, "SELECT status, COUNT(*) FROM events GROUP BY 1")
        )
        return {Status(r[0]): r[1] for r in rows}

    async def newest_change(
        self, source: str, entity: str, entity_id: str, *, live: bool = False
    ) -> float | None:
        """When the newest stored change of an entity (``live``: not a backfill's) was
        received."""
        live_only = " AND backfill IS NULL" if live else ""
        row = await self._read(
            lambda conn: fetchone(
                conn,
                "SELECT max(received_at) FROM events WHERE source = %s AND entity = %s"
                f" AND entity_id = %s{live_only}",
                (source, entity, entity_id),
            )
        )
        return None if row is None or row[0] is None else float(row[0])
