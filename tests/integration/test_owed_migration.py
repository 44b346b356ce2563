"""Migration 0009: the master calls reservations owed before it become owed calls."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from bridge.store.migrate import list_migrations, migrate_sqlite, split_statements

COLUMNS = (
    "id, status, master, customer_id, phone, amount, order_system, order_id,"
    " master_order_id, client, sender, expires_at, created_at, updated_at, pending,"
    " pending_amount, pending_then, pending_attempts, pending_due_at, returned"
)


def test_pending_reservation_calls_move_to_owed_calls_with_their_operation_ids(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    try:
        for version, _name, sql in list_migrations("sqlite"):
            if version < 9:  # the store as the previous version left it
                for statement in split_statements(sql):
                    conn.execute(statement)
        rows = [
            ("rsv_a", "commit_pending", "commit", "120.00", "committed", 3, 1000.0, None),
            ("rsv_b", "expired", "release", None, "expired", 0, 900.0, None),
            ("rsv_c", "committed", "reverse", "62.07", "committed", 1, None, "10.00"),
            ("rsv_d", "held", None, None, None, 0, None, None),
        ]
        for rid, status, pending, amount, then, tries, due, returned in rows:
            conn.execute(
                f"INSERT INTO reservations ({COLUMNS}) VALUES"
                " (?, ?, 'onec', 'c1', NULL, '300.00', 'onec', ?, ?, 'till', 'bridge', 0, 1,"
                " 800, ?, ?, ?, ?, ?, ?)",
                (rid, status, rid, rid, pending, amount, then, tries, due, returned),
            )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        for version, name, _sql in list_migrations("sqlite"):
            if version < 9:
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))

        assert migrate_sqlite(conn) == [n for v, n, _s in list_migrations("sqlite") if v >= 9]

        owed = conn.execute(
            "SELECT subject, system, operation, operation_id, arguments, status, attempts,"
            " due_at FROM owed_calls ORDER BY subject"
        ).fetchall()
        assert [(r[0], r[2], r[3], r[5], r[6], r[7]) for r in owed] == [
            ("rsv_a", "reservation.commit", "rsv_a:commit", "pending", 3, 1000.0),
            ("rsv_b", "reservation.release", "rsv_b:release", "pending", 0, 900.0),
            ("rsv_c", "reservation.reverse", "rsv_c:reverse:72.07", "pending", 1, 800.0),
        ]
        assert {r[1] for r in owed} == {"onec"}
        assert json.loads(owed[0][4]) == {"amount": "120.00", "then": "committed"}
        assert json.loads(owed[1][4]) == {"amount": None, "then": "expired"}
        kept = conn.execute(
            "SELECT id, pending, pending_amount FROM reservations ORDER BY id"
        ).fetchall()
        assert kept == [
            ("rsv_a", "commit", "120.00"),
            ("rsv_b", "release", None),
            ("rsv_c", "reverse", "62.07"),
            ("rsv_d", None, None),
        ]
        # 0011: the reservation's own retry columns went with the calls to owed_calls.
        columns = {r[1] for r in conn.execute("PRAGMA table_info(reservations)")}
        assert not columns & {"pending_attempts", "pending_due_at"}
    finally:
        conn.close()
