"""The shared request schedule in PostgreSQL: one ``rate_budgets`` row per budget (the GCRA
of ``bridge/budgets``), one statement per turn, timed by the database's clock."""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from bridge.store.postgres.migrate import MIGRATION_LOCK

# The turn: tat moves on by T from max(tat, now); the request may go when tat' - T - tau
# has come, tau = (burst - 1) * T the bucket's slack. Atomic under the row's lock (the
# upsert), so turns taken at once by several instances never overlap.
_TURN = """
INSERT INTO rate_budgets AS b (key, tat)
VALUES (%(key)s, extract(epoch FROM clock_timestamp()) + %(interval)s)
ON CONFLICT (key) DO UPDATE
   SET tat = greatest(b.tat, extract(epoch FROM clock_timestamp())) + %(interval)s
RETURNING greatest(0, b.tat - %(interval)s - %(slack)s - extract(epoch FROM clock_timestamp()))
"""
# A hold: no turn before now + seconds (keeps any later tat already handed out).
_HOLD = """
INSERT INTO rate_budgets AS b (key, tat)
VALUES (%(key)s, extract(epoch FROM clock_timestamp()) + %(seconds)s)
ON CONFLICT (key) DO UPDATE
   SET tat = greatest(b.tat, extract(epoch FROM clock_timestamp()) + %(seconds)s)
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS rate_budgets (
    key text PRIMARY KEY,   -- the budget: a hashed API key, a portal
    tat double precision NOT NULL   -- theoretical arrival time of the next turn, epoch s
)
"""


class PostgresBudgets:
    """``SharedBudgets`` over a small pool of connections to the store's database."""

    def __init__(self, conninfo: str, *, pool_size: int = 2) -> None:
        self._pool = AsyncConnectionPool(
            conninfo, min_size=1, max_size=pool_size, open=False, kwargs={"autocommit": True}
        )
        self._ready = False

    async def open(self) -> None:
        """Connect and make sure the table is there (created here: the store's migrations
        do not hold it)."""
        await self._pool.open()
        async with self._pool.connection() as conn, conn.transaction():
            # CREATE TABLE IF NOT EXISTS is not safe against another session creating the
            # table at the same moment (instances started together on a new database: one
            # fails on pg_type_typname_nsp_index); the migrations' lock puts them in turn.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(SCHEMA)
        self._ready = True

    async def turn(self, key: str, interval: float, burst: int = 1) -> float:
        """The seconds until this caller's turn of ``key`` (see ``SharedBudgets.turn``)."""
        if not self._ready:
            await self.open()
        params: dict[str, Any] = {
            "key": key,
            "interval": interval,
            "slack": max(0, burst - 1) * interval,
        }
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_TURN, params)
            row = await cursor.fetchone()
        return float(row[0]) if row else 0.0

    async def hold(self, key: str, seconds: float) -> None:
        """No turn of ``key`` for ``seconds`` (see ``SharedBudgets.hold``)."""
        if not self._ready:
            await self.open()
        async with self._pool.connection() as conn:
            await conn.execute(_HOLD, {"key": key, "seconds": max(0.0, seconds)})

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()
