"""Retention on SQLite of what grows beside the log (``bridge.store.retention.Records``):
one batch per transaction, oldest first (migration 0014 indexes each kind by its age)."""

from __future__ import annotations

import json
import sqlite3

from bridge.store.retention import PrunableRecords, Records
from bridge.store.retention_sql import chosen

_IDS = "SELECT value FROM json_each(?)"


def prune(conn: sqlite3.Connection, kind: Records, before: float, limit: int) -> int:
    """One batch of ``kind``: the oldest ``limit`` records that may go, and what hangs off."""
    rows = chosen(kind, "?", "rowid")
    if kind is not Records.RESERVATIONS:
        return conn.execute(
            f"DELETE FROM {rows.table} WHERE {rows.key} IN ({rows.oldest('?')})", (before, limit)
        ).rowcount
    ids = json.dumps([r[0] for r in conn.execute(rows.oldest("?"), (before, limit))])
    # Its owed calls (all done), the reservation, then its history: a line may go once its
    # reservation is gone (the trigger of 0014).
    conn.execute(f"DELETE FROM owed_calls WHERE subject IN ({_IDS})", (ids,))
    taken = conn.execute(f"DELETE FROM reservations WHERE id IN ({_IDS})", (ids,)).rowcount
    conn.execute(f"DELETE FROM reservation_history WHERE reservation_id IN ({_IDS})", (ids,))
    return taken


def prunable(conn: sqlite3.Connection, kind: Records, before: float) -> PrunableRecords:
    """Count what :func:`prune` would take, batch after batch, without taking it."""
    row = conn.execute(chosen(kind, "?", "rowid").span(), (before,)).fetchone()
    return PrunableRecords(kind, int(row[0]), row[1], row[2])
