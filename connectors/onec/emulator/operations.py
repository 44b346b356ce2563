"""The records of the emulated infobase's bonus ledger: a balance, an operation's result,
an open hold, and the customers the sandbox starts with (CONTRACT.md "Ledger rules")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from connectors.onec.emulator.customers import Card

MAX_LIMIT = 1000
# (phone, card, name, points, level); the first is the product requirement for every master.
SANDBOX_CUSTOMERS = (
    ("+79000000001", "2000000000015", "Иван Петров", "1000.00", "Базовый"),
    ("+79000000002", "2000000000022", "Мария Смирнова", "250.00", "Серебряный"),
    ("+79000000003", None, "Ольга Иванова", "0.00", None),
    # The seed journey of issue 17: three cards, merged into the second (200.50 exactly).
    ("+79000000005", "2000000000053", "Мария Соколова", "120.50", None),
)
# (number, points, owner's phone or None): cards beyond a customer's first (main) one.
SANDBOX_CARDS = (
    ("2000000000060", "80.00", "+79000000005"),
    ("2000000000077", "0.00", None),  # issued, never registered: AttachCard gives it a phone
)

Kind = Literal["reserve", "commit", "release", "accrue", "reverse", "move"]
Status = Literal["reserved", "committed", "released", "accrued", "reversed", "moved"]
STATUS_OF: dict[Kind, Status] = {
    "reserve": "reserved",
    "commit": "committed",
    "release": "released",
    "accrue": "accrued",
    "reverse": "reversed",
    "move": "moved",
}
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Balance:
    """Points of one customer at `as_of`; available = balance - reserved."""

    customer_id: str
    balance: Decimal
    reserved: Decimal
    available: Decimal
    max_redeemable: Decimal | None
    level: str | None
    as_of: datetime


@dataclass(frozen=True, slots=True)
class InfobaseOperation:
    """The result of reserve/commit/release/accrue/reverse, with balances after it."""

    operation_id: str
    kind: Kind
    status: Status
    reservation_id: str | None
    amount: Decimal
    balance: Decimal
    available: Decimal


@dataclass(slots=True)
class PointsHold:
    """A hold: its customer, its points, the card they are held on, and how it was closed."""

    customer_id: str
    amount: Decimal
    card: Card  # the customer's main card when it was made: settled there
    closed: Status | None = None  # "committed" or "released" once closed


@dataclass(frozen=True, slots=True)
class CardRecord:
    """A card as GetCard answers it (CONTRACT.md ``Card``)."""

    number: str
    status: str
    balance: Decimal
    reserved: Decimal
    main: bool
    customer_id: str | None
    phone: str | None


@dataclass(frozen=True, slots=True)
class CardList:
    """FindCards' answer: the main card first."""

    items: tuple[CardRecord, ...]

    @property
    def total(self) -> int:
        """How many cards."""
        return len(self.items)


@dataclass(frozen=True, slots=True)
class ProfileRecord:
    """The questionnaire as GetProfile and SaveProfile answer it."""

    customer_id: str
    last_name: str | None
    first_name: str | None
    middle_name: str | None
    birth_date: str | None
    gender: str | None
    email: str | None
