"""The PostgreSQL database under the store: a connection pool, one transaction per job.

For several instances at once: nothing here is held by one process (no file lock), so any
number of ``bridge serve`` may open the same database. A write job runs in its own
transaction and is run again, on a fresh transaction, when PostgreSQL chose it as the
victim of a deadlock or a serialization failure, or when a unique index found a row
another instance inserted meanwhile (the job's reads then find that row: one reservation
per Idempotency-Key, one open backfill per spec). Every job re-reads what it decides on,
so running it again is safe.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bridge.errors import StoreError
from bridge.store.postgres.migrate import migrate_postgres, set_aside

T = TypeVar("T")
Clock = Callable[[], float]
Conn = psycopg.AsyncConnection[TupleRow]
Job = Callable[[Conn], Awaitable[T]]

RETRIES = 5  # attempts of one write job that lost a race to another instance
POOL_MAX = 8  # connections per instance (each `bridge serve` has its own pool)
_RACES = (
    pg_errors.DeadlockDetected,
    pg_errors.SerializationFailure,
    pg_errors.UniqueViolation,
)


class Engine:
    """One PostgreSQL database: its pool, and write and read jobs on it.

    Every concept of the store (``intake``, ``claims``, ``support``, ``idmap``) is a mixin
    on this class and reaches the database only through :meth:`_write` and :meth:`_read`.
    """

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = 60.0,
        clock: Clock = time.time,
        pool_size: int = POOL_MAX,
    ) -> None:
        self.url = url
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._pool_size = pool_size
        self._pool: AsyncConnectionPool[Conn] | None = None

    async def open(self, *, serving: bool = False, fresh: bool = False) -> None:
        """Connect and migrate; several instances may serve one database at once, so
        ``serving`` takes no lock. ``fresh`` (the sandbox, serving only) empties the store,
        its tables copied into the ``bridge_previous`` schema first."""
        pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            open=False,
            timeout=10.0,
            kwargs={"autocommit": True},  # transactions are the jobs' own BEGIN/COMMIT
        )
        try:
            await pool.open(wait=True, timeout=10.0)
            async with pool.connection() as conn:
                await migrate_postgres(conn)
                if serving and fresh:
                    await set_aside(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            await pool.close()
            raise StoreError(f"cannot open store {safe_url(self.url)}: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        """Let jobs under way finish, then close every connection."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    def _opened(self) -> AsyncConnectionPool[Conn]:
        if self._pool is None:
            raise StoreError("store is not open")
        return self._pool

    async def _write(self, job: Job[T]) -> T:
        """Run ``job`` in one read-write transaction (again when it lost a race)."""
        pool = self._opened()
        for attempt in range(1, RETRIES + 1):
            try:
                async with pool.connection() as conn, conn.transaction():
                    return await job(conn)
            except _RACES as exc:
                if attempt == RETRIES:
                    raise StoreError(f"store write failed: {exc}") from exc
            except (psycopg.Error, PoolTimeout) as exc:
                raise StoreError(f"store write failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _read(self, job: Job[T]) -> T:
        """Run ``job`` on one snapshot (a read-only repeatable-read transaction)."""
        pool = self._opened()
        try:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                return await job(conn)
        except (psycopg.Error, PoolTimeout) as exc:
            raise StoreError(f"store read failed: {exc}") from exc

    async def ping(self) -> None:
        """Raise StoreError unless a trivial query answers."""
        await self._read(lambda conn: conn.execute("SELECT 1"))


async def fetchone(conn: Conn, sql: str, args: Sequence[Any] = ()) -> TupleRow | None:
    """The first row of a statement, if any."""
    cur = await conn.execute(sql, args)
    return await cur.fetchone()


async def fetchall(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[TupleRow]:
    """Every row of a statement."""
    cur = await conn.execute(sql, args)
    return await cur.fetchall()


async def rowcount(conn: Conn, sql: str, args: Sequence[Any] = ()) -> int:
    """How many rows a statement changed."""
    cur = await conn.execute(sql, args)
    return int(cur.rowcount)


def safe_url(url: str) -> str:
    """The URL as it may be logged (it carries no password: settings refuse one)."""
    return url.split("?", 1)[0]
