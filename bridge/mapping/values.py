"""Conversions of single values shared by transforms, tables and filters.

Each raises :class:`ValueProblem` with a message that reads after the source path:
``totalSumm: 'abc' is not an amount``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from bridge.mapping.errors import ValueProblem
from bridge.mapping.paths import MISSING

_SPACES = str.maketrans("", "", " \u00a0\u202f\u2009_")  # thousands separators, 1 234,50
_TRUE = frozenset({"true", "yes", "y", "on", "1", "да"})
_FALSE = frozenset({"false", "no", "n", "off", "0", "нет"})


def describe(value: Any) -> str:
    """A short, quoted form of a value for messages (long texts are cut)."""
    if value is MISSING:
        return "absent"
    if isinstance(value, bool):  # as JSON writes them: the source is JSON
        return "true" if value else "false"
    if isinstance(value, dict | Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def key_text(value: Any) -> str:
    """The text a value is compared by in tables and filters: ``1`` and ``"1"`` match."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # 1.0 from a JSON number matches the table key "1".
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else str(value)
    if isinstance(value, Decimal):
        whole = value.is_finite() and value == value.to_integral_value()
        return str(int(value)) if whole else str(value)
    raise ValueProblem(f"{describe(value)} is not a plain value (text or number)")


def to_text(value: Any) -> str:
    """Text from text, numbers and booleans; objects and lists are refused."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return str(value)
    raise ValueProblem(f"{describe(value)} is not text")


def to_decimal(value: Any, what: str = "a number") -> Decimal:
    """A finite Decimal from a number or a text such as ``"1 234,50"``; floats via repr."""
    if isinstance(value, bool):
        raise ValueProblem(f"{describe(value)} is not {what}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueProblem(f"{describe(value)} is not {what}")
        # repr gives the shortest text that reads back as the same float: 0.1, not 0.1000…55
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip().translate(_SPACES)
        if "," in text:
            if "." in text:
                raise ValueProblem(f"{describe(value)} is not {what} (both ',' and '.')")
            text = text.replace(",", ".")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise ValueProblem(f"{describe(value)} is not {what}") from None
    else:
        raise ValueProblem(f"{describe(value)} is not {what}")
    if not number.is_finite():
        raise ValueProblem(f"{describe(value)} is not {what}")
    return number


def to_bool(value: Any) -> bool:
    """``true``/``false`` from booleans, 0/1 and yes/no/да/нет texts."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueProblem(f"{describe(value)} is not a yes/no value")


def json_copy(value: Any) -> Any:
    """A fresh copy of JSON-like data, so the output never shares objects with the input."""
    if isinstance(value, dict | Mapping):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_copy(v) for v in value]
    return value


def yaml_value(value: Any) -> Any:
    """A value written in the mapping file, as JSON can carry it.

    YAML reads an unquoted ``2024-01-31`` as a date; the mapped document is JSON, so dates
    become ISO 8601 text. Binary and set values have no JSON form and are refused.
    """
    if isinstance(value, dt.date):  # datetime is a date too
        return value.isoformat()
    if isinstance(value, dict):
        return {k: yaml_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [yaml_value(v) for v in value]
    if value is None or isinstance(value, str | int | float):
        return value
    raise ValueError(f"a {type(value).__name__} value has no JSON form")
