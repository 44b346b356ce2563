"""Retention in memory: the log's size and its pruning (``bridge.store.sqlite.retention``),
and the records beside it (``retention_records``)."""

from __future__ import annotations

from bridge.store.memory import retention_records
from bridge.store.memory.log import EventRow, Log, State
from bridge.store.memory.owed import MemoryOwedStore
from bridge.store.owed import owed_store_of
from bridge.store.records import LogStats, Prunable, Status, delivery_ref, event_ref
from bridge.store.retention import PrunableRecords, Records, check_limit, check_prune


def _taken(state: State, status: Status, before: float) -> list[EventRow]:
    """The events a prune would take, oldest last change first (``retention.TAKEN``)."""
    allowed = {Status.DONE, Status.DEAD if status is Status.DEAD else Status.DONE}
    rows = [
        row
        for row in state.events.values()
        if row.status is status
        and row.updated_at < before
        and all(state.deliveries[d].status in allowed for d in row.deliveries)
    ]
    return sorted(rows, key=lambda r: (r.updated_at, r.id))


def _prune(state: State, rows: list[EventRow]) -> None:
    """Drop events, their links, the deliveries left empty and the history of both."""
    eids = {row.id for row in rows}
    gone: set[int] = set()
    for row in rows:
        del state.events[row.id]
        del state.by_source_key[(row.source, row.source_key)]
        for did in row.deliveries:
            if did in gone:  # carried another event of this batch too: dropped with it
                continue
            delivery = state.deliveries[did]
            delivery.events = [e for e in delivery.events if e not in eids]
            if not delivery.events:
                gone.add(did)
                del state.deliveries[did]
                same = state.by_entity[(delivery.target, delivery.entity_key)]
                same.remove(did)
                if not same:
                    del state.by_entity[(delivery.target, delivery.entity_key)]
    events = {event_ref(e) for e in eids}
    deliveries = {delivery_ref(d) for d in gone}
    state.history = [
        h
        for h in state.history
        if not (
            (h.event_id in events and (h.delivery_id is None or h.delivery_id in deliveries))
            or h.delivery_id in deliveries
        )
    ]


class MemoryRetention(Log):
    """The log's size and its pruning, and the pruning of the records beside it."""

    async def log_stats(self) -> LogStats:
        """Events per status, the oldest and newest; no size (nothing is on disk)."""
        state = await self._turn()
        counts: dict[Status, int] = {}
        for row in state.events.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        received = [row.received_at for row in state.events.values()]
        return LogStats(
            counts,
            len(state.deliveries),
            min(received, default=None),
            max(received, default=None),
            None,
        )

    async def count_prunable(self, status: Status, before: float) -> Prunable:
        """What a prune of ``status`` before ``before`` would take."""
        check_prune(status, 1)
        rows = _taken(await self._turn(), status, before)
        if not rows:
            return Prunable(status, 0, None, None)
        return Prunable(status, len(rows), rows[0].updated_at, rows[-1].updated_at)

    async def prune_events(self, status: Status, before: float, limit: int) -> int:
        """Delete one batch of finished events and what hangs off them."""
        check_prune(status, limit)
        state = await self._turn()
        rows = _taken(state, status, before)[:limit]
        _prune(state, rows)
        return len(rows)

    def _owed(self) -> MemoryOwedStore:
        """The owed calls kept beside this store (``owed_store_of``)."""
        owed = owed_store_of(self)
        assert isinstance(owed, MemoryOwedStore)
        return owed

    async def count_prunable_records(self, kind: Records, before: float) -> PrunableRecords:
        """What a prune of ``kind`` before ``before`` would take."""
        found = retention_records.chosen(await self._turn(), self._owed(), kind, before)
        if not found:
            return PrunableRecords(kind, 0, None, None)
        return PrunableRecords(kind, len(found), found[0][0], found[-1][0])

    async def prune_records(self, kind: Records, before: float, limit: int) -> int:
        """Delete one batch of ``kind`` (a reservation with its history and owed calls)."""
        check_limit(limit)
        state, owed = await self._turn(), self._owed()
        found = retention_records.chosen(state, owed, kind, before)[:limit]
        retention_records.drop(state, owed, kind, [key for _, key in found])
        return len(found)
