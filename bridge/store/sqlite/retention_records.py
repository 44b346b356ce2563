"""Retention on SQLite of what grows beside the log (``bridge.store.retention.Records``):
one batch per transaction, oldest first (migration 0014 indexes each kind by its age)."""

from __future__ import annotations

import json
import sqlite3

from bridge.store.retention import PrunableRecords, Records
from bridge.store.retention_sql import chosen, merged

_IDS = "SELECT value FROM json_each(?)"


def prune(conn: sqlite3.Connection, kind: Records, before: float, limit: int) -> int:
    """One batch of ``kind``: the oldest ``limit`` records that may go, lane by lane, and
    what hangs off them."""
    lanes = chosen(kind, "?", "rowid")
    if kind is not Records.RESERVATIONS:
        (rows,) = lanes
        return conn.execute(
            f"DELETE FROM {rows.table} WHERE {rows.key} IN ({rows.oldest('?')})", (before, limit)
        ).rowcount
    taken: list[str] = []
    for rows in lanes:
        if len(taken) < limit:
            taken += [r[0] for r in conn.execute(rows.oldest("?"), (before, limit - len(taken)))]
    ids = json.dumps(taken)
    # Its owed calls (all done), the reservation, then its history: a line may go once its
    # reservation is gone (the trigger of 0014).
    conn.execute(f"DELETE FROM owed_calls WHERE subject IN ({_IDS})", (ids,))
    gone = conn.execute(f"DELETE FROM reservations WHERE id IN ({_IDS})", (ids,)).rowcount
    conn.execute(f"DELETE FROM reservation_history WHERE reservation_id IN ({_IDS})", (ids,))
    return gone


def prunable(conn: sqlite3.Connection, kind: Records, before: float) -> PrunableRecords:
    """Count what :func:`prune` would take, batch after batch, without taking it."""
    spans = [conn.execute(rows.span(), (before,)).fetchone() for rows in chosen(kind, "?", "rowid")]
    return PrunableRecords(kind, *merged([(int(s[0]), s[1], s[2]) for s in spans]))
