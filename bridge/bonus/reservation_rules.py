"""The reservation state machine's rules: which call a status allows, and the refusals.

Pure functions of a reservation (no store, no master), shared by the API, the CLI and the
order-status sink::

    creating ─(hold at master, code sent)─► awaiting_code ─(code ok)─► held ─ commit ─► committed
                                              │   │                     ├── cancel ─► released
                        cancel / code TTL ────┘   └─ wrong ×N ─► locked └── TTL ────► expired
                        ─► cancelled
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from bridge.bonus.balance import CustomerRef
from bridge.errors import BridgeError
from bridge.ledger import LedgerErrorCode, LedgerRefused
from bridge.store.reservations import Reservation, RsvStatus

# The refusal that means a release has nothing to release. (``reservation_closed`` is not
# one: at 1C it also covers a hold that was committed, which support must look at.)
NOTHING_HELD = frozenset({LedgerErrorCode.RESERVATION_NOT_FOUND})
BEFORE_COMMIT = frozenset({RsvStatus.AWAITING_CODE, RsvStatus.HELD})
SPENT = frozenset({RsvStatus.COMMIT_PENDING, RsvStatus.COMMITTED})


class ReservationProblem(BridgeError):
    """A request the state machine refuses; ``code`` is the stable API code."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        retry_after: float | None = None,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.field = field
        self.extra = extra


@dataclass(frozen=True)
class NewReservation:
    """A validated ``POST /api/v1/bonus/reservations``."""

    customer: CustomerRef
    amount: Decimal
    order_system: str
    order_id: str
    client: str
    order_total: Decimal | None = None
    channel: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


def request_digest(body: str) -> str:
    """What an Idempotency-Key is bound to: the canonical request body."""
    return hashlib.sha256(body.encode()).hexdigest()


def cancel_requested(rsv: Reservation) -> tuple[Reservation, RsvStatus] | None:
    """The reservation with a release owed (``release_pending``) and the status the release
    leads to; None when there is nothing left to cancel; ReservationProblem when it cannot
    be cancelled. Shared by the API and ``bridge reservations cancel`` (whose release the
    daemon's owed-call sweeper makes)."""
    if rsv.status in (
        RsvStatus.RELEASED,
        RsvStatus.CANCELLED,
        RsvStatus.RELEASE_PENDING,
        RsvStatus.LOCKED,
        RsvStatus.EXPIRED,
    ):
        return None
    if rsv.status in (RsvStatus.COMMITTED, RsvStatus.COMMIT_PENDING):
        raise ReservationProblem("already_committed", "the reservation is committed")
    if rsv.status is RsvStatus.CREATING:
        raise ReservationProblem(
            "request_in_progress", "the reservation is still being created", retry_after=1
        )
    if rsv.status is RsvStatus.FAILED:
        raise ReservationProblem("failed", f"the reservation failed: {rsv.error_code}")
    then = RsvStatus.RELEASED if rsv.status is RsvStatus.HELD else RsvStatus.CANCELLED
    moved = replace(rsv, status=RsvStatus.RELEASE_PENDING, code_hash=None, pending="release")
    return moved, then


def refusal_raised(rsv: Reservation) -> Reservation:
    """A call the master refused ends as a 409 ``master_refused``, never as a 2xx."""
    if rsv.status is RsvStatus.FAILED:
        raise ReservationProblem(
            "master_refused",
            f"the master refused: {rsv.error_detail or rsv.error_code}",
            master_code=rsv.error_code,
            reservation_status=str(rsv.status),
        )
    return rsv


def refusal_code(code: LedgerErrorCode) -> str:
    """The API's code for a master's refusal of a new reservation."""
    return "unknown_order" if code is LedgerErrorCode.RESERVATION_NOT_FOUND else str(code)


def settled(
    rsv: Reservation, status: RsvStatus, error: tuple[str, str] | None = None
) -> Reservation:
    """The reservation in ``status`` with nothing owed any more (``error``: why)."""
    changed = replace(
        rsv,
        status=status,
        pending=None,
        pending_then=None,
        pending_amount=None,
    )
    if error is not None:
        changed = replace(changed, error_code=error[0], error_detail=error[1])
    return changed


def not_awaiting(rsv: Reservation) -> ReservationProblem:
    """Why a code cannot be checked or sent again in this status."""
    if rsv.status in (RsvStatus.LOCKED, RsvStatus.EXPIRED):
        return ReservationProblem(str(rsv.status), f"the reservation is {rsv.status}")
    if rsv.status is RsvStatus.CANCELLED and rsv.error_code == "code_expired":
        return ReservationProblem("expired", "the code has expired; make a new reservation")
    if rsv.status in (RsvStatus.HELD, RsvStatus.COMMIT_PENDING, RsvStatus.COMMITTED):
        return ReservationProblem("already_confirmed", "the code was already accepted")
    return ReservationProblem("invalid_state", f"the reservation is {rsv.status}")


def not_held(rsv: Reservation) -> ReservationProblem:
    """Why a reservation cannot be committed in this status."""
    if rsv.status is RsvStatus.AWAITING_CODE:
        return ReservationProblem("not_confirmed", "confirm the code before committing")
    if rsv.status in (RsvStatus.LOCKED, RsvStatus.EXPIRED):
        return ReservationProblem(str(rsv.status), f"the reservation is {rsv.status}")
    return ReservationProblem("invalid_state", f"the reservation is {rsv.status}")


def commit_checked(rsv: Reservation, amount: Decimal | None, now: float) -> Decimal | None:
    """The amount a commit writes off; None for a repeat of the commit already made.
    Raises ReservationProblem for a commit this reservation cannot take (an expired hold
    is the caller's to release: ``now >= expires_at`` raises nothing here)."""
    if rsv.status in (RsvStatus.COMMITTED, RsvStatus.COMMIT_PENDING):
        already = rsv.committed if rsv.status is RsvStatus.COMMITTED else rsv.pending_amount
        if amount is None or amount == already:
            return None  # a repeat: nothing more is written off
        raise ReservationProblem(
            "already_committed", f"already committed for {already}", field="amount"
        )
    if rsv.status is not RsvStatus.HELD:
        raise not_held(rsv)
    final = rsv.amount if amount is None else amount
    if final > rsv.amount:
        raise ReservationProblem(
            "amount_exceeds_reservation",
            f"{final} is more than the {rsv.amount} held",
            field="amount",
        )
    if final <= 0:
        raise ReservationProblem(
            "invalid_request", "must be more than 0 (cancel releases a hold)", field="amount"
        )
    if rsv.sender == "master" and final != rsv.amount:
        # RetailCRM would charge a smaller amount only after a new SMS code of its own
        # (retailcrm-api.md §4.3 step 4): commit the whole hold, or cancel and reserve anew.
        raise ReservationProblem(
            "partial_commit_unsupported",
            "the master confirms charges by its own SMS: commit the whole amount held,"
            " or cancel and make a new reservation",
            field="amount",
        )
    return final


def outcome(exc: Exception) -> str:
    """The metrics outcome of a refused call."""
    if isinstance(exc, ReservationProblem):
        return exc.code
    if isinstance(exc, LedgerRefused):
        return str(exc.code)
    return "master_unavailable"


def points(amount: Decimal) -> str:
    """``150.00`` → ``150``, ``150.50`` stays."""
    return str(amount.quantize(Decimal(1))) if amount == amount.to_integral() else str(amount)
