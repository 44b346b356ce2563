"""Retention on PostgreSQL of what grows beside the log (``bridge.store.retention.Records``):
one batch per transaction, oldest first (migration 0004 indexes each kind by its age).

A batch locks the rows it takes with ``FOR UPDATE SKIP LOCKED``: a reservation another
instance is moving (a return's reverse being owed) is left for the next batch, and that
instance never waits on a prune longer than one batch.
"""

from __future__ import annotations

from bridge.store.postgres.engine import Conn, fetchall, fetchone, rowcount
from bridge.store.retention import PrunableRecords, Records
from bridge.store.retention_sql import Span, chosen, merged


async def prune(conn: Conn, kind: Records, before: float, limit: int) -> int:
    """One batch of ``kind``: the oldest ``limit`` records that may go, lane by lane, and
    what hangs off them."""
    lanes = chosen(kind, "%s", "ctid")
    if kind is not Records.RESERVATIONS:
        (rows,) = lanes
        oldest = f"{rows.oldest('%s')} FOR UPDATE SKIP LOCKED"
        return await rowcount(
            conn, f"DELETE FROM {rows.table} WHERE {rows.key} IN ({oldest})", (before, limit)
        )
    ids: list[str] = []
    for rows in lanes:
        if len(ids) < limit:
            oldest = f"{rows.oldest('%s')} FOR UPDATE SKIP LOCKED"
            ids += [r[0] for r in await fetchall(conn, oldest, (before, limit - len(ids)))]
    if not ids:
        return 0
    # Its owed calls (all done), the reservation, then its history: a line may go once its
    # reservation is gone (the trigger of 0004).
    await conn.execute("DELETE FROM owed_calls WHERE subject = ANY(%s)", (ids,))
    gone = await rowcount(conn, "DELETE FROM reservations WHERE id = ANY(%s)", (ids,))
    await conn.execute("DELETE FROM reservation_history WHERE reservation_id = ANY(%s)", (ids,))
    return gone


async def prunable(conn: Conn, kind: Records, before: float) -> PrunableRecords:
    """Count what :func:`prune` would take, batch after batch, without taking it."""
    spans: list[Span] = []
    for rows in chosen(kind, "%s", "ctid"):
        row = await fetchone(conn, rows.span(), (before,))
        assert row is not None
        spans.append((int(row[0]), row[1], row[2]))
    return PrunableRecords(kind, *merged(spans))
