"""Retention on PostgreSQL: how big the log is, and finished events pruned in small batches
with everything that hangs off them (links, history, deliveries carrying nothing else).

A batch locks the events it takes with ``FOR UPDATE SKIP LOCKED``: two instances pruning
at once take different events, and an event a claim or a replay is refreshing is left for
the next batch. Intake never waits on a prune: it only touches deliveries still waiting.
The other records that grow with traffic are pruned in ``retention_records``.
"""

from __future__ import annotations

from bridge.store.postgres import retention_records
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone
from bridge.store.records import Prunable, Status
from bridge.store.retention import PrunableRecords, Records, check_limit, check_prune

# The oldest finished events of a status, by their last change (index events_status_updated).
# An event is taken only when every delivery it has is finished as the prune allows: done,
# or dead for a purge of dead events. A delivery still waiting or leased keeps its events.
TAKEN = """
FROM events e
WHERE e.status = %s AND e.updated_at < %s
  AND NOT EXISTS (
    SELECT 1 FROM delivery_events de JOIN deliveries d ON d.id = de.delivery_id
    WHERE de.event_id = e.id AND d.status NOT IN ('done', %s))
"""
CHOOSE = f"SELECT e.id {TAKEN} ORDER BY e.status, e.updated_at LIMIT %s FOR UPDATE SKIP LOCKED"


async def prune(conn: Conn, status: Status, before: float, limit: int) -> int:
    """One batch: the chosen events, their links and history, and deliveries left empty."""
    allowed = str(Status.DEAD if status is Status.DEAD else Status.DONE)
    eids = [r[0] for r in await fetchall(conn, CHOOSE, (str(status), before, allowed, limit))]
    if not eids:
        return 0
    dids = [
        r[0]
        for r in await fetchall(
            conn,
            "DELETE FROM delivery_events WHERE event_id = ANY(%s) RETURNING delivery_id",
            (eids,),
        )
    ]
    # A delivery that coalesced a newer event too stays with it (and keeps its history).
    gone = [
        r[0]
        for r in await fetchall(
            conn,
            "DELETE FROM deliveries d WHERE d.id = ANY(%s) AND NOT EXISTS"
            " (SELECT 1 FROM delivery_events de WHERE de.delivery_id = d.id) RETURNING d.id",
            (sorted(set(dids)),),
        )
    ]
    await conn.execute("DELETE FROM events WHERE id = ANY(%s)", (eids,))
    # History goes once its event and its delivery are both gone (the trigger of 0002).
    await conn.execute(
        "DELETE FROM history WHERE event_id = ANY(%s)"
        " AND (delivery_id IS NULL OR delivery_id = ANY(%s))",
        (eids, gone),
    )
    await conn.execute("DELETE FROM history WHERE delivery_id = ANY(%s)", (gone,))
    return len(eids)


async def prunable(conn: Conn, status: Status, before: float) -> Prunable:
    """Count what :func:`prune` would take, batch after batch, without taking it."""
    allowed = str(Status.DEAD if status is Status.DEAD else Status.DONE)
    row = await fetchone(
        conn,
        f"SELECT count(*), min(e.updated_at), max(e.updated_at) {TAKEN}",
        (str(status), before, allowed),
    )
    assert row is not None
    return Prunable(status, int(row[0]), row[1], row[2])


class PostgresRetention(Engine):
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
