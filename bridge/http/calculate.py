"""``POST /api/v1/bonus/calculate``: a cart priced in points by the rules, line by line
(issue 18): what each line may pay in points, the write-off spread over the lines to the
kopeck, and what each line earns. The customer's group is the master's ``level``."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, field_validator

from bridge.bonus.balance import MasterUnavailable
from bridge.bonus.phones import mask
from bridge.http.bonus import REFUSAL_STATUS, CustomerIn, money, read_model, unavailable
from bridge.http.problems import Problem, json_response
from bridge.http.state import AUTH, RUNTIME
from bridge.http.text import plain_text
from bridge.ledger import LedgerRefused
from bridge.rules.engine import CartLine, LineError, Priced, line_amount, price_cart
from bridge.rules.spread import SpendTooLarge

MAX_LINES = 1000
MAX_QUANTITY = Decimal(1_000_000)


def quantity(value: Any) -> Decimal:
    """A decimal string or number above 0, at most 3 places (0.375 kg)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a decimal string such as '1' or '0.375'")  # noqa: TRY004 - pydantic reports ValueError
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("must be a decimal string such as '1' or '0.375'") from exc
    if not number.is_finite() or not 0 < number <= MAX_QUANTITY:
        raise ValueError("must be above 0 and at most 1000000")
    if number != number.quantize(Decimal("0.001")):
        raise ValueError("at most 3 decimal places")
    return number


class ItemIn(BaseModel):
    """One cart line: ``price`` per unit, ``discount`` off the whole line."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    sku: str = Field(min_length=1, max_length=64)
    quantity: Decimal
    price: Decimal
    discount: Decimal = Decimal("0.00")
    group: str | None = Field(default=None, min_length=1, max_length=64)
    category: str | None = Field(default=None, min_length=1, max_length=64)

    @field_validator("quantity", mode="before")
    @classmethod
    def _quantity(cls, value: Any) -> Decimal:
        return quantity(value)

    @field_validator("price", "discount", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Decimal:
        return money(value)

    @field_validator("sku", "group", "category")
    @classmethod
    def _text(cls, value: str | None) -> str | None:
        return None if value is None else plain_text(value)

    def line(self) -> CartLine:
        """The engine's view of the line."""
        return CartLine(
            self.sku, self.quantity, self.price, self.discount, self.category, self.group
        )


class CartIn(BaseModel):
    """The cart to price (``total``, as the balance look-up takes it, is not used)."""

    model_config = ConfigDict(extra="forbid")

    items: list[ItemIn] = Field(min_length=1, max_length=MAX_LINES)
    total: Decimal | None = None

    @field_validator("total", mode="before")
    @classmethod
    def _total(cls, value: Any) -> Decimal | None:
        return None if value is None else money(value)


class CalculateIn(BaseModel):
    """``POST /api/v1/bonus/calculate``."""

    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn
    cart: CartIn
    spend: Decimal | None = None  # None: the largest write-off

    @field_validator("spend", mode="before")
    @classmethod
    def _spend(cls, value: Any) -> Decimal | None:
        return None if value is None else money(value)


def priced_view(priced: Priced) -> dict[str, Any]:
    """Lines in cart order and totals, every amount a decimal string with 2 places."""
    lines = [
        {
            "sku": line.sku,
            "group": line.group,
            "amount": str(line.amount),
            "max_spend": str(line.max_spend),
            "spend": str(line.spend),
            "accrual": str(line.accrual),
        }
        for line in priced.lines
    ]
    totals = {key: str(priced.total(key)) for key in ("amount", "max_spend", "spend", "accrual")}
    return {"lines": lines, "totals": totals, "customer_group": priced.customer_group}


def line_problem(exc: LineError) -> Problem:
    """422 naming the line's field, e.g. ``cart.items.3.discount``."""
    field = f"cart.items.{exc.index}.{exc.field}"
    return Problem(422, "invalid_request", f"{field}: {exc}", field=field)


async def calculate(request: web.Request) -> web.Response:
    """``POST /api/v1/bonus/calculate``."""
    request.app[AUTH].require(request, "bonus:read")
    body = await read_model(request, CalculateIn)
    runtime = request.app[RUNTIME]
    service = runtime.bonus
    if service is None:
        raise Problem(404, "no_bonus_master", "bonus.master is not configured")
    if runtime.rules is None:
        raise Problem(404, "no_rules", "bonus.rules.file is not configured")
    if runtime.settings.bonus.rules.source == "master":
        detail = "bonus.rules.source: master — no master calculates carts yet; use bridge"
        raise Problem(501, "not_supported", detail)
    lines = [item.line() for item in body.cart.items]
    try:
        for index, line in enumerate(lines):
            line_amount(index, line)  # a bad line costs no master call
        answer = await service.balance(body.customer.ref(), None)
    except MasterUnavailable as exc:
        raise unavailable(exc) from exc
    except LedgerRefused as exc:
        raise Problem(REFUSAL_STATUS.get(exc.code, 422), str(exc.code), exc.detail) from exc
    except LineError as exc:
        raise line_problem(exc) from exc
    # Rules are in force by date; the bridge's day is UTC's (rules files say dates only).
    today = datetime.now(UTC).date()
    try:
        priced = price_cart(runtime.rules, lines, answer.balance.level, body.spend, today)
    except SpendTooLarge as exc:
        detail = f"spend: {exc}"
        raise Problem(
            422, "invalid_request", detail, field="spend", max_spend=str(exc.largest)
        ) from exc
    except LineError as exc:
        raise line_problem(exc) from exc
    c = answer.customer
    customer = {
        "id": c.customer_id,
        "phone": mask(c.phone) if c.phone else None,
        "card": c.card,
        "level": answer.balance.level,
        "available": str(answer.balance.available),  # the till caps its ask by it
    }
    view = priced_view(priced) | {"customer": customer, "rules": runtime.rules.version}
    return json_response(view)
