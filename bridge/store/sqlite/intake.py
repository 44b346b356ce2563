"""Events in: stored with their deliveries (coalesced per entity), de-duplicated by source
key, and the poll positions that advance in the same transaction as the events read."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bridge.store.records import (
    Cursor,
    NewEvent,
    Rejected,
    Status,
    Stored,
    event_ref,
    first_status,
    payload_text,
)
from bridge.store.sqlite import sql as q
from bridge.store.sqlite.engine import Engine


def insert_event(conn: sqlite3.Connection, new: NewEvent, now: float) -> Stored:
    """Insert an event and attach it to a waiting delivery per target, or a new one."""
    ev = new.event
    status, reason = first_status(new)
    row = conn.execute(
        q.INSERT_EVENT,
        (
            new.source,
            ev.source_key,
            ev.entity,
            ev.entity_id,
            ev.action,
            payload_text(ev),
            status,
            reason,
            now,
            now,
            new.backfill,
        ),
    ).fetchone()
    if row is None:
        return Stored(existing_event(conn, new.source, ev.source_key), True)
    eid = row[0]
    key = f"{new.source}/{ev.entity}/{ev.entity_id}"
    priority = 0 if new.backfill is None else 1
    for target in new.targets:
        if priority == 0:
            # A live change lifts the entity's backfilled deliveries still waiting (the one
            # it joins, or older ones in retry that its own delivery must wait behind).
            conn.execute(q.LIFT_WAITING, (target, key))
        waiting = conn.execute(q.FIND_WAITING, (target, key)).fetchone()
        if waiting is not None:
            did = waiting[0]
        else:
            did = conn.execute(
                q.INSERT_DELIVERY,
                (target, new.source, ev.entity, ev.entity_id, key, now, now, now, priority),
            ).fetchone()[0]
        conn.execute(q.INSERT_LINK, (did, eid, target, now))
    return Stored(event_ref(eid), False)


def existing_event(conn: sqlite3.Connection, source: str, source_key: str) -> str:
    """Public id of the event already stored under (source, source_key)."""
    row = conn.execute(
        "SELECT id FROM events WHERE source = ? AND source_key = ?", (source, source_key)
    ).fetchone()
    return event_ref(row[0])


def insert_rejected(conn: sqlite3.Connection, rejected: Rejected, now: float) -> Stored:
    """Insert an unparsable body as a ``rejected`` event with its history line."""
    row = conn.execute(
        q.INSERT_EVENT,
        (
            rejected.source,
            rejected.source_key,
            None,
            None,
            None,
            rejected.body,
            Status.REJECTED,
            rejected.reason,
            now,
            now,
            None,  # not a backfill's
        ),
    ).fetchone()
    if row is None:
        return Stored(existing_event(conn, rejected.source, rejected.source_key), True)
    conn.execute(
        q.INSERT_HISTORY,
        (now, "rejected", None, row[0], None, "rejected", "parse", rejected.reason, None, None),
    )
    return Stored(event_ref(row[0]), False)


class SQLiteIntake(Engine):
    """Appending events, and the cursors of the pollers that read them."""

    async def append_events(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store events with their deliveries in one transaction."""
        now = self._clock()
        return await self._write(lambda conn: [insert_event(conn, e, now) for e in events])

    async def append_rejected(self, rejected: Rejected) -> Stored:
        """Store an unparsable body as a rejected event."""
        now = self._clock()
        return await self._write(lambda conn: insert_rejected(conn, rejected, now))

    async def append_polled(self, events: Sequence[NewEvent], cursor: Cursor) -> list[Stored]:
        """Store polled events and move the cursor in the same transaction."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> list[Stored]:
            stored = [insert_event(conn, e, now) for e in events]
            conn.execute(
                "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (source, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (cursor.source, cursor.name, cursor.value, now),
            )
            return stored

        return await self._write(job)

    async def get_cursor(self, source: str, name: str) -> Cursor | None:
        """The stored poll position of ``source``/``name``."""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT source, name, value, updated_at FROM cursors WHERE source = ? AND name = ?",
                (source, name),
            ).fetchone()
        )
        return Cursor(*row) if row else None

    async def list_cursors(self) -> list[Cursor]:
        """Every poll position."""
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT source, name, value, updated_at FROM cursors ORDER BY source, name"
            ).fetchall()
        )
        return [Cursor(*row) for row in rows]

    async def forget_cursors(self, source: str) -> int:
        """Drop ``source``'s poll positions (its next poll starts as on a first start)."""
        return await self._write(
            lambda conn: conn.execute("DELETE FROM cursors WHERE source = ?", (source,)).rowcount
        )
