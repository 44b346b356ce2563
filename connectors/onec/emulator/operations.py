"""The records of the emulated infobase's bonus ledger: a balance, an operation's result,
an open hold, and the customers the sandbox starts with (CONTRACT.md "Ledger rules")."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

MAX_LIMIT = 1000
# (phone, card, name, points, level); the first is the product requirement for every master.
SANDBOX_CUSTOMERS = (
    ("+79000000001", "2000000000015", "Иван Петров", "1000.00", "Базовый"),
    ("+79000000002", "2000000000022", "Мария Смирнова", "250.00", "Серебряный"),
    ("+79000000003", None, "Ольга Иванова", "0.00", None),
)

Kind = Literal["reserve", "commit", "release", "accrue", "reverse"]
Status = Literal["reserved", "committed", "released", "accrued", "reversed"]
STATUS_OF: dict[Kind, Status] = {
    "reserve": "reserved",
    "commit": "committed",
    "release": "released",
    "accrue": "accrued",
    "reverse": "reversed",
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
    """A hold: its customer, its points, and how it was closed."""

    customer_id: str
    amount: Decimal
    closed: Status | None = None  # "committed" or "released" once closed
