"""Backfills in memory (``bridge.store.backfills.BackfillStore``): one open backfill per
spec, its pages stored with the cursor after them, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bridge.errors import NotFound
from bridge.store.backfills import OPEN, Backfill, BackfillSpec, BackfillStatus, backfill_ref
from bridge.store.memory.intake import insert_events
from bridge.store.memory.log import Log, State
from bridge.store.records import NewEvent, Status, Stored
from bridge.store.refs import parse_ref


def _normal(spec: BackfillSpec) -> BackfillSpec:
    """The spec as stored: its targets sorted and once each."""
    return replace(spec, targets=tuple(",".join(sorted(set(spec.targets))).split(",")))


def _counted(state: State, bid: int) -> Backfill:
    """The backfill with the statuses of the events it listed."""
    counts: dict[Status, int] = {}
    for row in state.events.values():
        if row.backfill == bid:
            counts[row.status] = counts.get(row.status, 0) + 1
    return replace(state.backfills[bid], events=counts)


def _number(state: State, backfill_id: str) -> int:
    bid = parse_ref(backfill_id, "bf")
    if bid not in state.backfills:
        raise NotFound(f"no backfill {backfill_id}")
    return bid


class MemoryBackfills(Log):
    """The backfill part of the store."""

    async def open_backfill(self, spec: BackfillSpec, actor: str) -> tuple[Backfill, bool]:
        """The open backfill of ``spec`` (resumed: False), else a new one (True)."""
        state = await self._turn()
        now = self._clock()
        spec = _normal(spec)
        for bid, found in state.backfills.items():
            if found.spec == spec and found.status in OPEN:
                return _counted(state, bid), False
        bid = max(state.backfills, default=0) + 1
        state.backfills[bid] = Backfill(
            id=backfill_ref(bid), spec=spec, status=BackfillStatus.LISTING, cursor=None,
            listed=0, total=None, error=None, actor=actor, created_at=now, updated_at=now,
            finished_at=None,
        )  # fmt: skip
        return _counted(state, bid), True

    async def get_backfill(self, backfill_id: str) -> Backfill:
        """One backfill with its counts; raises NotFound."""
        state = await self._turn()
        return _counted(state, _number(state, backfill_id))

    async def list_backfills(self, *, open_only: bool = False, limit: int = 50) -> list[Backfill]:
        """Backfills, newest first."""
        state = await self._turn()
        found = [
            _counted(state, bid)
            for bid, row in sorted(state.backfills.items(), reverse=True)
            if not open_only or row.status in OPEN
        ]
        return found[:limit]

    async def append_listed(
        self, backfill_id: str, events: Sequence[NewEvent], cursor: str | None, total: int | None
    ) -> list[Stored]:
        """Store one listed page and move the cursor past it; nothing once not listing."""
        state = await self._turn()
        now = self._clock()
        bid = parse_ref(backfill_id, "bf")
        row = state.backfills.get(bid)
        if row is None or row.status is not BackfillStatus.LISTING:
            return []  # cancelled (or finished) meanwhile: the page is not stored
        stored = insert_events(state, events, now)
        listed = sum(1 for s in stored if not s.duplicate)  # a page listed again counts once
        state.backfills[bid] = replace(
            row,
            cursor=cursor,
            listed=row.listed + listed,
            total=row.total if total is None else total,
            status=BackfillStatus.LISTING if cursor is not None else BackfillStatus.DELIVERING,
            error=None,
            updated_at=now,
        )
        return stored

    async def set_backfill_status(
        self, backfill_id: str, status: BackfillStatus, error: str | None = None
    ) -> bool:
        """Move an open backfill on; False when it was no longer open."""
        state = await self._turn()
        now = self._clock()
        bid = parse_ref(backfill_id, "bf")
        row = state.backfills.get(bid)
        if row is None or row.status not in OPEN:
            return False
        finished = None if status in OPEN else now
        state.backfills[bid] = replace(
            row, status=status, error=error, updated_at=now, finished_at=finished
        )
        return True
