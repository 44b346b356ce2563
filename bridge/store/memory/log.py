"""The memory store's state and lifecycle: the rows every concept shares, kept in dicts.

The same model as the SQLite schema (events, deliveries, the events each delivery carries,
an append-only history), so the mixins can follow the SQL statement by statement. No
method awaits while it changes the state, so under one event loop every method is one
transaction; a batch that fails (a payload that is not JSON) is checked before anything
is written, so it changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import NotFound, StoreError
from bridge.store.backfills import Backfill
from bridge.store.records import (
    DeliveryRecord,
    EventRecord,
    HistoryEntry,
    Status,
    delivery_ref,
    event_ref,
)
from bridge.store.reservations import Reservation, SandboxMessage, Step

Clock = Callable[[], float]

# An event's status is the worst of its deliveries' (dead > in_flight > retry > pending).
_WORST_FIRST = {Status.DEAD: 0, Status.IN_FLIGHT: 1, Status.RETRY: 2, Status.PENDING: 3}


def to_json(payload: Any) -> str:
    """A payload as the SQLite store keeps it (and refuses it: NaN is not JSON)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def from_json(text: str) -> Any:
    """A payload back from its JSON (a copy: the caller cannot change what is stored)."""
    return json.loads(text)


@dataclass
class EventRow:
    """One row of ``events``."""

    id: int
    source: str
    source_key: str
    entity: str | None
    entity_id: str | None
    action: str | None
    payload: str  # JSON, or the raw body when rejected
    status: Status
    reason: str | None
    received_at: float
    updated_at: float
    backfill: int | None
    deliveries: list[int] = field(default_factory=list)  # ascending


@dataclass
class DeliveryRow:
    """One row of ``deliveries``."""

    id: int
    target: str
    source: str
    entity: str
    entity_id: str
    status: Status
    due_at: float
    created_at: float
    updated_at: float
    priority: int  # 0 live, 1 backfilled: a claim takes the lower first
    attempts: int = 0
    generation: int = 0
    lease_owner: str | None = None
    lease_until: float | None = None
    last_error_class: str | None = None
    last_error: str | None = None
    events: list[int] = field(default_factory=list)  # ascending

    @property
    def entity_key(self) -> str:
        """source/entity/entity_id: deliveries of one key go in order."""
        return f"{self.source}/{self.entity}/{self.entity_id}"


@dataclass
class State:
    """Everything a memory store holds; survives close() and open() like a file."""

    events: dict[int, EventRow] = field(default_factory=dict)
    by_source_key: dict[tuple[str, str], int] = field(default_factory=dict)
    deliveries: dict[int, DeliveryRow] = field(default_factory=dict)
    history: list[HistoryEntry] = field(default_factory=list)
    cursors: dict[tuple[str, str], tuple[str, float]] = field(default_factory=dict)
    written: dict[tuple[str, str, str, str], tuple[str, float]] = field(default_factory=dict)
    id_map: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    id_alias: dict[tuple[str, str, str], str] = field(default_factory=dict)
    by_entity: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (target, key)
    next_event: int = 1
    next_delivery: int = 1
    backfills: dict[int, Backfill] = field(default_factory=dict)  # events counted on reading
    reservations: dict[str, Reservation] = field(default_factory=dict)  # in creation order
    reservation_steps: dict[str, list[Step]] = field(default_factory=dict)
    sms_sends: list[tuple[str, float, str]] = field(default_factory=list)
    sandbox: list[SandboxMessage] = field(default_factory=list)
    next_sandbox: int = 1  # message ids are never reused, also after retention
    secrets: dict[str, str] = field(default_factory=dict)


class Log:
    """The lifecycle of a memory store and the row helpers its concepts share."""

    def __init__(self, *, lease_seconds: float = 60.0, clock: Clock = time.time) -> None:
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._state = State()
        self.previous: State | None = None  # what ``open(fresh=True)`` set aside
        self._open = False
        self._serving = False  # like SQLite's instance lock: foreign leases are a dead run's

    async def open(self, *, serving: bool = False, fresh: bool = False) -> None:
        """Start accepting calls; ``fresh`` (serving only) sets the state aside first."""
        if serving and fresh:
            self.previous, self._state = self._state, State()
        self._serving = serving
        self._open = True

    async def close(self) -> None:
        """Stop accepting calls (the state stays, as a file would)."""
        self._open = False
        self._serving = False

    async def ping(self) -> None:
        """Raise StoreError unless the store is open."""
        await self._turn()

    async def _turn(self) -> State:
        """Yield to the loop as a real store's I/O would, then the state if open."""
        await asyncio.sleep(0)
        if not self._open:
            raise StoreError("store is not open")
        return self._state

    # -- rows ------------------------------------------------------------------------------

    def _history(self, kind: str, delivery: int | None, event: int | None, **kw: Any) -> None:
        self._state.history.append(
            HistoryEntry(
                at=kw.pop("at"),
                kind=kind,
                delivery_id=delivery_ref(delivery) if delivery is not None else None,
                event_id=event_ref(event) if event is not None else None,
                attempt=kw.pop("attempt", None),
                outcome=kw.pop("outcome", None),
                error_class=kw.pop("error_class", None),
                message=kw.pop("message", None),
                duration_ms=kw.pop("duration_ms", None),
                actor=kw.pop("actor", None),
            )
        )

    def _refresh_events(self, did: int, now: float) -> None:
        """Each event the delivery carries takes the worst status of its deliveries."""
        state = self._state
        for eid in state.deliveries[did].events:
            event = state.events[eid]
            if event.status is Status.REJECTED:
                continue
            statuses = [state.deliveries[d].status for d in event.deliveries]
            worst = min(statuses, key=lambda s: _WORST_FIRST.get(s, 4))
            event.status = worst if worst in _WORST_FIRST else Status.DONE
            event.updated_at = now

    def _delivery_record(self, did: int) -> DeliveryRecord:
        row = self._state.deliveries.get(did)
        if row is None:
            raise NotFound(f"no delivery {delivery_ref(did)}")
        return DeliveryRecord(
            id=delivery_ref(row.id),
            target=row.target,
            source=row.source,
            entity=row.entity,
            entity_id=row.entity_id,
            status=row.status,
            attempts=row.attempts,
            due_at=row.due_at,
            last_error_class=row.last_error_class,
            last_error=row.last_error,
            created_at=row.created_at,
            updated_at=row.updated_at,
            event_ids=tuple(event_ref(e) for e in row.events),
            generation=row.generation,
        )

    def _event_record(self, row: EventRow, payload: Any, targets: tuple[str, ...]) -> EventRecord:
        return EventRecord(
            id=event_ref(row.id),
            source=row.source,
            source_key=row.source_key,
            entity=row.entity,
            entity_id=row.entity_id,
            action=row.action,
            status=row.status,
            reason=row.reason,
            payload=payload,
            received_at=row.received_at,
            updated_at=row.updated_at,
            targets=targets,
        )

    def _targets_of(self, row: EventRow) -> tuple[str, ...]:
        """The distinct targets an event has deliveries to, sorted."""
        return tuple(sorted({self._state.deliveries[d].target for d in row.deliveries}))
