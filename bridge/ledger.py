"""The bonus master as the core sees it: the ``Ledger`` protocol and its records.

A connector that can be ``bonus.master`` implements :class:`Ledger`. Amounts are points as
``Decimal`` (never floats); every call that changes the ledger carries an ``operation_id``
the master is idempotent on, so a retry never charges twice (PRODUCT 3.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Protocol, runtime_checkable

from bridge.errors import PermanentError


class LedgerErrorCode(StrEnum):
    """Business refusals a master may answer with; stable across masters."""

    UNKNOWN_CUSTOMER = "unknown_customer"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    RESERVATION_NOT_FOUND = "reservation_not_found"
    RESERVATION_CLOSED = "reservation_closed"
    AMOUNT_EXCEEDS_RESERVATION = "amount_exceeds_reservation"
    AMOUNT_EXCEEDS_ORIGINAL = "amount_exceeds_original"
    OPERATION_CONFLICT = "operation_conflict"
    INVALID_REQUEST = "invalid_request"
    INVALID_CODE = "invalid_code"  # a master-sent confirmation code was wrong or expired
    CUSTOMER_MISMATCH = "customer_mismatch"  # the order belongs to another customer
    # The master cannot do this at all as configured (a 1C service declaring no reserve).
    NOT_SUPPORTED = "not_supported"
    UNKNOWN_CARD = "unknown_card"  # no card of this number at the master
    CARD_TAKEN = "card_taken"  # the card belongs to another phone
    CARD_BLOCKED = "card_blocked"  # the card cannot take this call in its status


class LedgerRefused(PermanentError):
    """The master understood the call and refused it; ``code`` says why."""

    def __init__(self, code: LedgerErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message


@dataclass(frozen=True)
class LedgerCustomer:
    """A customer as the master knows them; ``phone`` is the one SMS codes go to."""

    customer_id: str
    phone: str | None
    card: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class LedgerBalance:
    """Points of one customer at ``as_of``."""

    customer_id: str
    balance: Decimal
    reserved: Decimal
    available: Decimal
    as_of: datetime
    max_redeemable: Decimal | None = None
    level: str | None = None
    pending: Decimal | None = None  # accrued but not yet active
    expiring: tuple[tuple[Decimal, date], ...] = ()  # (amount, date it burns)


@dataclass(frozen=True)
class LedgerOperation:
    """The master's answer to a reserve, commit, release, accrue or reverse."""

    operation_id: str
    kind: str  # reserve | commit | release | accrue | reverse
    status: str  # reserved | committed | released | accrued | reversed
    amount: Decimal
    balance: Decimal | None  # None when the master did not say (a read after a write failed)
    available: Decimal | None
    reservation_id: str | None = None
    # Set when the master sends the customer its own confirmation code (RetailCRM's
    # confirmSmsCharge): the hold waits for confirm_code(verification_id, code).
    verification_id: str | None = None


@runtime_checkable
class MasterVerification(Protocol):
    """A master that confirms write-offs by an SMS code it sends itself."""

    async def confirm_code(self, verification_id: str, code: str) -> None:
        """Pass the customer's code on; LedgerRefused(invalid_code) when it is wrong."""
        ...


@runtime_checkable
class DeclaresCapabilities(Protocol):
    """A master that can do only some of the Ledger's calls (a 1C service as declared)."""

    def missing(self, capability: str) -> str | None:
        """None when ``capability`` (reserve, commit, release, ...) can be done; else why not."""
        ...


def not_supported(ledger: object, capability: str) -> LedgerRefused | None:
    """The refusal for a call ``ledger`` cannot make at all, or None when it can."""
    if isinstance(ledger, DeclaresCapabilities):
        why = ledger.missing(capability)
        if why is not None:
            return LedgerRefused(LedgerErrorCode.NOT_SUPPORTED, why)
    return None


@runtime_checkable
class ReturnsAtMaster(Protocol):
    """A master that gives spent points back itself when an order it charged is cancelled
    or returned (PRODUCT 3.4: the bridge reverses only where the master does not)."""

    reverses_returns: bool


@runtime_checkable
class Ledger(Protocol):
    """Balance look-ups and write-offs at the bonus master."""

    async def find_customer(
        self, *, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> LedgerCustomer:
        """The customer with this phone, card or id; LedgerRefused(unknown_customer) if none."""
        ...

    async def balance(self, customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        """Current points; ``max_redeemable`` for ``cart_total`` when given."""
        ...

    async def reserve(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Hold ``amount`` for ``order_id``; the reservation's id is ``operation_id``."""
        ...

    def reservation_ref(self, operation_id: str, order_id: str) -> str:
        """The ``reservation_id`` a ``reserve(operation_id, …, order_id)`` answers, known
        without asking the master (to release a hold whose answer was lost in a crash)."""
        ...

    async def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | None = None
    ) -> LedgerOperation:
        """Write off a reservation (all of it, or ``amount`` and release the rest)."""
        ...

    async def release(self, operation_id: str, reservation_id: str) -> LedgerOperation:
        """Release a reservation without writing anything off."""
        ...

    async def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Add points for ``order_id``."""
        ...

    async def reverse(
        self, operation_id: str, original_operation_id: str, amount: Decimal
    ) -> LedgerOperation:
        """Take back (part of) an accrual or give back (part of) a write-off."""
        ...


class CardStatus(StrEnum):
    """A loyalty card's state at the master."""

    ACTIVE = "active"  # accrues and spends
    BLOCKED = "blocked"  # neither: merged into another card, lost, closed
    ACCUMULATE_ONLY = "accumulate_only"  # accrues; a write-off is refused


@dataclass(frozen=True)
class LedgerCard:
    """One loyalty card as the master keeps it. ``customer_id`` and ``phone`` are its
    owner's (None for a card no one owns yet); ``main`` marks the card a customer's points
    are looked up, accrued and spent on."""

    number: str
    status: CardStatus
    balance: Decimal
    main: bool = False
    customer_id: str | None = None
    phone: str | None = None
    reserved: Decimal = Decimal("0.00")  # held for write-offs: not free to move


@runtime_checkable
class CardsAtMaster(Protocol):
    """A master that keeps several cards per customer, moves points between them and keeps
    the customer's questionnaire (issue 17). Every call that changes the master carries an
    ``operation_id`` it is idempotent on (a retried call does nothing twice); a call the
    master cannot make as configured is ``LedgerRefused(not_supported)``."""

    async def cards(self, phone: str) -> list[LedgerCard]:
        """Every card whose owner has this phone (E.164), main card first; [] if none."""
        ...

    async def card(self, number: str) -> LedgerCard:
        """One card, owned or not; ``LedgerRefused(unknown_card)`` if there is none."""
        ...

    async def attach_card(self, operation_id: str, number: str, phone: str) -> LedgerCard:
        """Give an ownerless card to the customer with ``phone`` (registered first if the
        master has none); ``card_taken`` if another phone owns it (its own: as it is)."""
        ...

    async def set_card_status(
        self, operation_id: str, number: str, status: CardStatus
    ) -> LedgerCard:
        """Block a card (or make it active again)."""
        ...

    async def set_main_card(self, operation_id: str, number: str) -> LedgerCard:
        """Make ``number`` its owner's main card (the others stay as they are)."""
        ...

    async def move_points(
        self, operation_id: str, from_card: str, to_card: str, amount: Decimal
    ) -> LedgerOperation:
        """Move exactly ``amount`` points from one card to another (``kind`` ``move``);
        ``insufficient_balance`` if the source has less free (unreserved) points."""
        ...

    async def profile(self, customer_id: str) -> dict[str, str | None]:
        """The customer's questionnaire by the bridge's field names (``customers.profile``)."""
        ...

    async def save_profile(
        self, operation_id: str, customer_id: str, profile: dict[str, str | None]
    ) -> dict[str, str | None]:
        """Save the questionnaire's given fields; the whole questionnaire as saved."""
        ...

    async def register_customer(
        self, operation_id: str, phone: str, name: str | None = None
    ) -> LedgerCustomer:
        """The customer with this phone, created (with a new card) if the master has none;
        the same customer however often it is called for one phone."""
        ...
