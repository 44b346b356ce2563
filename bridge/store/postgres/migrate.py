"""PostgreSQL migrations: the numbered files of ``migrations/postgres`` applied once each.

The files are found by :func:`bridge.store.migrate.list_migrations`, as SQLite's are.
Several instances may start at once: the whole run holds a transaction-level advisory lock,
so the second waits for the first to commit and then finds nothing left to apply.
The sandbox's fresh start (:func:`set_aside`) holds the same lock.
PostgreSQL's DDL is transactional, so a migration that fails leaves no half of itself.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql as pg_sql

from bridge.store.migrate import list_migrations

# pg_advisory_xact_lock's key for "migrating the bridge's schema" (any constant unique to
# the bridge; it is 'bridge' in ASCII).
MIGRATION_LOCK = 0x627269646765


async def migrate_postgres(conn: psycopg.AsyncConnection[Any]) -> list[str]:
    """Apply the migrations this database lacks, under the migration lock; the names
    applied."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
            " name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        cur = await conn.execute("SELECT version FROM schema_migrations")
        done = {int(row[0]) for row in await cur.fetchall()}
        for version, name, sql in list_migrations("postgres"):
            if version in done:
                continue
            await conn.execute(sql.encode())  # a whole script, no parameters
            await conn.execute(
                "INSERT INTO schema_migrations VALUES (%s, %s, %s)", (version, name, time.time())
            )
            applied.append(name)
    return applied


PREVIOUS = "bridge_previous"  # the schema a fresh start keeps the previous store in


async def set_aside(conn: psycopg.AsyncConnection[Any]) -> None:
    """Copy every table of the store into the ``bridge_previous`` schema (replacing the
    copy kept before) and empty them: the sandbox's fresh start, the store before it kept
    for a look (SQLite keeps ``<file>.previous``)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        cur = await conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " AND tablename != 'schema_migrations' ORDER BY tablename"
        )
        tables = [pg_sql.Identifier(str(row[0])) for row in await cur.fetchall()]
        previous = pg_sql.Identifier(PREVIOUS)
        await conn.execute(pg_sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(previous))
        await conn.execute(pg_sql.SQL("CREATE SCHEMA {}").format(previous))
        for table in tables:
            await conn.execute(
                pg_sql.SQL("CREATE TABLE {}.{} AS TABLE {}").format(previous, table, table)
            )
        if tables:
            await conn.execute(
                pg_sql.SQL("TRUNCATE {} RESTART IDENTITY").format(pg_sql.SQL(", ").join(tables))
            )
