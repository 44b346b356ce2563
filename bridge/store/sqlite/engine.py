"""The SQLite file under the store: WAL, ``synchronous=FULL`` by default, one writer thread.

For one instance. Writes go through :class:`Writer` (group commit); reads use one
connection per reader thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import fcntl
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

from bridge.errors import StoreError
from bridge.store.migrate import migrate_sqlite
from bridge.store.sqlite.writer import Writer

T = TypeVar("T")
Clock = Callable[[], float]
CLOSE_WAIT = 10.0  # seconds close() waits for reads under way


class Engine:
    """One SQLite file: its instance lock, its writer thread and its reader connections.

    Every concept of the store (``intake``, ``claims``, ``support``, ``idmap``) is a mixin
    on this class and reaches the file only through :meth:`_write` and :meth:`_read`.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = "full",
        busy_timeout_ms: int = 5000,
        lease_seconds: float = 60.0,
        clock: Clock = time.time,
    ) -> None:
        self.path = path
        self._synchronous = synchronous.upper()
        self._busy_timeout_ms = busy_timeout_ms
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._writer: Writer | None = None
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        # Reads run in worker threads that outlive a cancelled await: close() waits for the
        # ones under way (closing a connection another thread is using can crash SQLite).
        self._reads_done = threading.Condition(self._readers_lock)
        self._reading = 0
        self._open_number = 0  # which open() a thread's kept connection belongs to
        self._accepting = False  # reads may start (open, not closing)
        self._lock: IO[bytes] | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout_ms / 1000,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    async def open(self, *, serving: bool = False, fresh: bool = False) -> None:
        """Create the file's folder, take the instance lock when serving, migrate, start
        the writer; ``fresh`` first moves the file aside as ``<name>.previous``."""
        await asyncio.to_thread(self._open_sync, serving, fresh)

    def _open_sync(self, serving: bool, fresh: bool = False) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {self.path}: {exc.strerror}") from exc
        if serving:
            self._take_lock()
            if fresh:
                self._set_aside()
        try:
            conn = self._connect()
            try:
                migrate_sqlite(conn)
            finally:
                conn.close()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open store {self.path}: {exc}") from exc
        self._writer = Writer(self._connect)
        self._writer.start()
        with self._readers_lock:
            self._open_number += 1
            self._accepting = True

    def _set_aside(self) -> None:
        # Only under the instance lock: no other bridge is writing the file. The WAL and its
        # index go with it (SQLite finds them by the database's name + "-wal"/"-shm"), so
        # the previous store stays readable as `<name>.previous`.
        previous = Path(f"{self.path}.previous")
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            try:
                source.replace(Path(f"{previous}{suffix}"))
            except FileNotFoundError:
                Path(f"{previous}{suffix}").unlink(missing_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot move {source} aside: {exc.strerror}") from exc

    def _take_lock(self) -> None:
        # SQLite serves one instance: a second `bridge serve` on the same file would claim
        # the same deliveries. Holding the lock also tells recover_leases() that any lease
        # it finds belongs to a process that is gone.
        path = Path(f"{self.path}.lock")
        try:
            handle = path.open("wb")
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise StoreError(
                f"another bridge is already serving {self.path}: a SQLite store serves"
                " one instance (stop the other, or give this one its own store.url)"
            ) from exc
        self._lock = handle

    async def close(self) -> None:
        """Let queued writes commit, then close every connection."""
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
            self._writer = None
        await asyncio.to_thread(self._close_readers)
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _close_readers(self) -> None:
        with self._reads_done:
            self._accepting = False  # reads from now on fail: the store is closed
            self._reads_done.wait_for(lambda: self._reading == 0, timeout=CLOSE_WAIT)
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreError("store is not open")
        try:
            return await self._writer.run(job)
        except sqlite3.Error as exc:
            raise StoreError(f"store write failed: {exc}") from exc

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(self._read_sync, job)

    def _read_sync(self, job: Callable[[sqlite3.Connection], T]) -> T:
        with self._readers_lock:
            if not self._accepting:
                raise StoreError("store is not open")
            kept = getattr(self._local, "conn", None)
            conn: sqlite3.Connection | None = None
            if kept is not None and kept[0] == self._open_number:
                conn = kept[1]
            self._reading += 1
        try:
            if conn is None:
                conn = self._connect()
                with self._readers_lock:
                    self._readers.append(conn)
                self._local.conn = (self._open_number, conn)
            conn.execute("BEGIN")  # one snapshot for every query of the job
            try:
                return job(conn)
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StoreError(f"store read failed: {exc}") from exc
        finally:
            with self._reads_done:
                self._reading -= 1
                self._reads_done.notify_all()

    async def ping(self) -> None:
        """Raise StoreError unless a trivial query answers."""
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())
