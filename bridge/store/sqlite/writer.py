"""One writer thread for SQLite, committing queued writes together (group commit).

SQLite allows one writer at a time and, with ``synchronous=FULL``, each commit waits for
an fsync. Acknowledging a webhook only after its commit means the fsync is on the ack
path; running the writes that queue up during one fsync as a single transaction keeps the
ack latency near one fsync while throughput grows with concurrency. Each job runs inside
its own SAVEPOINT only when one of the batch failed (the batch is then run again, job by
job), so a failing job rolls back alone and the others still commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

AbstractLoop = asyncio.AbstractEventLoop

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]

MAX_BATCH = 512
_STOP = object()


class Writer:
    """Runs write jobs on one connection in one thread, batching them per commit."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bridge-sqlite-writer", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Open the connection in the writer thread and wait until it is ready."""
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        """Let queued jobs finish, then close the connection."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    async def run(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Queue ``job`` and wait until the transaction that ran it has committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, _Waiter(future, loop)))
        return await future

    def run_sync(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Queue ``job`` from a thread without an event loop and wait for the commit."""
        future: Future[T] = Future()
        self._queue.put((job, _Waiter(future, None)))
        return future.result()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # surfaced to start()
            self._error = exc
            self._started.set()
            return
        self._started.set()
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < MAX_BATCH:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                _settle_all(self._commit(conn, batch))
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[Job, _Waiter]]) -> list[Settled]:
        """Run the batch in one transaction: each job's outcome, or the commit's error for
        every job (nothing in the batch is durable then)."""
        # A job whose caller cancelled before it ran is not written (asked once: a
        # thread's future can be moved to running only once).
        live = [(job, waiter) for job, waiter in batch if not waiter.gave_up()]
        try:
            try:
                results = _together(conn, live)
            except Exception:  # one job failed: do it again, each on its own
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                results = _one_by_one(conn, live)
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The commit itself failed (disk full, I/O error): nothing in the batch is
            # durable, so every caller gets the error and no webhook is acknowledged.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            return [(waiter, False, exc) for _job, waiter in live]
        return results


def _together(conn: sqlite3.Connection, live: list[tuple[Job, _Waiter]]) -> list[Settled]:
    """Every job in one transaction, as if none fails (nearly always so): no savepoints, two
    statements fewer per job. A failure raises, and the batch is run again job by job."""
    conn.execute("BEGIN IMMEDIATE")
    return [(waiter, True, job(conn)) for job, waiter in live]


def _one_by_one(conn: sqlite3.Connection, live: list[tuple[Job, _Waiter]]) -> list[Settled]:
    """Each job in its own SAVEPOINT, so a failing one rolls back alone and its caller gets
    its error, while the others still commit. Jobs only touch the connection, so running
    them a second time after the rollback is safe."""
    results: list[Settled] = []
    conn.execute("BEGIN IMMEDIATE")
    for job, waiter in live:
        conn.execute("SAVEPOINT job")
        try:
            value = job(conn)
        except Exception as exc:  # the job's own error goes back to its caller
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            results.append((waiter, False, exc))
        else:
            conn.execute("RELEASE job")
            results.append((waiter, True, value))
    return results


class _Waiter:
    """Who waits for a job: an asyncio future on its loop, or a thread's future."""

    __slots__ = ("future", "loop")

    def __init__(self, future: asyncio.Future[Any] | Future[Any], loop: AbstractLoop | None):
        self.future = future
        self.loop = loop

    def gave_up(self) -> bool:
        """True when the caller cancelled before the job ran (read across threads: a
        cancellation that comes later only drops the answer, the job is written)."""
        if self.loop is None:
            assert isinstance(self.future, Future)
            return not self.future.set_running_or_notify_cancel()
        return self.future.cancelled()


Settled = tuple[_Waiter, bool, Any]


def _settle_all(results: list[Settled]) -> None:
    """Hand each job's outcome to its caller: one wake-up per event loop for the whole
    batch (a wake-up per job cost the writer a pipe write each: ~12 % of intake's time)."""
    by_loop: dict[AbstractLoop, list[Settled]] = {}
    for settled in results:
        waiter = settled[0]
        if waiter.loop is None:
            _settle(settled)
        else:
            by_loop.setdefault(waiter.loop, []).append(settled)
    for loop, group in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(_settle_each, group)


def _settle_each(results: list[Settled]) -> None:
    for settled in results:
        _settle(settled)


def _settle(settled: Settled) -> None:
    waiter, ok, value = settled
    future = waiter.future
    if future.done():  # cancelled meanwhile
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
