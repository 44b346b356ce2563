"""Versioned schema migrations: numbered SQL files applied once each, in order."""

from __future__ import annotations

import re
import sqlite3
import time
from importlib import resources

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def list_migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped for ``dialect``, in order."""
    folder = resources.files("bridge.store") / "migrations" / dialect
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate_sqlite(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations this database lacks; return the names applied."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, name, sql in list_migrations("sqlite"):
        if version in done:
            continue
        # executescript commits first; wrap the file so a failure leaves no half-schema.
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\n"
                f"INSERT INTO schema_migrations VALUES ({version}, '{name}', {time.time()});\n"
                "COMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied
