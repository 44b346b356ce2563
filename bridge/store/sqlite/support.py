"""What support reads: events listed a page at a time and in detail, and when an entity
last changed (the counts ``bridge status`` shows are in ``counts``)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from bridge.errors import NotFound
from bridge.store import listing, rowmaps
from bridge.store.records import (
    EventDetail,
    EventFilter,
    EventRecord,
    Status,
    event_ref,
)
from bridge.store.refs import parse_ref
from bridge.store.sqlite import rows as row_io
from bridge.store.sqlite import sql as q
from bridge.store.sqlite.engine import Engine


def load_event_detail(conn: sqlite3.Connection, eid: int) -> EventDetail:
    """An event, its deliveries and the history of both; NotFound if absent."""
    row = conn.execute(
        f"SELECT {q.EVENT_COLUMNS}, e.payload FROM events e WHERE e.id = ?", (eid,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no event {event_ref(eid)}")
    payload: Any = row[10]
    if row[6] != Status.REJECTED:
        payload = json.loads(payload)
    dids = [
        r[0]
        for r in conn.execute(
            "SELECT delivery_id FROM delivery_events WHERE event_id = ? ORDER BY 1", (eid,)
        )
    ]
    deliveries = [row_io.load_delivery(conn, did) for did in dids]
    marks = ",".join("?" * len(dids)) or "NULL"
    history = conn.execute(
        "SELECT at, kind, delivery_id, event_id, attempt, outcome, error_class, message,"
        f" duration_ms, actor FROM history WHERE event_id = ? OR delivery_id IN ({marks})"
        " ORDER BY id",
        (eid, *dids),
    ).fetchall()
    event = rowmaps.event_record(row[:10], payload, tuple(d.target for d in deliveries))
    return EventDetail(event, deliveries, [rowmaps.history_entry(h) for h in history])


class SQLiteSupport(Engine):
    """Reads for support, the admin API and the metrics."""

    async def list_events(self, flt: EventFilter, after: str | None = None) -> list[EventRecord]:
        """One page of events, newest received first, without payloads (an index read in
        order: ``bridge.store.listing``)."""

        def job(conn: sqlite3.Connection) -> list[EventRecord]:
            key: listing.Key | None = None
            if after is not None:
                found = conn.execute(listing.key_query("?"), (parse_ref(after, "evt"),))
                row = found.fetchone()
                if row is None:
                    raise NotFound(listing.gone_message(after))
                key = (row[0], row[1])
            sql, args = listing.page_query(flt, key, q.EVENT_COLUMNS, "?")
            rows = conn.execute(sql, args).fetchall()
            return [
                rowmaps.event_record(row, None, row_io.targets_of(conn, row[0])) for row in rows
            ]

        return await self._read(job)

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
            lambda conn: conn.execute(
                "SELECT max(received_at) FROM events WHERE source = ? AND entity = ?"
                f" AND entity_id = ?{live_only}",
                (source, entity, entity_id),
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])
