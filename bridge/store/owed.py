"""What ``bridge.owed`` asks of a store: owed calls, kept durably, claimed under a lease.

A separate protocol from :class:`bridge.store.protocol.Store`, so a store grows it by a
module of its own (``sqlite/owed.py``, ``memory/owed.py``). A domain change and the calls
it owes are written in one transaction (``update_reservation_owing``): the row that says
``commit_pending`` and the commit owed exist together or not at all, even across
``kill -9``.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Protocol

from bridge.errors import StoreError
from bridge.owed.calls import NewOwedCall, OwedCall, OwedOutcome, OwedStatus
from bridge.store.reservations import Reservation, Step


class OwedStore(Protocol):
    """Owed calls: owe, claim, finish, recover, list, count and replay."""

    async def owe(
        self, calls: Sequence[NewOwedCall], *, lease_to: str | None = None
    ) -> list[OwedCall]:
        """Store calls; a call whose (system, operation_id) is stored already is that one
        (a dead one is requeued with the new arguments). ``lease_to``: stored in flight,
        leased to that owner, who makes the first attempt at once."""

    async def update_reservation_owing(
        self,
        rsv: Reservation,
        steps: Sequence[Step],
        calls: Sequence[NewOwedCall],
        *,
        lease_to: str | None = None,
    ) -> tuple[Reservation, list[OwedCall]]:
        """``update_reservation`` and ``owe`` in one transaction (VersionConflict as
        there); ``lease_to`` as for ``owe``."""

    async def claim_owed(
        self, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[OwedCall]:
        """Lease up to ``limit`` calls due by ``now`` (and in-flight ones whose lease ran
        out), oldest due first; each attempt counted."""

    async def lease_owed(
        self, call_id: str, owner: str, now: float, lease_seconds: float
    ) -> OwedCall | None:
        """Lease one pending call now (an attempt right after it was owed); None when it
        is not pending (someone else holds it, or it is finished)."""

    async def finish_owed(self, call_id: str, owner: str, outcome: OwedOutcome) -> OwedCall | None:
        """End the attempt ``owner`` holds; None if the lease was lost meanwhile."""

    async def recover_owed(self, owner: str, now: float) -> int:
        """At start-up, return calls in flight to ``pending`` (SQLite, under its instance
        lock: every lease not ``owner``'s; several instances: leases that ran out)."""

    async def next_owed_due(self) -> float | None:
        """When the earliest pending call is due (or an in-flight lease runs out)."""

    async def get_owed(self, call_id: str) -> OwedCall:
        """One call by ``own_…`` id; raises NotFound."""

    async def owed_for(self, subject: str) -> list[OwedCall]:
        """The calls owed for ``subject`` (a reservation id), oldest first."""

    async def list_owed(
        self, status: OwedStatus | None = None, system: str | None = None, limit: int = 50
    ) -> list[OwedCall]:
        """Newest first, filtered."""

    async def count_owed(self) -> dict[tuple[str, OwedStatus], int]:
        """Calls per (system, status)."""

    async def replay_owed(self, call_id: str, actor: str, now: float) -> OwedCall:
        """Requeue a dead call (attempts from 0, due now); NotFound for an unknown id, the
        call unchanged when it is not dead."""


_MEMORY: weakref.WeakKeyDictionary[object, OwedStore] = weakref.WeakKeyDictionary()


def owed_store_of(store: object) -> OwedStore:
    """The owed-call side of an event store (sharing its transactions): SQLite's on the same
    file, PostgreSQL's on the same database, the memory store's in memory (one per store)."""
    # Imported here: the engines import this module's records, not the other way round.
    from bridge.store.memory import MemoryStore
    from bridge.store.memory.owed import MemoryOwedStore
    from bridge.store.sqlite.owed import SQLiteOwedStore
    from bridge.store.sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteOwedStore(store)
    if isinstance(store, MemoryStore):
        found = _MEMORY.get(store)
        if found is None:
            found = _MEMORY[store] = MemoryOwedStore(
                store,
                lease_seconds=float(getattr(store, "lease_seconds", 60.0)),
                clock=store._clock,  # the store's (a test's) clock, as SQLite's owed calls
            )
        return found
    from bridge.store.postgres.owed import PostgresOwedStore  # psycopg only when used
    from bridge.store.postgres.store import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresOwedStore(store)
    raise StoreError(f"{type(store).__name__} keeps no owed calls")
