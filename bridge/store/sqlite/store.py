"""The SQLite event log: WAL, ``synchronous=FULL`` by default, one writer thread.

For one instance. Writes go through :class:`Writer` (group commit); reads use one
connection per reader thread, which WAL lets run beside the writer.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from bridge.errors import NotFound, StoreError
from bridge.store.backfills import Backfill, BackfillSpec, BackfillStatus
from bridge.store.migrate import migrate_sqlite
from bridge.store.records import (
    AttemptOutcome,
    Claimed,
    Cursor,
    DeliveryRecord,
    EventDetail,
    EventFilter,
    EventRecord,
    NewEvent,
    QueueDepth,
    Rejected,
    ReplayResult,
    Status,
    Stored,
    delivery_ref,
    event_ref,
)
from bridge.store.refs import parse_ref
from bridge.store.reservations import Reservation, SandboxMessage, Step
from bridge.store.sqlite import backfills as bf_io
from bridge.store.sqlite import reservations as rsv_io
from bridge.store.sqlite import rows as row_io
from bridge.store.sqlite import sql as q
from bridge.store.sqlite.writer import Writer

T = TypeVar("T")
Clock = Callable[[], float]
CLOSE_WAIT = 10.0  # seconds close() waits for reads under way


class SQLiteStore:
    """Implements :class:`bridge.store.protocol.Store` on one SQLite file."""

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

    # -- lifecycle ---------------------------------------------------------------------

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

    # -- intake ------------------------------------------------------------------------

    async def append_events(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store events with their deliveries in one transaction."""
        now = self._clock()
        return await self._write(lambda conn: [row_io.insert_event(conn, e, now) for e in events])

    async def append_rejected(self, rejected: Rejected) -> Stored:
        """Store an unparsable body as a rejected event."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> Stored:
            row = conn.execute(
                q.INSERT_EVENT,
                (
                    rejected.source,
                    rejected.source_key,
                    None,
                    None,
                    None,
                    rejected.body,
                    Status.REJECTED,
                    rejected.reason,
                    now,
                    now,
                    None,  # not a backfill's
                ),
            ).fetchone()
            if row is None:
                return Stored(
                    row_io.existing_event(conn, rejected.source, rejected.source_key), True
                )
            conn.execute(
                q.INSERT_HISTORY,
                (
                    now,
                    "rejected",
                    None,
                    row[0],
                    None,
                    "rejected",
                    "parse",
                    rejected.reason,
                    None,
                    None,
                ),
            )
            return Stored(event_ref(row[0]), False)

        return await self._write(job)

    async def append_polled(self, events: Sequence[NewEvent], cursor: Cursor) -> list[Stored]:
        """Store polled events and move the cursor in the same transaction."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> list[Stored]:
            stored = [row_io.insert_event(conn, e, now) for e in events]
            conn.execute(
                "INSERT INTO cursors VALUES (?, ?, ?, ?) ON CONFLICT (source, name)"
                " DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (cursor.source, cursor.name, cursor.value, now),
            )
            return stored

        return await self._write(job)

    async def get_cursor(self, source: str, name: str) -> Cursor | None:
        """The stored poll position of ``source``/``name``."""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT source, name, value, updated_at FROM cursors WHERE source = ? AND name = ?",
                (source, name),
            ).fetchone()
        )
        return Cursor(*row) if row else None

    async def list_cursors(self) -> list[Cursor]:
        """Every poll position."""
        rows = await self._read(
            lambda conn: conn.execute(
                "SELECT source, name, value, updated_at FROM cursors ORDER BY source, name"
            ).fetchall()
        )
        return [Cursor(*row) for row in rows]

    async def last_written(
        self, target: str, source: str, entity: str, entity_id: str
    ) -> tuple[str, float] | None:
        """The digest of the document last written for this entity into ``target``, and
        when it was written."""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT digest, updated_at FROM written WHERE target = ? AND source = ?"
                " AND entity = ? AND entity_id = ?",
                (target, source, entity, entity_id),
            ).fetchone()
        )
        return None if row is None else (str(row[0]), float(row[1]))

    async def newest_change(
        self, source: str, entity: str, entity_id: str, *, live: bool = False
    ) -> float | None:
        """When the newest stored change of an entity (``live``: not a backfill's) was
        received."""
        live_only = " AND backfill IS NULL" if live else ""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT max(received_at) FROM events WHERE source = ? AND entity = ?"
                f" AND entity_id = ?{live_only}",
                (source, entity, entity_id),
            ).fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    async def forget_cursors(self, source: str) -> int:
        """Drop ``source``'s poll positions (its next poll starts as on a first start)."""
        return await self._write(
            lambda conn: conn.execute("DELETE FROM cursors WHERE source = ?", (source,)).rowcount
        )

    # -- dispatch ----------------------------------------------------------------------

    async def claim_due(self, target: str, owner: str, limit: int) -> list[Claimed]:
        """Lease due deliveries of ``target`` and load the events each carries."""
        now = self._clock()
        lease_until = now + self.lease_seconds

        def job(conn: sqlite3.Connection) -> list[Claimed]:
            ids = [row[0] for row in conn.execute(q.CLAIM_DUE, (target, now, limit))]
            claimed = []
            for did in ids:
                conn.execute(q.MARK_IN_FLIGHT, (owner, lease_until, now, did))
                conn.execute(q.REFRESH_EVENTS, (now, did))
                delivery = row_io.load_delivery(conn, did)
                events = row_io.load_events_of(conn, did)
                claimed.append(Claimed(delivery, events, delivery.attempts))
            return claimed

        return await self._write(job)

    async def finish_attempt(self, claimed: Claimed, owner: str, outcome: AttemptOutcome) -> bool:
        """Record the attempt in history and move the delivery to the outcome's status."""
        now = self._clock()
        did = parse_ref(claimed.delivery.id, "dlv")

        def job(conn: sqlite3.Connection) -> bool:
            held = (
                conn.execute(
                    q.FINISH,
                    (
                        outcome.status,
                        outcome.due_at,
                        outcome.error_class,
                        outcome.message,
                        now,
                        did,
                        owner,
                        claimed.attempt,
                    ),
                ).rowcount
                == 1
            )
            message = outcome.message
            if not held:
                message = f"{message or ''} (lease lost before the result was recorded)".strip()
            conn.execute(
                q.INSERT_HISTORY,
                (
                    now,
                    "attempt",
                    did,
                    None,
                    claimed.attempt,
                    outcome.status,
                    outcome.error_class,
                    message,
                    outcome.duration_ms,
                    owner,
                ),
            )
            if held:
                conn.execute(q.REFRESH_EVENTS, (now, did))
                if outcome.written is not None:
                    d = claimed.delivery
                    conn.execute(
                        "INSERT INTO written VALUES (?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (target, source, entity, entity_id)"
                        " DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                        (d.target, d.source, d.entity, d.entity_id, outcome.written, now),
                    )
            return held

        return await self._write(job)

    async def extend_leases(self, claimed: Sequence[Claimed], owner: str) -> None:
        """Push the leases of deliveries still in flight with ``owner`` a full period out."""
        until = self._clock() + self.lease_seconds
        ids = [parse_ref(c.delivery.id, "dlv") for c in claimed]

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(q.EXTEND_LEASE, [(until, did, owner) for did in ids])

        if ids:
            await self._write(job)

    async def release_expired_leases(self) -> int:
        """Return in-flight deliveries whose lease ran out to ``pending``."""
        return await self._release_leases(None)

    async def recover_leases(self, owner: str) -> int:
        """At start-up: under the instance lock every lease not ours is a dead process's,
        so it returns at once; without the lock only expired ones do."""
        return await self._release_leases(owner if self._lock is not None else None)

    async def _release_leases(self, owner: str | None) -> int:
        now = self._clock()

        def job(conn: sqlite3.Connection) -> int:
            rows = conn.execute(q.EXPIRED_LEASES, (now, owner, owner)).fetchall()
            for did, attempts, held_by in rows:
                conn.execute(q.RELEASE_LEASE, (now, now, did))
                conn.execute(
                    q.INSERT_HISTORY,
                    (
                        now,
                        "lease_expired",
                        did,
                        None,
                        attempts,
                        Status.PENDING,
                        "lease_expired",
                        f"holder {held_by} stopped before finishing; back to pending",
                        None,
                        owner,
                    ),
                )
                conn.execute(q.REFRESH_EVENTS, (now, did))
            return len(rows)

        return await self._write(job)

    async def next_due_at(self, target: str, after: float) -> float | None:
        """Earliest due time after ``after`` among waiting deliveries of ``target``."""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT MIN(due_at) FROM deliveries WHERE status IN ('pending', 'retry')"
                " AND target = ? AND due_at > ?",
                (target, after),
            ).fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    # -- support -----------------------------------------------------------------------

    async def list_events(self, flt: EventFilter) -> list[EventRecord]:
        """Events newest first, without payloads."""

        def job(conn: sqlite3.Connection) -> list[EventRecord]:
            where, args = row_io.event_where(flt)
            rows = conn.execute(
                f"SELECT {q.EVENT_COLUMNS} FROM events e {where} ORDER BY e.id DESC LIMIT ?",
                (*args, flt.limit),
            ).fetchall()
            return [row_io.event_record(row, None, row_io.targets_of(conn, row[0])) for row in rows]

        return await self._read(job)

    async def get_event(self, event_id: str) -> EventDetail:
        """An event, its deliveries and its history (attempts of all its deliveries)."""
        eid = parse_ref(event_id, "evt")

        def job(conn: sqlite3.Connection) -> EventDetail:
            row = conn.execute(
                f"SELECT {q.EVENT_COLUMNS}, e.payload FROM events e WHERE e.id = ?", (eid,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no event {event_ref(eid)}")
            payload: Any = row[10]
            if row[6] != Status.REJECTED:
                payload = json.loads(payload)
            dids = [
                r[0]
                for r in conn.execute(
                    "SELECT delivery_id FROM delivery_events WHERE event_id = ? ORDER BY 1", (eid,)
                )
            ]
            deliveries = [row_io.load_delivery(conn, did) for did in dids]
            marks = ",".join("?" * len(dids)) or "NULL"
            history = conn.execute(
                "SELECT at, kind, delivery_id, event_id, attempt, outcome, error_class, message,"
                f" duration_ms, actor FROM history WHERE event_id = ? OR delivery_id IN ({marks})"
                " ORDER BY id",
                (eid, *dids),
            ).fetchall()
            event = row_io.event_record(row[:10], payload, tuple(d.target for d in deliveries))
            return EventDetail(event, deliveries, [row_io.history_entry(h) for h in history])

        return await self._read(job)

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord:
        """One delivery by id."""
        did = parse_ref(delivery_id, "dlv")
        return await self._read(lambda conn: row_io.load_delivery(conn, did))

    async def replay(
        self, ids: Sequence[str], flt: EventFilter | None, actor: str, dry_run: bool
    ) -> ReplayResult:
        """Requeue deliveries by id (dead or done) or by filter; history records who did it."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> ReplayResult:
            chosen, skipped = row_io.select_for_replay(conn, ids, flt)
            if not dry_run:
                for did in chosen:
                    conn.execute(q.REQUEUE, (now, now, did))
                    conn.execute(
                        q.INSERT_HISTORY,
                        (
                            now,
                            "replayed",
                            did,
                            None,
                            None,
                            Status.PENDING,
                            None,
                            "requeued by replay",
                            None,
                            actor,
                        ),
                    )
                    conn.execute(q.REFRESH_EVENTS, (now, did))
            return ReplayResult([delivery_ref(d) for d in chosen], skipped)

        return await self._write(job)

    async def queue_depth(self) -> list[QueueDepth]:
        """Waiting, in-flight and dead deliveries per target."""
        rows = await self._read(lambda conn: conn.execute(q.QUEUE_DEPTH).fetchall())
        return [QueueDepth(r[0], Status(r[1]), r[2], r[3]) for r in rows]

    async def count_events(self) -> dict[Status, int]:
        """How many events are in each status."""
        rows = await self._read(
            lambda conn: conn.execute("SELECT status, COUNT(*) FROM events GROUP BY 1").fetchall()
        )
        return {Status(r[0]): r[1] for r in rows}

    # -- id map and idempotency --------------------------------------------------------

    async def map_ids(
        self, entity: str, system: str, local_id: str, peer_system: str, peer_id: str
    ) -> None:
        """Record an id pair (replacing an older pair for the same local id)."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO id_map VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (entity, system, local_id, peer_system)"
                " DO UPDATE SET peer_id = excluded.peer_id, updated_at = excluded.updated_at",
                (entity, system, local_id, peer_system, peer_id, now),
            )

        await self._write(job)

    async def lookup_id(
        self, entity: str, system: str, local_id: str, peer_system: str
    ) -> str | None:
        """The id ``peer_system`` has for ``system``'s ``local_id``, in either direction."""

        def job(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT peer_id FROM id_map WHERE entity = ? AND system = ? AND local_id = ?"
                " AND peer_system = ?"
                " UNION ALL SELECT local_id FROM id_map WHERE entity = ? AND peer_system = ?"
                " AND peer_id = ? AND system = ? LIMIT 1",
                (entity, system, local_id, peer_system, entity, system, local_id, peer_system),
            ).fetchone()
            return str(row[0]) if row else None

        return await self._read(job)

    async def alias_id(self, entity: str, system: str, alias_id: str, target_id: str) -> None:
        """Record that ``alias_id`` now means ``target_id`` in ``system`` (a merge)."""
        if alias_id == target_id:
            return
        now = self._clock()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO id_alias VALUES (?, ?, ?, ?, ?) ON CONFLICT"
                " (entity, system, alias_id) DO UPDATE SET target_id = excluded.target_id",
                (entity, system, alias_id, target_id, now),
            )

        await self._write(job)

    async def resolve_alias(self, entity: str, system: str, local_id: str) -> str | None:
        """The id ``local_id`` now means after every merge since, or None if not merged."""

        def job(conn: sqlite3.Connection) -> str | None:
            found, seen = None, {local_id}
            while True:  # a merged survivor may be merged again later
                row = conn.execute(
                    "SELECT target_id FROM id_alias WHERE entity = ? AND system = ?"
                    " AND alias_id = ?",
                    (entity, system, found or local_id),
                ).fetchone()
                if row is None or row[0] in seen:
                    return found
                found = str(row[0])
                seen.add(found)

        return await self._read(job)

    async def remember_response(
        self, scope: str, key: str, request_hash: str, status: int, response: str, ttl: float
    ) -> tuple[str, int, str]:
        """Keep the first live answer for (scope, key) and return whichever is kept."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> tuple[str, int, str]:
            conn.execute(
                "DELETE FROM idempotency WHERE scope = ? AND key = ? AND expires_at < ?",
                (scope, key, now),
            )
            conn.execute(
                "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (scope, key) DO NOTHING",
                (scope, key, request_hash, status, response, now, now + ttl),
            )
            row = conn.execute(
                "SELECT request_hash, status, response FROM idempotency"
                " WHERE scope = ? AND key = ?",
                (scope, key),
            ).fetchone()
            return (row[0], row[1], row[2])

        return await self._write(job)

    # -- backfills (bridge.store.backfills.BackfillStore) --------------------------------

    async def open_backfill(self, spec: BackfillSpec, actor: str) -> tuple[Backfill, bool]:
        """The open backfill of ``spec``, or a new one (True)."""
        now = self._clock()
        return await self._write(lambda conn: bf_io.open_(conn, spec, actor, now))

    async def get_backfill(self, backfill_id: str) -> Backfill:
        """One backfill; NotFound if there is none."""
        return await self._read(lambda conn: bf_io.get(conn, backfill_id))

    async def list_backfills(self, *, open_only: bool = False, limit: int = 50) -> list[Backfill]:
        """Newest first."""
        return await self._read(lambda conn: bf_io.listing(conn, open_only, limit))

    async def append_listed(
        self, backfill_id: str, events: Sequence[NewEvent], cursor: str | None, total: int | None
    ) -> list[Stored]:
        """A listed page and the cursor after it, together."""
        now = self._clock()
        return await self._write(
            lambda conn: bf_io.append(conn, backfill_id, events, cursor, total, now)
        )

    async def set_backfill_status(
        self, backfill_id: str, status: BackfillStatus, error: str | None = None
    ) -> bool:
        """Move an open backfill on."""
        now = self._clock()
        return await self._write(
            lambda conn: bf_io.set_status(conn, backfill_id, status, error, now)
        )

    # -- reservations (bridge.store.reservations.ReservationStore) ----------------------

    async def create_reservation(self, rsv: Reservation, step: Step) -> Reservation:
        """Insert, or return the reservation holding the same idempotency key."""
        now = self._clock()
        return await self._write(lambda conn: rsv_io.create(conn, rsv, step, now))

    async def find_reservation(self, client: str, idempotency_key: str) -> Reservation | None:
        """By Idempotency-Key."""
        return await self._read(lambda conn: rsv_io.by_key(conn, client, idempotency_key))

    async def get_reservation(self, reservation_id: str) -> Reservation:
        """One reservation; NotFound if there is none."""
        return await self._read(lambda conn: rsv_io.get(conn, reservation_id))

    async def update_reservation(self, rsv: Reservation, steps: Sequence[Step]) -> Reservation:
        """Compare-and-set on version; VersionConflict when someone moved it first."""
        now = self._clock()
        return await self._write(lambda conn: rsv_io.update(conn, rsv, steps, now))

    async def list_reservations(
        self, status: str | None = None, limit: int = 50
    ) -> list[Reservation]:
        """Newest first."""
        return await self._read(lambda conn: rsv_io.listing(conn, status, limit))

    async def reservation_history(self, reservation_id: str) -> list[Step]:
        """Oldest first."""
        return await self._read(lambda conn: rsv_io.history(conn, reservation_id))

    async def due_reservations(self, now: float, stuck_before: float, limit: int) -> list[str]:
        """Ids with sweeper work."""
        return await self._read(lambda conn: rsv_io.due(conn, now, stuck_before, limit))

    async def next_reservation_due(self) -> float | None:
        """The earliest sweeper work."""
        return await self._read(rsv_io.next_due)

    async def reservations_for_order(
        self, order_system: str, order_ids: Sequence[str]
    ) -> list[str]:
        """Reservations made for an order known by any of ``order_ids``."""
        ids = list(order_ids)
        return await self._read(lambda conn: rsv_io.for_order(conn, order_system, ids))

    async def count_reservations(self) -> dict[str, int]:
        """Per status."""
        return await self._read(rsv_io.counts)

    async def claim_sms_slot(
        self, phone_key: str, now: float, window: float, cap: int, reservation_id: str
    ) -> bool:
        """Count one code to the phone unless the cap is reached."""
        return await self._write(
            lambda conn: rsv_io.claim_sms(conn, phone_key, now, window, cap, reservation_id)
        )

    async def add_sandbox_message(self, phone: str, text: str, reference: str | None) -> int:
        """Keep a sandbox text."""
        now = self._clock()
        return await self._write(lambda conn: rsv_io.add_message(conn, phone, text, reference, now))

    async def list_sandbox_messages(
        self, phone: str | None = None, limit: int = 20
    ) -> list[SandboxMessage]:
        """Newest first."""
        return await self._read(lambda conn: rsv_io.list_messages(conn, phone, limit))

    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """Get or make a stored secret."""
        made = make()
        return await self._write(lambda conn: rsv_io.secret(conn, name, made))
