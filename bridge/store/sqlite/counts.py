"""What ``bridge status`` and the metrics count, read from counts the log keeps as it
changes (``log_counts``, kept by the triggers of migration 0013 in the transaction of every
insert, status change and delete), so they cost the same at a thousand events and at a
million: events per status, deliveries per target and status, the oldest waiting delivery
(a partial index of the waiting ones), the oldest and newest event (an index's ends)."""

from __future__ import annotations

import contextlib
import os
import sqlite3

from bridge.store.records import LogStats, QueueDepth, Status
from bridge.store.sqlite.engine import Engine

COUNTS = "SELECT tally, target, status, n FROM log_counts WHERE n != 0"

# The oldest waiting delivery of one (target, status) cell, from index deliveries_waiting
# (its WHERE repeated word for word: SQLite uses a partial index only for a query that does).
OLDEST_WAITING = """
SELECT min(created_at) FROM deliveries
WHERE status IN ('pending', 'retry') AND target = ? AND status = ?
"""

_QUEUED = (Status.PENDING, Status.IN_FLIGHT, Status.RETRY, Status.DEAD)
_WAITING = (Status.PENDING, Status.RETRY)

Tallies = tuple[dict[Status, int], dict[tuple[str, Status], int]]


def tallies(conn: sqlite3.Connection) -> Tallies:
    """Events per status, deliveries per (target, status)."""
    events: dict[Status, int] = {}
    deliveries: dict[tuple[str, Status], int] = {}
    for tally, target, status, n in conn.execute(COUNTS):
        if tally == "events":
            events[Status(status)] = int(n)
        else:
            deliveries[(target, Status(status))] = int(n)
    return events, deliveries


def queue(conn: sqlite3.Connection) -> list[QueueDepth]:
    """Waiting, in-flight and dead deliveries per target and status, oldest waiting first."""
    _, deliveries = tallies(conn)
    cells = sorted((t, s, n) for (t, s), n in deliveries.items() if s in _QUEUED)
    depth = []
    for target, status, n in cells:
        oldest = None
        if status in _WAITING:
            oldest = conn.execute(OLDEST_WAITING, (target, status)).fetchone()[0]
        depth.append(QueueDepth(target, status, n, oldest))
    return depth


def stats(conn: sqlite3.Connection) -> tuple[Tallies, float | None, float | None]:
    """The tallies, and the oldest and newest event's reception (index events_received)."""
    oldest = conn.execute("SELECT min(received_at) FROM events").fetchone()[0]
    newest = conn.execute("SELECT max(received_at) FROM events").fetchone()[0]
    return tallies(conn), oldest, newest


class SQLiteCounts(Engine):
    """Counts for ``bridge status`` and the metrics, without reading the log."""

    async def queue_depth(self) -> list[QueueDepth]:
        """Waiting, in-flight and dead deliveries per target."""
        return await self._read(queue)

    async def count_events(self) -> dict[Status, int]:
        """How many events are in each status."""
        events, _ = await self._read(tallies)
        return events

    async def log_stats(self) -> LogStats:
        """Events per status, deliveries, the oldest and newest event, and the file's bytes
        with its WAL."""
        (events, deliveries), oldest, newest = await self._read(stats)
        size = 0
        for suffix in ("", "-wal"):
            with contextlib.suppress(FileNotFoundError):
                size += os.stat(f"{self.path}{suffix}").st_size
        return LogStats(events, sum(deliveries.values()), oldest, newest, size)
