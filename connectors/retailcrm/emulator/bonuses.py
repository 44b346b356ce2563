"""The emulator's bonus ledger: levels, accounts, bonus lots, operations and SMS checks.

retailcrm-api.md §4.1: every credit is a lot with an `activationDate` (before it the bonuses
are "waiting activation" and cannot be spent) and an optional `expireDate` (then what is
left burns, a `burn` operation). Operations have the §4.1 types and no id (§4.4); the feed
orders them by an internal sequence that only the cursor exposes.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.retailcrm.emulator.wire import DATETIME, INPUT_PARAMS, ApiError, Json, invalid

ZERO = Decimal(0)
PROGRAMME_ID = 1
CURRENCY = "RUB"


@dataclass(frozen=True)
class Level:
    """A tier of the programme (§4.1): `bonus_percent` earns `size` % of a purchase."""

    id: int
    name: str
    sum: int
    size: int
    promo: int

    def render(self) -> Json:
        """As in `loyalty.levels[]` and `loyaltyAccount.level`."""
        return {
            "type": "bonus_percent",
            "id": self.id,
            "name": self.name,
            "sum": self.sum,
            "privilegeSize": self.size,
            "privilegeSizePromo": self.promo,
        }


# The §4.1 example ladder [fixture: GO testutils.go getLoyaltyResponse].
LEVELS = (
    Level(1, "Новичок", 0, 5, 3),
    Level(2, "Любитель", 10000, 10, 5),
    Level(3, "Продвинутый покупатель", 25000, 15, 7),
    Level(4, "Мастер шоппинга", 50000, 20, 10),
)


@dataclass(eq=False)
class Lot:
    """One credit of bonuses and what is left of it."""

    amount: Decimal
    remaining: Decimal
    activation: date
    expire: date | None = None

    def active(self, today: date) -> bool:
        """Spendable today. Decision: bonuses burn at the start of their expireDate."""
        return self.activation <= today and (self.expire is None or today < self.expire)


@dataclass
class LoyaltyAccount:
    """A customer's participation in the programme (§4.1 loyalty account)."""

    id: int
    customer_id: int
    site: str
    phone: str | None
    card: str | None
    created_at: str
    status: str = "not_confirmed"
    activated_at: str | None = None
    level_id: int | None = None  # set by hand through edit (§4.3 "Tiers"); else by ordersSum
    orders_sum: Decimal = ZERO
    custom_fields: Json = dataclasses.field(default_factory=dict)
    lots: list[Lot] = dataclasses.field(default_factory=list)
    last_check_id: str | None = None

    def level(self) -> Level:
        """The manual level if set, else the highest one `ordersSum` reaches."""
        if self.level_id is not None:
            return next(level for level in LEVELS if level.id == self.level_id)
        return [level for level in LEVELS if level.sum <= self.orders_sum][-1]

    def next_level(self) -> Level | None:
        """The level after the current one, if any."""
        higher = [level for level in LEVELS if level.sum > self.level().sum]
        return higher[0] if higher else None

    def balance(self, today: date) -> Decimal:
        """Spendable bonuses (`amount`)."""
        return sum((lot.remaining for lot in self.lots if lot.active(today)), ZERO)

    def draw(self, amount: Decimal, today: date) -> list[tuple[Lot, Decimal]]:
        """Take `amount` from the lots that burn first; the caller checked the balance."""
        taken: list[tuple[Lot, Decimal]] = []
        usable = [lot for lot in self.lots if lot.active(today) and lot.remaining > 0]
        for lot in sorted(usable, key=lambda x: (x.expire or date.max, x.activation)):
            part = min(lot.remaining, amount - sum((t for _, t in taken), ZERO))
            if part <= 0:
                break
            lot.remaining -= part
            taken.append((lot, part))
        return taken


@dataclass
class BonusOperation:
    """A bonus operation (§4.1): amount negative for charges and burns."""

    seq: int
    type: str
    created_at: str
    amount: Decimal
    account_id: int
    order: Json | None = None
    activation: date | None = None
    comment: str | None = None

    def render(self, *, feed: bool) -> Json:
        """As `bonusOperations[]`; the global feed adds the account and programme ids."""
        out: Json = {"type": self.type, "createdAt": self.created_at, "amount": self.amount}
        if self.order is not None:
            out["order"] = self.order
        if self.activation is not None:
            out["bonus"] = {"activationDate": self.activation.isoformat()}
        if feed:
            out |= {"loyaltyAccount": {"id": self.account_id}, "loyalty": {"id": PROGRAMME_ID}}
        return out


@dataclass
class Held:
    """Bonuses charged on an order, or waiting for the SMS code (`check_id`)."""

    order_id: int
    account_id: int
    amount: Decimal
    check_id: str | None = None
    charged: bool = False
    taken: list[tuple[Lot, Decimal]] = dataclasses.field(default_factory=list)


@dataclass
class Check:
    """An SMS verification (§4.3 step 4)."""

    check_id: str
    code: str
    phone: str | None
    created_at: datetime
    expired_at: datetime
    action_type: str
    order_id: int | None = None
    verified_at: datetime | None = None
    account_id: int | None = None  # whose code it is (a registration's account)

    def render(self) -> Json:
        """The `verification` block."""
        verified = None if self.verified_at is None else self.verified_at.strftime(DATETIME)
        return {
            "checkId": self.check_id,
            "actionType": self.action_type,
            "createdAt": self.created_at.strftime(DATETIME),
            "expiredAt": self.expired_at.strftime(DATETIME),
            "verifiedAt": verified,
        }


def render_account(account: LoyaltyAccount, customer: Json, today: date) -> Json:
    """A loyalty account as `/loyalty/account/{id}` shows it (§4.1, PHP LoyaltyTest)."""
    level = account.level()
    out: Json = {
        "active": account.status == "activated",
        "id": account.id,
        "loyalty": {"id": PROGRAMME_ID, "currency": CURRENCY},
        "customer": {
            k: customer.get(k)
            for k in ("id", "externalId", "site", "firstName", "lastName")
            if customer.get(k) is not None
        },
        "phoneNumber": account.phone,
        "cardNumber": account.card,
        "amount": account.balance(today),
        "ordersSum": account.orders_sum,
        "level": level.render(),
        "loyaltyLevelId": account.level_id,
        "createdAt": account.created_at,
        "activatedAt": account.activated_at,
        "status": account.status,
        "lastCheckId": account.last_check_id,
        "customFields": account.custom_fields or [],  # §1.4: `[]` when empty
    }
    following = account.next_level()
    if following is not None:
        out["nextLevelSum"] = following.sum - account.orders_sum
    return {k: v for k, v in out.items() if v is not None}


def parse_day(value: Any, name: str) -> date | None:
    """A `Y-m-d` parameter (§1.3), or None when absent."""
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        raise invalid({name: "This value is not a valid date."}) from None


def encode_cursor(operation: BonusOperation) -> str:
    """An opaque cursor after `operation`, shaped like the fixture's (§1.7)."""
    text = json.dumps([operation.seq, operation.created_at])
    return base64.b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> int:
    """The sequence a cursor points after; 400 when it is not one of ours."""
    try:
        seq = json.loads(base64.b64decode(cursor.encode(), validate=True))[0]
    except (ValueError, binascii.Error, IndexError, TypeError, KeyError):
        raise ApiError(400, INPUT_PARAMS, {"cursor": "This value is not valid."}) from None
    if not isinstance(seq, int):
        raise ApiError(400, INPUT_PARAMS, {"cursor": "This value is not valid."})
    return seq
