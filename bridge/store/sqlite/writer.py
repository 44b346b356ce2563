"""One writer thread for SQLite, committing queued writes together (group commit).

SQLite allows one writer at a time and, with ``synchronous=FULL``, each commit waits for
an fsync. Acknowledging a webhook only after its commit means the fsync is on the ack
path; running the writes that queue up during one fsync as a single transaction keeps the
ack latency near one fsync while throughput grows with concurrency. Each job runs inside
its own SAVEPOINT, so a failing job rolls back alone and the others still commit.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

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
        future: Future[T] = Future()
        self._queue.put((job, future))
        return await asyncio.wrap_future(future)

    def run_sync(self, job: Callable[[sqlite3.Connection], T]) -> T:
        """Queue ``job`` from a thread without an event loop and wait for the commit."""
        future: Future[T] = Future()
        self._queue.put((job, future))
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
                self._commit(conn, batch)
                if stop:
                    return
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[tuple[Job, Future[Any]]]) -> None:
        results: list[tuple[Future[Any], bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for job, future in batch:
                if not future.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    value = job(conn)
                except Exception as exc:  # the job's own error goes back to its caller
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((future, False, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((future, True, value))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            # The commit itself failed (disk full, I/O error): nothing in the batch is
            # durable, so every caller gets the error and no webhook is acknowledged.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for _job, future in batch:
                if future.done():
                    continue
                if future.running() or future.set_running_or_notify_cancel():
                    future.set_exception(exc)
            return
        for future, ok, value in results:
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
