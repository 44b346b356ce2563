"""Events in: stored with their deliveries (coalesced per entity), de-duplicated by source
key, and the poll positions that advance in the same transaction as the events read.

Each intake transaction first takes the advisory locks of the entities it touches (see
``sql``): two instances storing changes of one order at once store them one after the
other, so the order's deliveries are numbered in the order they became visible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone, rowcount
from bridge.store.records import Cursor, NewEvent, Rejected, Status, Stored, event_ref, payload_text


def entity_key(new: NewEvent) -> str:
    """How deliveries name the entity an event changes."""
    return f"{new.source}/{new.event.entity}/{new.event.entity_id}"


def lock_key(target: str, key: str) -> int:
    """A signed 64-bit advisory-lock key for one entity's deliveries to one target."""
    digest = hashlib.blake2b(f"{target}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_entities(conn: Conn, events: Sequence[NewEvent]) -> None:
    """Take the entity locks of a batch of events, in key order, until commit."""
    keys = sorted({lock_key(t, entity_key(e)) for e in events for t in e.targets})
    if keys:
        await conn.execute(q.LOCK_ENTITIES, (keys,))


def text(value: str) -> str:
    """PostgreSQL's TEXT holds no NUL character; a raw body may carry one."""
    return value.replace("\x00", "\ufffd")


async def insert_event(conn: Conn, new: NewEvent, now: float) -> Stored:
    """Insert an event and attach it to a waiting delivery per target, or a new one (the
    caller holds the entity's locks: :func:`lock_entities`)."""
    ev = new.event
    status, reason = (Status.PENDING, None) if new.targets else (Status.DONE, "no route")
    row = await fetchone(
        conn,
        q.INSERT_EVENT,
        (
            new.source,
            ev.source_key,
            ev.entity,
            ev.entity_id,
            ev.action,
            payload_text(ev),
            str(status),
            reason,
            now,
            now,
            new.backfill,
        ),
    )
    if row is None:
        return Stored(await existing_event(conn, new.source, ev.source_key), True)
    eid = row[0]
    key = entity_key(new)
    priority = 0 if new.backfill is None else 1
    for target in new.targets:
        if priority == 0:
            # A live change lifts the entity's backfilled deliveries still waiting.
            await conn.execute(q.LIFT_WAITING, (target, key))
        waiting = await fetchone(conn, q.FIND_WAITING, (target, key))
        if waiting is not None:
            did = waiting[0]
        else:
            made = await fetchone(
                conn,
                q.INSERT_DELIVERY,
                (target, new.source, ev.entity, ev.entity_id, key, now, now, now, priority),
            )
            assert made is not None
            did = made[0]
        await conn.execute(q.INSERT_LINK, (did, eid, target, now))
    return Stored(event_ref(eid), False)


async def insert_events(conn: Conn, events: Sequence[NewEvent], now: float) -> list[Stored]:
    """Insert a batch of events under their entities' locks."""
    await lock_entities(conn, events)
    return [await insert_event(conn, e, now) for e in events]


async def existing_event(conn: Conn, source: str, source_key: str) -> str:
    """Public id of the event already stored under (source, source_key)."""
    row = await fetchone(
        conn, "SELECT id FROM events WHERE source = %s AND source_key = %s", (source, source_key)
    )
    assert row is not None
    return event_ref(row[0])


async def insert_rejected(conn: Conn, rejected: Rejected, now: float) -> Stored:
    """Insert an unparsable body as a ``rejected`` event with its history line."""
    args = (rejected.source, rejected.source_key, None, None, None, text(rejected.body))
    row = await fetchone(
        conn,
        q.INSERT_EVENT,
        (*args, str(Status.REJECTED), text(rejected.reason), now, now, None),
    )
    if row is None:
        return Stored(await existing_event(conn, rejected.source, rejected.source_key), True)
    await conn.execute(
        q.INSERT_HISTORY,
        (
            now,
            "rejected",
            None,
            row[0],
            None,
            "rejected",
            "parse",
            text(rejected.reason),
            None,
            None,
        ),
    )
    return Stored(event_ref(row[0]), False)


class PostgresIntake(Engine):
    """Appending events, and the cursors of the pollers that read them."""

    async def append_events(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store events with their deliveries in one transaction."""
        now = self._clock()
        return await self._write(lambda conn: insert_events(conn, events, now))

    async def append_rejected(self, rejected: Rejected) -> Stored:
        """Store an unparsable body as a rejected event."""
        now = self._clock()
        return await self._write(lambda conn: insert_rejected(conn, rejected, now))

    async def append_polled(self, events: Sequence[NewEvent], cursor: Cursor) -> list[Stored]:
        """Store polled events and move the cursor in the same transaction."""
        now = self._clock()

        async def job(conn: Conn) -> list[Stored]:
            stored = await insert_events(conn, events, now)
            await conn.execute(
                "INSERT INTO cursors VALUES (%s, %s, %s, %s) ON CONFLICT (source, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (cursor.source, cursor.name, cursor.value, now),
            )
            return stored

        return await self._write(job)

    async def get_cursor(self, source: str, name: str) -> Cursor | None:
        """The stored poll position of ``source``/``name``."""
        row = await self._read(
            lambda conn: fetchone(
                conn,
                "SELECT source, name, value, updated_at FROM cursors"
                " WHERE source = %s AND name = %s",
                (source, name),
            )
        )
        return Cursor(*row) if row else None

    async def list_cursors(self) -> list[Cursor]:
        """Every poll position."""
        rows = await self._read(
            lambda conn: fetchall(
                conn,
                "SELECT source, name, value, updated_at FROM cursors"
                ' ORDER BY source COLLATE "C", name COLLATE "C"',
            )
        )
        return [Cursor(*row) for row in rows]

    async def forget_cursors(self, source: str) -> int:
        """Drop ``source``'s poll positions (its next poll starts as on a first start)."""
        return await self._write(
            lambda conn: rowcount(conn, "DELETE FROM cursors WHERE source = %s", (source,))
        )
