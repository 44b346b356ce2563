"""What ``bridge status`` and the metrics count, read from counts the log keeps as it
changes (``log_counts``: the triggers of migration 0003 count every insert, status change
and delete in its own transaction, in a row of the session that made it), so they cost the
same at a thousand events and at a million: events per status, deliveries per target and
status, the oldest waiting delivery (a partial index of the waiting ones), the oldest and
newest event (an index's ends), the tables' bytes. One snapshot sums the sessions' rows:
exact however many instances write meanwhile."""

from __future__ import annotations

from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone
from bridge.store.records import LogStats, QueueDepth, Status

COUNTS = """
SELECT tally, target, status, sum(n) FROM log_counts
GROUP BY tally, target, status HAVING sum(n) != 0
"""

# The oldest waiting delivery of each target and waiting status (index deliveries_waiting).
OLDEST_WAITING = """
SELECT t.target, s.status, (
    SELECT min(d.created_at) FROM deliveries d
    WHERE d.target = t.target AND d.status = s.status AND d.status IN ('pending', 'retry'))
FROM unnest(%s::text[]) t (target), unnest(ARRAY['pending', 'retry']) s (status)
"""

# The bytes of the store's tables and their indexes (the database may hold others').
SIZE = """
SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind = 'r'
"""

_QUEUED = (Status.PENDING, Status.IN_FLIGHT, Status.RETRY, Status.DEAD)

Tallies = tuple[dict[Status, int], dict[tuple[str, Status], int]]


async def tallies(conn: Conn) -> Tallies:
    """Events per status, deliveries per (target, status)."""
    events: dict[Status, int] = {}
    deliveries: dict[tuple[str, Status], int] = {}
    for tally, target, status, n in await fetchall(conn, COUNTS):
        if tally == "events":
            events[Status(status)] = int(n)
        else:
            deliveries[(target, Status(status))] = int(n)
    return events, deliveries


async def queue(conn: Conn) -> list[QueueDepth]:
    """Waiting, in-flight and dead deliveries per target and status."""
    _, deliveries = await tallies(conn)
    cells = sorted((t, s, n) for (t, s), n in deliveries.items() if s in _QUEUED)
    targets = sorted({t for t, _, _ in cells})
    oldest = {(r[0], r[1]): r[2] for r in await fetchall(conn, OLDEST_WAITING, (targets,))}
    return [QueueDepth(t, s, n, oldest.get((t, str(s)))) for t, s, n in cells]


async def stats(conn: Conn) -> LogStats:
    """The tallies, the oldest and newest event's reception, the tables' bytes."""
    events, deliveries = await tallies(conn)
    row = await fetchone(
        conn,
        "SELECT (SELECT min(received_at) FROM events), (SELECT max(received_at) FROM events),"
        f" ({SIZE})",
    )
    assert row is not None
    size = None if row[2] is None else int(row[2])
    return LogStats(events, sum(deliveries.values()), row[0], row[1], size)


class PostgresCounts(Engine):
    """Counts for ``bridge status`` and the metrics, without reading the log."""

    async def queue_depth(self) -> list[QueueDepth]:
        """Waiting, in-flight and dead deliveries per target."""
        return await self._read(queue)

    async def count_events(self) -> dict[Status, int]:
        """How many events are in each status."""
        events, _ = await self._read(tallies)
        return events

    async def log_stats(self) -> LogStats:
        """Events per status, deliveries, the oldest and newest event, the tables' bytes."""
        return await self._read(stats)
