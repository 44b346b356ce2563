"""What support reads: events listed a page at a time and in detail, and when an entity
last changed (the counts ``bridge status`` shows are in ``counts``)."""

from __future__ import annotations

import json
from typing import Any

from bridge.errors import NotFound
from bridge.store import listing, rowmaps
from bridge.store.postgres import rows as row_io
from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone
from bridge.store.records import (
    EventDetail,
    EventFilter,
    EventRecord,
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


async def list_events(conn: Conn, flt: EventFilter, after: str | None) -> list[EventRecord]:
    """One page of events, newest received first, without payloads (an index read in
    order: ``bridge.store.listing``)."""
    key: listing.Key | None = None
    if after is not None:
        row = await fetchone(conn, listing.key_query("%s"), (parse_ref(after, "evt"),))
        if row is None:
            raise NotFound(listing.gone_message(after))
        key = (row[0], row[1])
    sql, args = listing.page_query(flt, key, q.EVENT_COLUMNS, "%s")
    for setting in listing.POSTGRES_IN_ORDER:
        await conn.execute(setting)
    rows = await fetchall(conn, sql, args)
    for setting in listing.POSTGRES_AS_USUAL:
        await conn.execute(setting)
    targets = await row_io.targets_of(conn, [row[0] for row in rows])
    return [rowmaps.event_record(row, None, targets.get(row[0], ())) for row in rows]


class PostgresSupport(Engine):
    """Reads for support, the admin API and the metrics."""

    async def list_events(self, flt: EventFilter, after: str | None = None) -> list[EventRecord]:
        """One page of events, newest received first, without payloads."""
        return await self._read(lambda conn: list_events(conn, flt, after))

    async def get_event(self, event_id: str) -> EventDetail:
        """An event, its deliveries and its history (attempts of all its deliveries)."""
        eid = parse_ref(event_id, "evt")
        return await self._read(lambda conn: load_event_detail(conn, eid))

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
