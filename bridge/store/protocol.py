"""The store protocol: everything the core asks of the event log.

The SQLite store implements it for one instance; a PostgreSQL store (claims with
``FOR UPDATE SKIP LOCKED``) can implement the same methods for several instances without
touching callers. Every method is a coroutine; every write is one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bridge.store.backfills import BackfillStore
from bridge.store.records import (
    AttemptOutcome,
    Claimed,
    Cursor,
    EventDetail,
    EventFilter,
    EventRecord,
    LogStats,
    NewEvent,
    Prunable,
    QueueDepth,
    Rejected,
    ReplayResult,
    Status,
    Stored,
)
from bridge.store.reservations import ReservationStore
from bridge.store.retention import RecordRetention


class Store(ReservationStore, BackfillStore, RecordRetention, Protocol):
    """The durable event log (with its backfills, and the reservations of the bonus
    service)."""

    async def open(self, *, serving: bool = False, fresh: bool = False) -> None:
        """Connect and migrate the schema; ``serving`` is the daemon (SQLite locks the file
        so only one serves it); ``fresh`` (the sandbox, serving only) starts from an empty
        store and keeps the previous one aside."""

    async def close(self) -> None:
        """Finish pending writes and disconnect."""

    async def ping(self) -> None:
        """Raise if the store cannot answer a trivial query."""

    async def append_events(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store events and their deliveries durably; duplicates are found, not stored."""

    async def append_rejected(self, rejected: Rejected) -> Stored:
        """Store an unparsable body as a ``rejected`` event."""

    async def append_polled(self, events: Sequence[NewEvent], cursor: Cursor) -> list[Stored]:
        """Store polled events and advance the cursor in the same transaction."""

    async def get_cursor(self, source: str, name: str) -> Cursor | None:
        """The current poll position, if any."""

    async def claim_due(self, target: str, owner: str, limit: int) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries of ``target``, oldest entity first."""

    async def finish_attempt(self, claimed: Claimed, owner: str, outcome: AttemptOutcome) -> bool:
        """Record an attempt and move the delivery on; False if the lease was lost."""

    async def finish_attempts(
        self, finished: Sequence[tuple[Claimed, AttemptOutcome]], owner: str
    ) -> list[bool]:
        """Record several attempts in one transaction, each as :meth:`finish_attempt` would
        (its own lease check, history line and written digest), in the order given;
        whether each lease was still held."""

    async def extend_leases(self, claimed: Sequence[Claimed], owner: str) -> None:
        """Renew the leases of deliveries ``owner`` still holds (for work done in turn)."""

    async def release_expired_leases(self) -> int:
        """Return deliveries whose lease ran out to ``pending``."""

    async def recover_leases(self, owner: str) -> int:
        """At start-up, return deliveries held by processes known to be gone to ``pending``
        (SQLite under its instance lock: all foreign leases; several instances: expired)."""

    async def next_due_at(self, target: str, after: float) -> float | None:
        """When the next waiting delivery of ``target`` falls due after ``after``.

        Deliveries already due but not claimed are blocked behind an older one of the same
        entity; the dispatcher is woken when that one finishes, so they are not counted.
        """

    async def list_events(self, flt: EventFilter, after: str | None = None) -> list[EventRecord]:
        """Events newest received first, filtered; a page goes on ``after`` the last event
        of the one before it (NotFound if that event is gone)."""

    async def get_event(self, event_id: str) -> EventDetail:
        """An event with its deliveries and full history; raises NotFound."""

    async def replay(
        self, ids: Sequence[str], flt: EventFilter | None, actor: str, dry_run: bool
    ) -> ReplayResult:
        """Requeue dead (or, by explicit id, done) deliveries; appends ``replayed``."""

    async def queue_depth(self) -> list[QueueDepth]:
        """Deliveries per target and status, with the oldest age, excluding ``done``."""

    async def count_events(self) -> dict[Status, int]:
        """How many events are in each status."""

    async def log_stats(self) -> LogStats:
        """Events per status, the oldest and newest event, and the size on disk if known."""

    async def count_prunable(self, status: Status, before: float) -> Prunable:
        """What :meth:`prune_events` would take of ``status`` before ``before`` (a dry run)."""

    async def prune_events(self, status: Status, before: float, limit: int) -> int:
        """Delete up to ``limit`` events of ``status`` (``bridge.store.retention.PRUNABLE``)
        last changed before ``before``, oldest first, in one transaction, with their links,
        their history and the deliveries that carry no other event; how many events went.

        An event with a delivery pending, in flight or in retry is never taken, nor one with
        a dead delivery unless ``status`` is ``dead``. ValueError for another status or a
        ``limit`` below 1."""

    async def list_cursors(self) -> list[Cursor]:
        """All poll positions."""

    async def forget_cursors(self, source: str) -> int:
        """Drop a source's poll positions; how many there were."""

    async def newest_change(
        self, source: str, entity: str, entity_id: str, *, live: bool = False
    ) -> float | None:
        """When the newest stored change of an entity was received, if any (``live``: only
        changes the source reported, not what a backfill listed)."""

    async def last_written(
        self, target: str, source: str, entity: str, entity_id: str
    ) -> tuple[str, float] | None:
        """The digest of the mapped document last written for an entity into a target, and
        when."""

    async def map_ids(
        self, entity: str, system: str, local_id: str, peer_system: str, peer_id: str
    ) -> None:
        """Record that ``local_id`` in ``system`` is ``peer_id`` in ``peer_system``."""

    async def lookup_id(
        self, entity: str, system: str, local_id: str, peer_system: str
    ) -> str | None:
        """The peer's id of an entity, if mapped (both directions are looked up)."""

    async def alias_id(self, entity: str, system: str, alias_id: str, target_id: str) -> None:
        """Record that ``alias_id`` now means ``target_id`` in ``system`` (the system merged
        the one entity into the other)."""

    async def resolve_alias(self, entity: str, system: str, local_id: str) -> str | None:
        """The id ``local_id`` of ``system`` now means (following merges), or None."""
