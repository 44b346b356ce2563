"""Request bodies of ``/api/v1/bonus/reservations`` (PRODUCT 4.1), checked at the boundary:
the field named in a 422 for anything the master or the store could not take."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from bridge.http.bonus import CustomerIn, money, positive_money
from bridge.http.text import plain_text


class OrderIn(BaseModel):
    """The order the points are spent on: its system, its id there, its total."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    system: str
    id: str
    total: Decimal | None = None

    @field_validator("system", "id")
    @classmethod
    def _text(cls, value: str) -> str:
        if not 1 <= len(value) <= 64:
            raise ValueError("must be 1 to 64 characters")
        return plain_text(value)

    @field_validator("total", mode="before")
    @classmethod
    def _total(cls, value: Any) -> Decimal | None:
        return None if value is None else money(value)


class ReserveIn(BaseModel):
    """``POST /api/v1/bonus/reservations``."""

    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn
    amount: Decimal
    order: OrderIn
    channel: str | None = None

    _amount = field_validator("amount", mode="before")(positive_money)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z0-9_\-]{1,32}", value):
            raise ValueError("must be 1 to 32 of a-z, 0-9, _ and -, such as 'till' or 'site'")
        return value


class ConfirmIn(BaseModel):
    """``POST …/confirm``."""

    model_config = ConfigDict(extra="forbid")

    code: str

    @field_validator("code", mode="before")
    @classmethod
    def _digits(cls, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{4,8}", value.strip()):
            raise ValueError("must be the 4 to 8 digits of the SMS, as a string")
        return value.strip()


class CommitIn(BaseModel):
    """``POST …/commit``; without ``amount`` the whole hold is written off."""

    model_config = ConfigDict(extra="forbid")

    amount: Decimal | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _amount(cls, value: Any) -> Decimal | None:
        return None if value is None else money(value)


class EmptyIn(BaseModel):
    """Bodies that carry nothing (an empty body or ``{}``)."""

    model_config = ConfigDict(extra="forbid")
