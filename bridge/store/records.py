"""Plain records the store hands out and takes in; no behaviour, no I/O."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    """Status of an event or a delivery (PRODUCT 3.5).

    An event's status is derived from its deliveries: the worst of them wins, in the order
    dead > in_flight > retry > pending > done. An event with no route is ``done``.
    """

    PENDING = "pending"  # stored, waiting for its turn
    IN_FLIGHT = "in_flight"  # claimed by a dispatcher under a lease
    RETRY = "retry"  # an attempt failed transiently; due again at ``due_at``
    DONE = "done"  # the target accepted it
    DEAD = "dead"  # a permanent error or retries exhausted; waits for a replay
    REJECTED = "rejected"  # authenticated but unparsable; stored for inspection


ACTIVE = (Status.PENDING, Status.IN_FLIGHT, Status.RETRY)


def event_ref(number: int) -> str:
    """Public id of an event."""
    return f"evt_{number}"


def delivery_ref(number: int) -> str:
    """Public id of a delivery."""
    return f"dlv_{number}"


@dataclass(frozen=True)
class InboundEvent:
    """A change reported by a source system, as parsed from a webhook or a poll."""

    source_key: str  # unique within the source; the de-duplication key
    entity: str  # "order", "customer", ...
    entity_id: str
    action: str = "changed"
    payload: dict[str, Any] = field(default_factory=dict)
    # The payload as the store writes it, when intake has serialised it already (checking
    # that it can be stored): see payload_text.
    text: str | None = field(default=None, compare=False, repr=False)


def first_status(new: NewEvent) -> tuple[Status, str | None]:
    """An event's status when stored, and why: waiting for its targets, or done at once
    with no route to take it anywhere."""
    return (Status.PENDING, None) if new.targets else (Status.DONE, "no route")


def payload_text(event: InboundEvent) -> str:
    """The payload as stored: compact JSON, UTF-8 text as is, NaN refused."""
    if event.text is not None:
        return event.text
    return json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclass(frozen=True)
class NewEvent:
    """An inbound event ready to store, with the targets its route gives it."""

    source: str
    event: InboundEvent
    targets: tuple[str, ...]
    backfill: int | None = None  # the backfill that listed it; delivered after live changes


@dataclass(frozen=True)
class Rejected:
    """An authenticated body we could not parse, kept for support."""

    source: str
    source_key: str
    body: str
    reason: str


@dataclass(frozen=True)
class Stored:
    """Result of storing one event: its id and whether we had it already."""

    event_id: str
    duplicate: bool


@dataclass(frozen=True)
class EventRecord:
    """One stored event."""

    id: str
    source: str
    source_key: str
    entity: str | None
    entity_id: str | None
    action: str | None
    status: Status
    reason: str | None
    payload: Any
    received_at: float
    updated_at: float
    targets: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery of an entity's latest state to one target."""

    id: str
    target: str
    source: str
    entity: str
    entity_id: str
    status: Status
    attempts: int
    due_at: float
    last_error_class: str | None
    last_error: str | None
    created_at: float
    updated_at: float
    event_ids: tuple[str, ...] = ()
    generation: int = 0  # how often it was replayed

    @property
    def operation_key(self) -> str:
        """The target's idempotency key: stable across retries, new for each replay."""
        suffix = f"-r{self.generation}" if self.generation else ""
        return f"bridge-{self.id}{suffix}"


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the append-only history of a delivery or an event."""

    at: float
    kind: str  # created | coalesced | attempt | lease_expired | replayed | rejected
    delivery_id: str | None
    event_id: str | None
    attempt: int | None
    outcome: str | None
    error_class: str | None
    message: str | None
    duration_ms: float | None
    actor: str | None


@dataclass(frozen=True)
class EventDetail:
    """Everything support needs about one event."""

    event: EventRecord
    deliveries: list[DeliveryRecord]
    history: list[HistoryEntry]


@dataclass(frozen=True)
class Claimed:
    """A delivery claimed for one attempt, with the events it carries (oldest first)."""

    delivery: DeliveryRecord
    events: list[EventRecord]
    attempt: int


@dataclass(frozen=True)
class AttemptOutcome:
    """What happened on one attempt; the dispatcher builds it, the store records it."""

    status: Status  # DONE, RETRY or DEAD
    due_at: float | None = None
    error_class: str | None = None
    message: str | None = None
    duration_ms: float | None = None
    written: str | None = None  # DONE with a write: the digest of the document written


@dataclass(frozen=True)
class EventFilter:
    """Filters shared by ``bridge events list``, ``bridge replay`` and the admin API."""

    status: Status | None = None
    source: str | None = None
    target: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 50


@dataclass(frozen=True)
class QueueDepth:
    """Deliveries in one (target, status) cell, and how long the oldest has waited."""

    target: str
    status: Status
    count: int
    oldest_at: float | None


@dataclass(frozen=True)
class Cursor:
    """A poll position in a source system."""

    source: str
    name: str
    value: str
    updated_at: float


@dataclass(frozen=True)
class ReplayResult:
    """What a replay did (or, on a dry run, would do)."""

    requeued: list[str]
    skipped: dict[str, str]  # id -> why it was not requeued


@dataclass(frozen=True)
class LogStats:
    """How big the event log is: events per status, its oldest and newest, its bytes."""

    events: dict[Status, int]
    deliveries: int
    oldest_at: float | None  # when the oldest event kept was received
    newest_at: float | None
    size_bytes: int | None  # on disk (SQLite: the file and its WAL); None where unknown


@dataclass(frozen=True)
class Prunable:
    """The events of one status a prune would take, and their last changes' span."""

    status: Status
    count: int
    oldest_at: float | None  # the earliest ``updated_at`` among them
    newest_at: float | None
