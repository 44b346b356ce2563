"""Calls the bridge owes a system: the record, its statuses and how an attempt ends.

An owed call is a write the bridge has promised a system (a reservation's commit at the
bonus master, later a card merge's balance transfer, an accrual, an operation copied to a
second ledger). It is stored before it is made, under an operation id the system uses to
apply it once however often it is retried, and it moves through::

    pending ──claim──► in_flight ──done──► done
       ▲                  │  └──never retried / refused──► dead ──replay──► pending
       └──retry (due_at)──┘
       └──lease ran out (the process died)──┘

``arguments`` is plain JSON, so a call outlives the process that owed it and any code
change that keeps reading its operation's arguments.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

_REF = re.compile(r"^own_(\d+)$")


class OwedStatus(StrEnum):
    """Where an owed call is."""

    PENDING = "pending"  # due at ``due_at`` (now, or after a backoff)
    IN_FLIGHT = "in_flight"  # an attempt runs under a lease (owner, lease_until)
    DONE = "done"  # the system took it, or it was no longer wanted
    DEAD = "dead"  # refused, or retries exhausted: support reads last_error, replays


OPEN = frozenset({OwedStatus.PENDING, OwedStatus.IN_FLIGHT})


@dataclass(frozen=True)
class NewOwedCall:
    """A call to owe: ``operation`` names its handler, ``operation_id`` makes it unique per
    system (a second ``owe`` of the same id is the same call)."""

    system: str
    operation: str
    operation_id: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    subject: str | None = None  # what it belongs to (a reservation id), for look-ups
    due_at: float | None = None  # None: now


@dataclass(frozen=True)
class OwedCall:
    """One stored owed call."""

    id: str  # own_12
    system: str
    operation: str
    operation_id: str
    arguments: Mapping[str, Any]
    subject: str | None
    status: OwedStatus
    attempts: int
    due_at: float
    created_at: float
    updated_at: float
    last_error: str | None = None
    owner: str | None = None
    lease_until: float | None = None
    note: str | None = None  # how it ended (done: the handler's note; dead: the reason)


@dataclass(frozen=True)
class OwedOutcome:
    """How an attempt ended: done, retry at ``due_at``, or dead."""

    status: OwedStatus
    error: str | None = None
    due_at: float | None = None
    note: str | None = None

    @classmethod
    def done(cls, note: str | None = None) -> OwedOutcome:
        """The system took the call (or it is no longer wanted: ``note`` says why)."""
        return cls(OwedStatus.DONE, note=note)

    @classmethod
    def retry(cls, error: str, due_at: float) -> OwedOutcome:
        """Try again at ``due_at``."""
        return cls(OwedStatus.PENDING, error=error, due_at=due_at)

    @classmethod
    def dead(cls, error: str) -> OwedOutcome:
        """Give up: a person must look (``bridge replay own_…`` after the fix)."""
        return cls(OwedStatus.DEAD, error=error, note=error)


def owed_ref(number: int) -> str:
    """The id support types: ``own_12``."""
    return f"own_{number}"


def parse_owed_ref(ref: str) -> int | None:
    """``own_12`` → 12; None for anything else."""
    match = _REF.match(ref)
    return int(match.group(1)) if match else None
