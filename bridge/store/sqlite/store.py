"""The SQLite store: :class:`SQLiteStore` puts the concepts of the event log together.

Each concept is a mixin in a module of its own, on one :class:`Engine` (the file, its lock,
its writer and readers): ``intake`` (events in, cursors), ``claims`` (leases, attempts,
what was written), ``replay``, ``support`` (listings, detail), ``counts`` (what
``bridge status`` counts, kept as the log changes), ``idmap`` and
``retention`` (the log's size, pruning).
Backfills and reservations keep their SQL in ``backfills`` and ``reservations``; their
methods here only run it on the writer or a reader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bridge.store.backfills import Backfill, BackfillSpec, BackfillStatus
from bridge.store.records import NewEvent, Stored
from bridge.store.reservations import Reservation, SandboxMessage, Step
from bridge.store.sqlite import backfills as bf_io
from bridge.store.sqlite import reservations as rsv_io
from bridge.store.sqlite.claims import SQLiteClaims
from bridge.store.sqlite.counts import SQLiteCounts
from bridge.store.sqlite.idmap import SQLiteIdMap
from bridge.store.sqlite.intake import SQLiteIntake
from bridge.store.sqlite.replay import SQLiteReplay
from bridge.store.sqlite.retention import SQLiteRetention
from bridge.store.sqlite.support import SQLiteSupport


class SQLiteStore(
    SQLiteIntake,
    SQLiteClaims,
    SQLiteReplay,
    SQLiteSupport,
    SQLiteCounts,  # before retention: its log_stats reads the kept counts
    SQLiteIdMap,
    SQLiteRetention,
):
    """Implements :class:`bridge.store.protocol.Store` on one SQLite file."""

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
