"""Transforms that read several source paths (``from: [a, b]``, or one ``[*]`` path):
``join`` (texts), ``first`` (the first with a value), ``sum`` (amounts, exact)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import Field

from bridge.mapping.errors import ValueProblem
from bridge.mapping.paths import MISSING
from bridge.mapping.transforms import BuildContext, Converter, NoParams, Parts, Sources, transform
from bridge.mapping.values import json_copy, to_decimal, to_text
from bridge.settings_base import Strict


class JoinParams(Strict):
    """``separator``: put between the parts."""

    separator: str = " "


@transform("join", JoinParams, Sources.MANY)
def _join(params: JoinParams, _: BuildContext) -> Converter:
    def convert(value: Any) -> Any:
        # Several paths give Parts; one path may name a list whose items are joined.
        items = value if isinstance(value, Parts | list) else (value,)
        parts = [to_text(v).strip() for v in items if v is not MISSING and v is not None]
        text = params.separator.join(p for p in parts if p)
        return text or MISSING

    return convert


@transform("first", NoParams, Sources.MANY)
def _first(_: NoParams, __: BuildContext) -> Converter:
    def convert(value: Any) -> Any:
        # The first path with a value: RetailCRM names a line by productName, else by its
        # offer's name (retailcrm-api.md §10.5); blank texts count as no value.
        items = value if isinstance(value, Parts) else (value,)
        for item in items:
            if item is not MISSING and item is not None and not _blank(item):
                return json_copy(item)
        return MISSING

    return convert


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


class SumParams(Strict):
    """``places``: digits after the point; ``number``: write a JSON number, not text."""

    places: int = Field(default=2, ge=0, le=6)
    number: bool = False


@transform("sum", SumParams, Sources.MANY)
def _sum(params: SumParams, _: BuildContext) -> Converter:
    step = Decimal(1).scaleb(-params.places)

    def convert(value: Any) -> Any:
        # Exact (Decimal): the parts are amounts such as an order's discount and the points
        # charged on it. Absent parts count as nothing; none at all is no value.
        items = value if isinstance(value, Parts | list) else (value,)
        present = [v for v in items if v is not MISSING and v is not None and not _blank(v)]
        if not present:
            return MISSING
        total = sum((to_decimal(v, "an amount") for v in present), Decimal(0))
        try:
            total = total.quantize(step, rounding=ROUND_HALF_UP)
        except InvalidOperation:
            raise ValueProblem("too large an amount") from None
        if not params.number:
            return str(total)
        return int(total) if total == total.to_integral_value() else float(total)

    return convert
