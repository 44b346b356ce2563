"""Named leases in PostgreSQL (``bridge/store/leases.py``), for work only one of several
instances sharing the database may do: a feed's poller, the sweeper of owed calls. One
upsert takes or renews a lease, timed by the database's clock so instances agree."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool

from bridge.store.postgres.migrate import MIGRATION_LOCK

SCHEMA = """
CREATE TABLE IF NOT EXISTS bridge_leases (
    name text PRIMARY KEY,            -- poll:<system>:<feed>, owed-sweeper
    holder text NOT NULL,             -- the instance: host:pid:random
    until double precision NOT NULL   -- epoch seconds; free for another holder after it
)
"""
# Taken when free or lapsed, renewed by its holder; no row back: another holder has it.
_HOLD = """
INSERT INTO bridge_leases AS l (name, holder, until)
VALUES (%(name)s, %(holder)s, extract(epoch FROM clock_timestamp()) + %(seconds)s)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
 WHERE l.holder = excluded.holder OR l.until <= extract(epoch FROM clock_timestamp())
RETURNING holder
"""
_LET_GO = "DELETE FROM bridge_leases WHERE name = %(name)s AND holder = %(holder)s"


class PostgresLeases:
    """``Leases`` every instance on the database sees."""

    def __init__(self, conninfo: str) -> None:
        self._pool = AsyncConnectionPool(
            conninfo, min_size=1, max_size=2, open=False, kwargs={"autocommit": True}
        )

    async def open(self) -> None:
        """Connect; make sure the table is there."""
        await self._pool.open()
        async with self._pool.connection() as conn, conn.transaction():
            # Not IF NOT EXISTS alone: see PostgresBudgets.open (instances started together).
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(SCHEMA)

    async def hold(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew ``name`` (see ``Leases.hold``)."""
        async with self._pool.connection() as conn:
            cursor = await conn.execute(_HOLD, {"name": name, "holder": holder, "seconds": seconds})
            return await cursor.fetchone() is not None

    async def let_go(self, name: str, holder: str) -> None:
        """Give ``name`` back if ``holder`` has it."""
        async with self._pool.connection() as conn:
            await conn.execute(_LET_GO, {"name": name, "holder": holder})

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()
