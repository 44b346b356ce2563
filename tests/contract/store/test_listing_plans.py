"""Every filter combination ``bridge events list`` offers reads an index in the order it
prints (issue 16): the query plan of each page, on SQLite and on PostgreSQL, sorts nothing
(no ``USE TEMP B-TREE FOR ORDER BY``, no ``Sort`` node) and scans no table whole.

The log is built with SQL (a few thousand events, a realistic mix of statuses, sources and
targets) through the stores' own migrations; SQLite is not ANALYZEd, as in production.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.store import listing
from bridge.store.migrate import migrate_sqlite
from bridge.store.postgres import PostgresStore
from bridge.store.records import EventFilter, Status

EVENTS = 20_000
COLUMNS = "e.id, e.source, e.status, e.received_at"

# Each event i: source by i % 3, done but 1 % dead and the newest 0.5 % pending; a delivery
# to crm for every event, to bi for every other one.
BUILD = [
    """
    INSERT INTO events (id, source, source_key, entity, entity_id, action, payload, status,
                        received_at, updated_at)
    SELECT i, (ARRAY['shop', 'erp', 'crm'])[i % 3 + 1], 'k' || i, 'order', 'o' || i,
           'changed', '{}',
           CASE WHEN i % 100 = 0 THEN 'dead' WHEN i > {n} * 0.995 THEN 'pending' ELSE 'done' END,
           1000 + i, 1000 + i
    FROM generate_series(1, {n}) AS i
    """,
    """
    INSERT INTO deliveries (id, target, source, entity, entity_id, entity_key, status, due_at,
                            created_at, updated_at)
    SELECT id * 2 + t, (ARRAY['crm', 'bi'])[t + 1], source, 'order', entity_id,
           source || '/order/' || entity_id, status, received_at, received_at, updated_at
    FROM events, generate_series(0, 1) AS t WHERE t = 0 OR id % 2 = 0
    """,
    "INSERT INTO delivery_events (delivery_id, event_id) SELECT id, id / 2 FROM deliveries",
]


def combinations() -> Iterator[tuple[EventFilter, listing.Key | None]]:
    """Every filter the CLI offers, each with and without a continuation."""
    for status, source, target, since, until, after in itertools.product(
        (None, Status.DONE, Status.DEAD, Status.PENDING),
        (None, "shop"),
        (None, "crm"),
        (None, 1500.0),
        (None, 15_000.0),
        (None, (12_000.0, 11_000)),
    ):
        flt = EventFilter(status, source, target, since, until, limit=50)
        yield flt, after


def unsorted(plan: str) -> bool:
    """Whether a plan reads in order: no sort, no whole-table scan of events or links."""
    words = plan.lower()
    return not any(
        bad in words
        for bad in ("temp b-tree", "sort", "seq scan", "scan e\n", "scan de\n", "bitmap")
    )


def sqlite_plan(conn: sqlite3.Connection, sql: str, args: list[Any]) -> str:
    sql = sql.replace("%s", "?")
    return "".join(f"{r[3]}\n" for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", args))


def test_every_sqlite_page_reads_an_index_in_order(tmp_path: Path) -> None:
    with closing(sqlite3.connect(tmp_path / "plans.db", isolation_level=None)) as conn:
        migrate_sqlite(conn)
        conn.execute("BEGIN")
        conn.execute(
            "CREATE TEMP VIEW IF NOT EXISTS numbers AS WITH RECURSIVE n(i) AS (SELECT 0 UNION"
            f" ALL SELECT i + 1 FROM n WHERE i < {EVENTS}) SELECT i FROM n"
        )
        for statement in sqlite_build():
            conn.execute(statement)
        conn.execute("COMMIT")
        bad = []
        for flt, after in combinations():
            sql, args = listing.page_query(flt, after, COLUMNS, "?")
            plan = sqlite_plan(conn, sql, args)
            if not unsorted(plan):
                bad.append(f"{flt} after={after}:\n{plan}")
    assert not bad, "\n".join(bad)


def sqlite_build() -> list[str]:
    """BUILD in SQLite's words (no arrays, numbers from a recursive view)."""
    n = str(EVENTS)
    return [
        BUILD[0]
        .replace(
            "(ARRAY['shop', 'erp', 'crm'])[i % 3 + 1]",
            "CASE i % 3 WHEN 0 THEN 'shop' WHEN 1 THEN 'erp' ELSE 'crm' END",
        )
        .replace("generate_series(1, {n}) AS i", "(SELECT i FROM numbers WHERE i > 0)")
        .replace("{n}", n),
        BUILD[1]
        .replace("(ARRAY['crm', 'bi'])[t + 1]", "CASE t WHEN 0 THEN 'crm' ELSE 'bi' END")
        .replace("generate_series(0, 1) AS t", "(SELECT i AS t FROM numbers WHERE i < 2)"),
        BUILD[2],
    ]


@pytest.fixture
async def pg_log(postgres_url: str) -> str:
    store = PostgresStore(postgres_url)
    await store.open()
    await store.close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for statement in BUILD:
            conn.execute(statement.replace("{n}", str(EVENTS)).encode())
        conn.execute("ANALYZE")
    return postgres_url


def test_every_postgresql_page_reads_an_index_in_order(pg_log: str) -> None:
    bad = []
    with psycopg.connect(pg_log, autocommit=True) as conn:
        for flt, after in combinations():
            sql, args = listing.page_query(flt, after, COLUMNS, "%s")
            with conn.transaction():  # as the store runs a page
                for setting in listing.POSTGRES_IN_ORDER:
                    conn.execute(setting)
                rows = conn.execute(f"EXPLAIN {sql}", args).fetchall()
            plan = "".join(f"{r[0]}\n" for r in rows)
            if not unsorted(plan):
                bad.append(f"{flt} after={after}:\n{plan}")
    assert not bad, "\n".join(bad)
