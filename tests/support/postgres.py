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
    """Truncate every table of the bridge's schema (ids restart at 1, as in a new file)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename != 'schema_migrations'"
            )
        ]
        if tables:
            names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
