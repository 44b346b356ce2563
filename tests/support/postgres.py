"""A PostgreSQL database of its own for one test run, and a clean slate for each test.

The server is the one on the machine (127.0.0.1:5432, trust auth, user ``postgres``;
``.ci/run`` starts it when it is down); ``BRIDGE_TEST_POSTGRES`` names another one. A
test run creates ``bridge_test_<random>`` once, each test starts from empty tables (the
schema stays: migrating once is the slow part), and the run drops the database at its end.
Not reachable is a failure, never a skip: the PostgreSQL store is part of the product.
"""

from __future__ import annotations

import os
import secrets
import urllib.parse

import psycopg
from psycopg import sql

SERVER = os.environ.get("BRIDGE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def database_url(name: str) -> str:
    """The server's URL with another database."""
    parts = urllib.parse.urlsplit(SERVER)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def create_database() -> str:
    """Create an empty database for this run; its URL."""
    name = f"bridge_test_{secrets.token_hex(4)}"
    try:
        with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {SERVER} ({exc}); start it (.ci/run does:"
            " pg_ctlcluster <version> main start) or set BRIDGE_TEST_POSTGRES"
        ) from exc
    return database_url(name)


def drop_database(url: str) -> None:
    """Drop a run's database (closing connections a failed test left behind)."""
    name = urllib.parse.urlsplit(url).path.strip("/")
    with psycopg.connect(SERVER, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def empty_tables(url: str) -> None:
    """Empty every table of the bridge's schema, ids restarting at 1 as in a new file.

    DELETE with triggers off (``session_replication_role``: the history's append-only
    guard, the foreign keys) is several times faster than TRUNCATE on a test's few rows.
    """
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        tables = [
            str(row[0])
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename != 'schema_migrations'"
            )
        ]
        sequences = [
            str(row[0])
            for row in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'"
            )
        ]
        script: list[sql.Composable] = [sql.SQL("SET session_replication_role = replica")]
        script += [sql.SQL("DELETE FROM {}").format(sql.Identifier(t)) for t in tables]
        script += [
            sql.SQL("ALTER SEQUENCE {} RESTART").format(sql.Identifier(q)) for q in sequences
        ]
        script.append(sql.SQL("SET session_replication_role = DEFAULT"))
        with conn.transaction():
            conn.execute(sql.SQL("; ").join(script))
