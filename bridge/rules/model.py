"""The shape of a bonus rules file (``bonus.rules.file``): pydantic models, ``extra="forbid"``.

A rules file names product groups (how a cart line is recognised), customer groups (by the
master's ``level``) and rules: per product group, what share of a line may be paid in
points, the least price a unit keeps, and what a line earns. Reading the file with lines
for errors is ``loader.py``; using the rules on a cart is ``engine.py``.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from bridge.settings_base import Strict

DEFAULT_GROUP = "default"
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_RATE = Decimal(100)


def _decimal(value: Any, what: str) -> Decimal:
    """A YAML number or decimal string as Decimal (a float goes through its text, so 0.05
    stays 0.05 and never becomes 0.05000000000000000277)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be {what}")  # noqa: TRY004 - pydantic reports ValueError
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"must be {what}") from exc
    if not number.is_finite():
        raise ValueError(f"must be {what}")
    return number


def share(value: Any) -> Decimal:
    """0..1, e.g. 0.2 for 20 %."""
    number = _decimal(value, "a share from 0 to 1, e.g. 0.2")
    if not 0 <= number <= 1:
        raise ValueError("must be a share from 0 to 1, e.g. 0.2")
    return number


def money(value: Any) -> Decimal:
    """Roubles, 0 or more, at most 2 decimal places."""
    number = _decimal(value, "an amount such as 1.00")
    if number < 0 or number != number.quantize(Decimal("0.01")):
        raise ValueError("must be an amount of 0 or more with at most 2 decimal places")
    return number.quantize(Decimal("0.01"))


def factor(value: Any) -> Decimal:
    """A rate or multiplier: 0 or more, at most 100."""
    number = _decimal(value, "a number such as 0.05 or 1.5")
    if not 0 <= number <= MAX_RATE:
        raise ValueError("must be from 0 to 100")
    return number


class ProductGroup(Strict):
    """How a cart line is recognised as this group; any one match is enough."""

    skus: list[str] = Field(default_factory=list)
    sku_prefixes: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)
    # Values of the line's own "group" field (a line whose group is this group's name
    # matches too).
    line_groups: list[str] = Field(default_factory=list)

    @field_validator("skus", "sku_prefixes", "categories", "line_groups")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if any(not str(item).strip() for item in value):
            raise ValueError("must not hold an empty value")
        return [str(item) for item in value]


class CustomerGroup(Strict):
    """Customers whose master ``level`` is one of ``levels`` (tags come later)."""

    levels: list[str] = Field(min_length=1)


class Rule(Strict):
    """What a line of ``group`` may pay in points and what it earns, while in force."""

    group: str
    max_share: Decimal = Decimal(1)  # of the line's amount payable in points; 0: excluded
    min_unit_price: Decimal = Decimal(0)  # what a unit must still cost after points
    accrual_rate: Decimal = Decimal(0)  # points per rouble paid in money
    multiplier: Decimal = Decimal(1)
    customer_multipliers: dict[str, Decimal] = Field(default_factory=dict)  # by customer group
    valid_from: date | None = None  # in force from this day (inclusive)
    valid_until: date | None = None  # ...to this day (inclusive)

    @field_validator("max_share", mode="before")
    @classmethod
    def _share(cls, value: Any) -> Decimal:
        return share(value)

    @field_validator("min_unit_price", mode="before")
    @classmethod
    def _money(cls, value: Any) -> Decimal:
        return money(value)

    @field_validator("accrual_rate", "multiplier", mode="before")
    @classmethod
    def _factor(cls, value: Any) -> Decimal:
        return factor(value)

    @field_validator("customer_multipliers", mode="before")
    @classmethod
    def _factors(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        return {name: factor(number) for name, number in value.items()}

    @model_validator(mode="after")
    def _dates_in_order(self) -> Rule:
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        return self

    def in_force(self, day: date) -> bool:
        """Whether the rule applies on ``day``."""
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


class RulesFile(Strict):
    """The whole rules file."""

    version: str | None = None  # shown in every answer; the file's name when unset
    rounding: Literal["down", "half_up", "up"] = "down"  # accruals, to kopecks
    cap_per_document: Decimal | None = None  # most points one cart earns
    product_groups: dict[str, ProductGroup] = Field(default_factory=dict)
    customer_groups: dict[str, CustomerGroup] = Field(default_factory=dict)
    rules: list[Rule] = Field(min_length=1)

    @field_validator("cap_per_document", mode="before")
    @classmethod
    def _cap(cls, value: Any) -> Decimal | None:
        return None if value is None else money(value)

    @field_validator("product_groups", "customer_groups")
    @classmethod
    def _names(cls, value: dict[str, Any]) -> dict[str, Any]:
        for name in value:
            if not GROUP_NAME.match(name):
                raise ValueError(f"group name {name!r} must match {GROUP_NAME.pattern}")
        if DEFAULT_GROUP in value:
            raise ValueError(f"{DEFAULT_GROUP!r} is the group of lines that match none")
        return value
