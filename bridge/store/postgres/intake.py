"""Events in: stored with their deliveries (coalesced per entity), de-duplicated by source
key, and the poll positions that advance in the same transaction as the events read.

Each intake transaction first takes the advisory locks of the entities it touches (see
``sql``): two instances storing changes of one order at once store them one after the
other, so the order's deliveries are numbered in the order they became visible.
"""

from __future__ import annotations

from collections.abc import Sequence

from bridge.store.postgres import sql as q
from bridge.store.postgres.appends import APPEND_EVENT, append_args, lock_entities, stored
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone, rowcount
from bridge.store.postgres.group import GroupCommit
from bridge.store.records import Cursor, NewEvent, Rejected, Status, Stored, event_ref


def text(value: str) -> str:
    """PostgreSQL's TEXT holds no NUL character; a raw body may carry one."""
    return value.replace("\x00", "\ufffd")


async def insert_event(conn: Conn, new: NewEvent, now: float) -> Stored:
    """Insert an event and attach it to a waiting delivery per target, or a new one (the
    caller holds the entity's locks: :func:`lock_entities`)."""
    return stored(await fetchone(conn, APPEND_EVENT, append_args(new, now)))


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

    _group: GroupCommit | None = None

    async def append_events(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store events with their deliveries, committed with the appends that queue up
        meanwhile (``group``); answered after the commit."""
        now = self._clock()
        if self._group is None:
            self._group = GroupCommit(self._opened)
        return await self._group.append(events, now)

    async def close(self) -> None:
        """Let the queued appends commit, then close."""
        if self._group is not None:
            await self._group.close()
        await super().close()

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
