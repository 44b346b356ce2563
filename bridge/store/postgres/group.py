"""Group commit of webhook intake on PostgreSQL: the appends that arrive while one
transaction commits go together in the next.

With ``synchronous_commit = on`` every commit waits for its WAL flush, and a webhook is
acknowledged only after its commit; one transaction per webhook pays a flush and a few
round trips each. Here the appends queued meanwhile run as one transaction: BEGIN, the
entity locks of the whole group (in key order, as every intake takes them, so two groups
on two instances never wait on each other in a circle), one ``append_event`` per event,
COMMIT, all sent at once in psycopg's pipeline mode and answered by one sync. Each waiter
is answered after that commit.

A group that fails as a whole for one append's sake (an error of that append, not of the
connection) is run again append by append, each in a savepoint (as SQLite's writer does:
``bridge.store.sqlite.writer``), so only the failing append's caller gets the error. A
group chosen as the victim of a deadlock (a source key sent to two instances at once) is
run again whole: its appends re-read what they decide on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from bridge.errors import StoreError
from bridge.store.postgres.appends import APPEND_EVENT, append_args, lock_entities, stored
from bridge.store.postgres.engine import _RACES, RETRIES, Conn
from bridge.store.records import NewEvent, Stored

MAX_GROUP = 256  # appends per transaction (a burst beyond waits for the next)
# Transactions in flight at once: while one waits for its WAL flush (or its answers cross
# the loopback), the next runs its appends, so neither the server's CPU nor the flush is
# left idle waiting for the other.
IN_FLIGHT = 2


@dataclass
class _Append:
    events: Sequence[NewEvent]
    now: float
    future: asyncio.Future[list[Stored]] = field(repr=False)


class GroupCommit:
    """Queues appends and commits them in groups, :data:`IN_FLIGHT` groups at a time."""

    def __init__(self, pool: Callable[[], AsyncConnectionPool[Conn]]) -> None:
        self._pool = pool
        self._queue: list[_Append] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def append(self, events: Sequence[NewEvent], now: float) -> list[Stored]:
        """Store ``events`` in the next group; answered once that group has committed."""
        future: asyncio.Future[list[Stored]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Append(events, now, future))
        if len(self._tasks) < IN_FLIGHT:
            task = asyncio.create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def close(self) -> None:
        """Let the queued appends commit."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue[:MAX_GROUP], self._queue[MAX_GROUP:]
            # An append whose caller gave up before it ran is not written; one that gives
            # up later only loses its answer (the event is committed all the same).
            live = [a for a in group if not a.future.cancelled()]
            if live:
                await self._commit(live)

    async def _commit(self, live: list[_Append]) -> None:
        try:
            outcomes = await self._run(live)
        except (psycopg.Error, PoolTimeout) as exc:
            error = StoreError(f"store write failed: {exc}")
            outcomes = [error] * len(live)
        except Exception as exc:  # every caller must be answered, whatever failed
            outcomes = [exc] * len(live)
        for append, outcome in zip(live, outcomes, strict=True):
            if append.future.done():
                continue
            if isinstance(outcome, BaseException):
                append.future.set_exception(outcome)
            else:
                append.future.set_result(outcome)

    async def _run(self, live: list[_Append]) -> list[list[Stored] | BaseException]:
        """Each append's outcome: together when none fails (nearly always), else one by
        one; a race lost to another instance runs the group again."""
        together = True
        for attempt in range(1, RETRIES + 1):
            try:
                if together:
                    return list(await self._together(live))
                return await self._one_by_one(live)
            except _RACES:
                if attempt == RETRIES:
                    raise
            except PoolTimeout:
                raise
            except psycopg.OperationalError:
                raise  # the connection, not an append: every caller gets it
            except psycopg.Error:
                if not together:
                    raise
                together = False
        raise AssertionError("unreachable")  # pragma: no cover

    async def _together(self, live: list[_Append]) -> list[list[Stored]]:
        """The whole group in one transaction, sent in one pipeline."""
        events = [e for a in live for e in a.events]
        async with self._pool().connection() as conn:
            async with conn.pipeline(), conn.transaction():
                await lock_entities(conn, events)
                cur = conn.cursor()
                args = [append_args(e, a.now) for a in live for e in a.events]
                if args:
                    await cur.executemany(APPEND_EVENT, args, returning=True)
            rows = []
            while args:
                rows.append(stored(await cur.fetchone()))
                if not cur.nextset():
                    break
        results: list[list[Stored]] = []
        for a in live:
            results.append(rows[: len(a.events)])
            rows = rows[len(a.events) :]
        return results

    async def _one_by_one(self, live: list[_Append]) -> list[list[Stored] | BaseException]:
        """Each append in its own savepoint: a failing one rolls back alone."""
        outcomes: list[list[Stored] | BaseException] = []
        async with self._pool().connection() as conn, conn.transaction():
            await lock_entities(conn, [e for a in live for e in a.events])
            for a in live:
                try:
                    async with conn.transaction():  # a savepoint
                        done = []
                        for e in a.events:
                            cur = await conn.execute(APPEND_EVENT, append_args(e, a.now))
                            done.append(stored(await cur.fetchone()))
                except _RACES:
                    raise
                except psycopg.Error as exc:
                    outcomes.append(StoreError(f"store write failed: {exc}"))
                else:
                    outcomes.append(done)
        return outcomes
