"""Backfill records and what ``bridge backfill`` and the daemon's runner ask of the store.

A backfill lists one source's entities page by page into the event log (PRODUCT 3.3's
pipeline, fed from history instead of a change feed). Each page's events and the cursor
after it are stored in one transaction, so an interrupted backfill resumes at the page
after the last one stored and never skips one; its deliveries go after live changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Protocol

from bridge.store.records import NewEvent, Status, Stored


class BackfillStatus(StrEnum):
    """Where a backfill is."""

    LISTING = "listing"  # pages are still being listed (and delivered meanwhile)
    DELIVERING = "delivering"  # everything is listed; deliveries still run
    DONE = "done"  # listed and every delivery finished (done or dead)
    CANCELLED = "cancelled"  # stopped by support; what was listed is still delivered
    FAILED = "failed"  # cannot go on (its route is gone); see ``error``


OPEN = (BackfillStatus.LISTING, BackfillStatus.DELIVERING)


def backfill_ref(number: int) -> str:
    """Public id of a backfill."""
    return f"bf_{number}"


def listed_key(backfill: str, entity_id: str) -> str:
    """The de-duplication key of an entity a backfill listed: once per backfill."""
    return f"backfill-{backfill.removeprefix('bf_')}:{entity_id}"


@dataclass(frozen=True)
class BackfillSpec:
    """What to backfill: which entities of which source, into which targets, since when."""

    source: str
    entity: str
    targets: tuple[str, ...]
    since: date | None = None


@dataclass(frozen=True)
class Backfill:
    """One backfill as stored, with the status counts of the events it listed."""

    id: str
    spec: BackfillSpec
    status: BackfillStatus
    cursor: str | None
    listed: int
    total: int | None
    error: str | None
    actor: str | None
    created_at: float
    updated_at: float
    finished_at: float | None
    events: dict[Status, int] = field(default_factory=dict)  # the listed events by status

    @property
    def waiting(self) -> int:
        """Listed events not yet finished (pending, in flight or due for a retry)."""
        return sum(
            n
            for s, n in self.events.items()
            if s in (Status.PENDING, Status.IN_FLIGHT, Status.RETRY)
        )

    @property
    def finished(self) -> int:
        """Listed events whose deliveries all finished (done or dead)."""
        return self.events.get(Status.DONE, 0) + self.events.get(Status.DEAD, 0)


class BackfillStore(Protocol):
    """The backfill part of the store."""

    async def open_backfill(self, spec: BackfillSpec, actor: str) -> tuple[Backfill, bool]:
        """The open backfill of ``spec`` if there is one (resumed: False), else a new one."""

    async def get_backfill(self, backfill_id: str) -> Backfill:
        """One backfill with its counts; raises NotFound."""

    async def list_backfills(self, *, open_only: bool = False, limit: int = 50) -> list[Backfill]:
        """Backfills, newest first."""

    async def append_listed(
        self, backfill_id: str, events: Sequence[NewEvent], cursor: str | None, total: int | None
    ) -> list[Stored]:
        """Store one listed page and move the backfill's cursor past it, in one transaction;
        ``cursor`` None means the page was the last (the backfill goes on delivering)."""

    async def set_backfill_status(
        self, backfill_id: str, status: BackfillStatus, error: str | None = None
    ) -> bool:
        """Move an open backfill to ``status`` (or only record ``error`` when the status is
        the same); False when it was no longer open."""
