"""A reservation's history stays append-only while the reservation is kept, in SQLite and
PostgreSQL alike (the triggers of migrations 0014 and 0004): no line of it is changed or
deleted, until the reservation itself is gone (retention takes both together)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bridge.store.postgres import PostgresStore
from bridge.store.reservations import RsvStatus, Step
from bridge.store.sqlite import SQLiteStore
from tests.contract.store.test_reservations import CREATED, reservation
from tests.support.clock import T0, Clock


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[SQLiteStore | PostgresStore]:
    made: SQLiteStore | PostgresStore
    if request.param == "postgresql":
        made = PostgresStore(request.getfixturevalue("postgres_url"), clock=Clock())
    else:
        made = SQLiteStore(tmp_path / "s.db", clock=Clock())
    await made.open()
    yield made
    await made.close()


async def sql(store: SQLiteStore | PostgresStore, statement: str, *args: Any) -> None:
    """Run one statement straight on the database, outside the store."""
    if isinstance(store, SQLiteStore):
        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            conn.execute(statement.replace("%s", "?"), args)
        finally:
            conn.close()
        return
    async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as pg:
        await pg.execute(statement, args)


REFUSED = (sqlite3.IntegrityError, psycopg.errors.RaiseException)


async def test_history_is_kept_while_its_reservation_is(
    store: SQLiteStore | PostgresStore,
) -> None:
    rsv = await store.create_reservation(reservation(1, T0), CREATED)
    await store.update_reservation(rsv, [Step("held", RsvStatus.HELD)])
    for statement in (
        "UPDATE reservation_history SET detail = 'x' WHERE reservation_id = %s",
        "DELETE FROM reservation_history WHERE reservation_id = %s",
    ):
        with pytest.raises(REFUSED, match="append-only"):
            await sql(store, statement, rsv.id)
    assert len(await store.reservation_history(rsv.id)) == 2

    await sql(store, "DELETE FROM reservations WHERE id = %s", rsv.id)
    await sql(store, "DELETE FROM reservation_history WHERE reservation_id = %s", rsv.id)
    assert await store.reservation_history(rsv.id) == []
