"""Retention on SQLite: how big the log is, and finished events pruned in small batches
with everything that hangs off them (links, history, deliveries carrying nothing else);
the other records that grow with traffic in ``retention_records``."""

from __future__ import annotations

import json
import sqlite3

from bridge.store.records import Prunable, Status
from bridge.store.retention import PrunableRecords, Records, check_limit, check_prune
from bridge.store.sqlite import retention_records
from bridge.store.sqlite.engine import Engine

# The oldest finished events of a status, by their last change (index events_status_updated).
# An event is taken only when every delivery it has is finished as the prune allows: done,
# or dead for a purge of dead events. A delivery still waiting or leased keeps its events.
TAKEN = """
FROM events e
WHERE e.status = ? AND e.updated_at < ?
  AND NOT EXISTS (
    SELECT 1 FROM delivery_events de JOIN deliveries d ON d.id = de.delivery_id
    WHERE de.event_id = e.id AND d.status NOT IN ('done', ?))
"""
CHOOSE = f"SELECT e.id {TAKEN} ORDER BY e.status, e.updated_at LIMIT ?"

_IDS = "SELECT value FROM json_each(?)"


def prune(conn: sqlite3.Connection, status: Status, before: float, limit: int) -> int:
    """One batch: the chosen events, their links and history, and deliveries left empty."""
    allowed = Status.DEAD if status is Status.DEAD else Status.DONE
    eids = [r[0] for r in conn.execute(CHOOSE, (status, before, allowed, limit))]
    if not eids:
        return 0
    events = json.dumps(eids)
    dids = [
        r[0]
        for r in conn.execute(
            f"SELECT DISTINCT delivery_id FROM delivery_events WHERE event_id IN ({_IDS})",
            (events,),
        )
    ]
    conn.execute(f"DELETE FROM delivery_events WHERE event_id IN ({_IDS})", (events,))
    # A delivery that coalesced a newer event too stays with it (and keeps its history).
    gone = json.dumps(
        [
            r[0]
            for r in conn.execute(
                f"SELECT d.id FROM deliveries d WHERE d.id IN ({_IDS}) AND NOT EXISTS"
                " (SELECT 1 FROM delivery_events de WHERE de.delivery_id = d.id)",
                (json.dumps(dids),),
            )
        ]
    )
    conn.execute(f"DELETE FROM deliveries WHERE id IN ({_IDS})", (gone,))
    conn.execute(f"DELETE FROM events WHERE id IN ({_IDS})", (events,))
    # History goes once its event and its delivery are both gone (the trigger of 0012).
    conn.execute(
        f"DELETE FROM history WHERE event_id IN ({_IDS})"
        f" AND (delivery_id IS NULL OR delivery_id IN ({_IDS}))",
        (events, gone),
    )
    conn.execute(f"DELETE FROM history WHERE delivery_id IN ({_IDS})", (gone,))
    return len(eids)


def prunable(conn: sqlite3.Connection, status: Status, before: float) -> Prunable:
    """Count what :func:`prune` would take, batch after batch, without taking it."""
    allowed = Status.DEAD if status is Status.DEAD else Status.DONE
    row = conn.execute(
        f"SELECT count(*), min(e.updated_at), max(e.updated_at) {TAKEN}",
        (status, before, allowed),
    ).fetchone()
    return Prunable(status, int(row[0]), row[1], row[2])


class SQLiteRetention(Engine):
    """The log's pruning, and the pruning of the records beside it (its size and counts:
    ``counts.py``)."""

    async def count_prunable(self, status: Status, before: float) -> Prunable:
        """What a prune of ``status`` before ``before`` would take."""
        check_prune(status, 1)
        return await self._read(lambda conn: prunable(conn, status, before))

    async def prune_events(self, status: Status, before: float, limit: int) -> int:
        """Delete one batch of finished events and what hangs off them."""
        check_prune(status, limit)
        return await self._write(lambda conn: prune(conn, status, before, limit))

    async def count_prunable_records(self, kind: Records, before: float) -> PrunableRecords:
        """What a prune of ``kind`` before ``before`` would take."""
        return await self._read(lambda conn: retention_records.prunable(conn, kind, before))

    async def prune_records(self, kind: Records, before: float, limit: int) -> int:
        """Delete one batch of ``kind`` (a reservation with its history and owed calls)."""
        check_limit(limit)
        return await self._write(lambda conn: retention_records.prune(conn, kind, before, limit))
