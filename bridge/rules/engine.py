"""A cart priced in points by the rules: per line the cap, the spend and the accrual."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal

from bridge.rules.book import LineKeys, RuleBook
from bridge.rules.spread import CENT, cap_total, line_cap, spread_spend

ROUNDING = {"down": ROUND_DOWN, "half_up": ROUND_HALF_UP, "up": ROUND_UP}


class LineError(ValueError):
    """A line whose numbers do not make a sale (a discount above its price)."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.field = field


@dataclass(frozen=True)
class CartLine:
    """One line of a cart: ``price`` per unit, ``discount`` off the whole line."""

    sku: str
    quantity: Decimal
    price: Decimal
    discount: Decimal = Decimal(0)
    category: str | None = None
    group: str | None = None


@dataclass(frozen=True)
class PricedLine:
    """What one line may pay in points, pays, and earns."""

    sku: str
    group: str
    amount: Decimal
    max_spend: Decimal
    spend: Decimal
    accrual: Decimal


@dataclass(frozen=True)
class Priced:
    """A cart priced: its lines in cart order and their sums."""

    lines: tuple[PricedLine, ...]
    customer_group: str | None

    def total(self, what: str) -> Decimal:
        """The sum of one column (``amount``, ``max_spend``, ``spend``, ``accrual``)."""
        return sum((getattr(line, what) for line in self.lines), Decimal("0.00"))


def line_amount(index: int, line: CartLine) -> Decimal:
    """price × quantity, to kopecks half up, less the line's discount."""
    amount = (line.price * line.quantity).quantize(CENT, ROUND_HALF_UP) - line.discount
    if amount < 0:
        raise LineError(index, "discount", "must not exceed price × quantity")
    return amount


def price_cart(
    book: RuleBook,
    lines: list[CartLine],
    level: str | None,
    requested: Decimal | None,
    day: date,
) -> Priced:
    """Price ``lines`` for a customer of master ``level`` on ``day``; ``requested`` points
    spread over them (None: the largest write-off). Raises ``SpendTooLarge``, ``LineError``."""
    customer = book.customer_group(level)
    amounts = [line_amount(i, line) for i, line in enumerate(lines)]
    groups = [book.product_group(LineKeys(ln.sku, ln.category, ln.group)) for ln in lines]
    rules = [book.rule(group, day) for group in groups]
    caps = [
        line_cap(amount, line.quantity, rule.max_share, rule.min_unit_price)
        for amount, line, rule in zip(amounts, lines, rules, strict=True)
    ]
    spends = spread_spend(caps, requested)
    rounding = ROUNDING[book.file.rounding]
    earned = []
    for amount, spend, rule in zip(amounts, spends, rules, strict=True):
        rate = rule.accrual_rate * rule.multiplier
        if customer is not None:
            rate *= rule.customer_multipliers.get(customer, Decimal(1))
        earned.append(((amount - spend) * rate).quantize(CENT, rounding))
    accruals = cap_total(earned, book.file.cap_per_document)
    priced = (
        PricedLine(line.sku, group, amount, cap, spend, accrual)
        for line, group, amount, cap, spend, accrual in zip(
            lines, groups, amounts, caps, spends, accruals, strict=True
        )
    )
    return Priced(tuple(priced), customer)
