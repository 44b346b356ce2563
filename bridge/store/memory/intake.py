"""Events in, in memory: de-duplicated by source key, one delivery per target coalescing
an entity's waiting changes, and the pollers' cursors (``bridge.store.sqlite.intake``)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from bridge.store.memory.log import DeliveryRow, EventRow, Log, State, to_json
from bridge.store.records import Cursor, NewEvent, Rejected, Status, Stored, event_ref, first_status

_WAITING = (Status.PENDING, Status.RETRY)


def _delivery_for(state: State, new: NewEvent, target: str, now: float) -> DeliveryRow:
    """The delivery a new event of ``target`` joins, or a new one."""
    ev = new.event
    key = f"{new.source}/{ev.entity}/{ev.entity_id}"
    same = [state.deliveries[d] for d in state.by_entity.get((target, key), [])]
    if new.backfill is None:
        # A live change lifts the entity's backfilled deliveries still waiting (the one it
        # joins, or older ones in retry that its own delivery must wait behind).
        for row in same:
            if row.priority > 0 and row.status in _WAITING:
                row.priority = 0
    # Only a delivery never attempted may take newer state: an attempt may have landed
    # even when it failed, and the target would take its operation key as a repeat.
    waiting = [d for d in same if d.status is Status.PENDING and d.attempts == 0]
    if waiting:
        return waiting[-1]
    did = state.next_delivery
    state.next_delivery += 1
    row = DeliveryRow(
        id=did,
        target=target,
        source=new.source,
        entity=str(ev.entity),
        entity_id=str(ev.entity_id),
        status=Status.PENDING,
        due_at=now,
        created_at=now,
        updated_at=now,
        priority=0 if new.backfill is None else 1,
    )
    state.deliveries[did] = row
    state.by_entity.setdefault((target, key), []).append(did)
    return row


def insert_event(state: State, new: NewEvent, payload: str, now: float) -> Stored:
    """Store an event (``payload`` its JSON) with its deliveries, unless it is known."""
    ev = new.event
    found = state.by_source_key.get((new.source, ev.source_key))
    if found is not None:
        return Stored(event_ref(found), True)
    eid = state.next_event
    state.next_event += 1
    status, reason = first_status(new)
    row = EventRow(
        eid, new.source, ev.source_key, ev.entity, ev.entity_id, ev.action, payload, status,
        reason, now, now, new.backfill,
    )  # fmt: skip
    state.events[eid] = row
    state.by_source_key[(new.source, ev.source_key)] = eid
    for target in new.targets:
        delivery = _delivery_for(state, new, target, now)
        if eid not in delivery.events:
            delivery.events.append(eid)
            bisect.insort(row.deliveries, delivery.id)
    return Stored(event_ref(eid), False)


def insert_events(state: State, events: Sequence[NewEvent], now: float) -> list[Stored]:
    """Store a batch: every payload is checked first, so a bad one stores nothing."""
    payloads = [to_json(new.event.payload) for new in events]
    return [insert_event(state, new, p, now) for new, p in zip(events, payloads, strict=True)]


class MemoryIntake(Log):
    """Appending events, and the cursors of the pollers that read them."""

    async def append_events(self, events: Sequence[NewEvent]) -> list[Stored]:
        """Store events with their deliveries, all or nothing."""
        state = await self._turn()
        return insert_events(state, events, self._clock())

    async def append_rejected(self, rejected: Rejected) -> Stored:
        """Store an unparsable body as a rejected event."""
        state = await self._turn()
        now = self._clock()
        found = state.by_source_key.get((rejected.source, rejected.source_key))
        if found is not None:
            return Stored(event_ref(found), True)
        eid = state.next_event
        state.next_event += 1
        state.events[eid] = EventRow(
            eid, rejected.source, rejected.source_key, None, None, None, rejected.body,
            Status.REJECTED, rejected.reason, now, now, None,
        )  # fmt: skip
        state.by_source_key[(rejected.source, rejected.source_key)] = eid
        self._history(
            "rejected", None, eid, at=now, outcome="rejected", error_class="parse",
            message=rejected.reason,
        )  # fmt: skip
        return Stored(event_ref(eid), False)

    async def append_polled(self, events: Sequence[NewEvent], cursor: Cursor) -> list[Stored]:
        """Store polled events and move the cursor together."""
        state = await self._turn()
        now = self._clock()
        stored = insert_events(state, events, now)
        state.cursors[(cursor.source, cursor.name)] = (cursor.value, now)
        return stored

    async def get_cursor(self, source: str, name: str) -> Cursor | None:
        """The stored poll position of ``source``/``name``."""
        state = await self._turn()
        found = state.cursors.get((source, name))
        return None if found is None else Cursor(source, name, *found)

    async def list_cursors(self) -> list[Cursor]:
        """Every poll position, by source and name."""
        state = await self._turn()
        return [Cursor(s, n, *state.cursors[(s, n)]) for s, n in sorted(state.cursors)]

    async def forget_cursors(self, source: str) -> int:
        """Drop ``source``'s poll positions; how many there were."""
        state = await self._turn()
        gone = [key for key in state.cursors if key[0] == source]
        for key in gone:
            del state.cursors[key]
        return len(gone)
