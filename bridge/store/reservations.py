"""Reservation records and what the bonus service asks of the store for them.

A reservation is one SMS-confirmed write-off (PRODUCT 3.2). Its row is the state machine;
``reservation_history`` is its append-only log. Every update is a compare-and-set on
``version``, so two workers can never both move one reservation on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from bridge.errors import BridgeError


class RsvStatus(StrEnum):
    """Where a reservation is (PRODUCT 3.2)."""

    CREATING = "creating"  # stored; the hold at the master is being made
    AWAITING_CODE = "awaiting_code"
    HELD = "held"
    COMMIT_PENDING = "commit_pending"
    COMMITTED = "committed"
    RELEASE_PENDING = "release_pending"
    RELEASED = "released"  # cancelled after the hold
    CANCELLED = "cancelled"  # cancelled before the code, or the code ran out
    LOCKED = "locked"  # too many wrong codes
    EXPIRED = "expired"  # held past its TTL; released at the master
    FAILED = "failed"  # the master refused the hold (or a commit); see error_code


FINAL = frozenset(
    {
        RsvStatus.COMMITTED,
        RsvStatus.RELEASED,
        RsvStatus.CANCELLED,
        RsvStatus.LOCKED,
        RsvStatus.EXPIRED,
        RsvStatus.FAILED,
    }
)


@dataclass(frozen=True)
class Reservation:
    """One row of ``reservations``; change it with ``dataclasses.replace``."""

    id: str
    status: RsvStatus
    master: str
    customer_id: str
    phone: str | None
    amount: Decimal
    order_system: str
    order_id: str
    master_order_id: str
    client: str
    sender: str
    expires_at: float
    created_at: float
    updated_at: float
    committed: Decimal | None = None
    order_total: Decimal | None = None
    master_ref: str | None = None
    channel: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    code_hash: str | None = None
    code_expires_at: float | None = None
    verification_id: str | None = None
    attempts: int = 0
    sends: int = 0
    last_sent_at: float | None = None
    pending: str | None = None  # "commit" | "release" | "reverse"
    pending_amount: Decimal | None = None
    pending_then: RsvStatus | None = None
    error_code: str | None = None
    error_detail: str | None = None
    # Returns after the commit (PRODUCT 3.4): the order's lines as they were when it was
    # committed (bridge.bonus.returns), the points a return was seen to need back in all,
    # and those given back at the master so far.
    basket: str | None = None
    return_target: Decimal | None = None
    returned: Decimal | None = None
    version: int = 0


@dataclass(frozen=True)
class Step:
    """One line of a reservation's history."""

    kind: str  # created, code_sent, confirm_failed, held, commit, release, expired, ...
    status: RsvStatus
    detail: str | None = None
    actor: str | None = None
    at: float | None = None  # filled in by the store


@dataclass(frozen=True)
class SandboxMessage:
    """A text the sandbox gateway received."""

    id: int
    at: float
    phone: str
    text: str
    reference: str | None


class OrderTaken(BridgeError):
    """The order already has an open (or committed) reservation: ``args[0]`` is its id."""


class VersionConflict(BridgeError):
    """Someone else moved the reservation on first; re-read and decide again."""


class ReservationStore(Protocol):
    """Reservation rows, their history, SMS accounting and the sandbox outbox."""

    async def create_reservation(self, rsv: Reservation, step: Step) -> Reservation:
        """Insert ``rsv``; if its (client, idempotency_key) is taken, return that one; if its
        order has an open or committed reservation, raise OrderTaken."""

    async def find_reservation(self, client: str, idempotency_key: str) -> Reservation | None:
        """The reservation ``client`` made with this Idempotency-Key, if any."""

    async def get_reservation(self, reservation_id: str) -> Reservation:
        """The reservation; raises NotFound."""

    async def update_reservation(self, rsv: Reservation, steps: Sequence[Step]) -> Reservation:
        """Write ``rsv`` if its version is still the stored one (else VersionConflict);
        append ``steps``; return it with the next version."""

    async def list_reservations(
        self, status: str | None = None, limit: int = 50
    ) -> list[Reservation]:
        """Newest first."""

    async def reservation_history(self, reservation_id: str) -> list[Step]:
        """Oldest first."""

    async def due_reservations(self, now: float, stuck_before: float, limit: int) -> list[str]:
        """Ids with work for the sweeper: a code or hold past its time, a pending master
        call due, or a creation interrupted before ``stuck_before``."""

    async def next_reservation_due(self) -> float | None:
        """The earliest moment the sweeper has something to do, if any."""

    async def reservations_for_order(
        self, order_system: str, order_ids: Sequence[str]
    ) -> list[str]:
        """Ids of the reservations made for an order known by any of ``order_ids``."""

    async def count_reservations(self) -> dict[str, int]:
        """Reservations per status."""

    async def claim_sms_slot(
        self, phone_key: str, now: float, window: float, cap: int, reservation_id: str
    ) -> bool:
        """Count one code to this phone unless ``cap`` were sent in the last ``window``."""

    async def add_sandbox_message(self, phone: str, text: str, reference: str | None) -> int:
        """Keep a text the sandbox gateway 'sent'."""

    async def list_sandbox_messages(
        self, phone: str | None = None, limit: int = 20
    ) -> list[SandboxMessage]:
        """Newest first."""

    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """A secret kept in the store, made by ``make`` the first time it is asked for."""
