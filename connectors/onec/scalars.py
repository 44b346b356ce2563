"""Quick readers of the commonest XML Schema values in 1C's answers, each equal to what
zeep's own type gives (``AnySimpleType.parse_xmlelement``) for the spellings it takes on,
and handing every other spelling to that type.

zeep reads a value through its type's ``pythonvalue`` behind two decorators and a regular
expression of whitespace (``treat_whitespace``), and a date and time through ``isodate``:
about half the reading of a balance answer. 1C writes these values the plain way
(``150.00``, ``true``, ``2026-12-06T15:55:19``, ``onec.md`` §5.3: local time without an
offset), so a quick path for exactly those spellings, and zeep for anything else (spaces,
an offset, a fraction of a second, a sign, a month 13), changes nothing but the cost.
``tests/unit/test_onec_scalars.py`` checks each against zeep on generated texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from zeep.xsd.types import builtins as xsd

Reader = Callable[[Any], Any]  # an lxml element → its value

_DECIMAL = re.compile(r"-?[0-9]{1,28}(?:\.[0-9]{1,28})?")
_INTEGER = re.compile(r"-?[0-9]{1,18}")
_MOMENT = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})")
_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def reader(simple: Any) -> Reader:
    """How to read an element of zeep's simple type ``simple``: a quick path where its type
    is one of the plain kinds, else the type's own ``parse_xmlelement``."""
    slow: Reader = simple.parse_xmlelement
    quick = _QUICK.get(type(simple).pythonvalue)
    if quick is None:
        return slow

    def read(element: Any) -> Any:
        text = element.text
        if text is None:
            return None  # zeep: no text, no value (an empty element, a nil)
        value = quick(text)
        return slow(element) if value is _ZEEPS else value

    return read


class _Zeeps:
    """The quick path does not take this spelling on: zeep's type reads it."""


_ZEEPS = _Zeeps()


def _string(text: str) -> Any:
    return text


def _decimal(text: str) -> Any:
    return Decimal(text) if _DECIMAL.fullmatch(text) else _ZEEPS


def _integer(text: str) -> Any:
    return int(text) if _INTEGER.fullmatch(text) else _ZEEPS


def _flag(text: str) -> Any:
    return _FLAGS.get(text, _ZEEPS)


def _moment(text: str) -> Any:
    match = _MOMENT.fullmatch(text)
    if match is None:
        return _ZEEPS
    try:  # isodate's naive datetime for a time without an offset
        year, month, day, hour, minute, second = map(int, match.groups())
        return datetime(year, month, day, hour, minute, second)  # naive, as zeep's
    except ValueError:
        return _ZEEPS  # a 13th month, a year 0: zeep says what it says of it


# Keyed by the type's ``pythonvalue``, so zeep's subclasses (restrictions of a kind, the
# integer family) share their base's quick path only where they share its reading.
_QUICK: dict[Any, Callable[[str], Any]] = {
    xsd.String.pythonvalue: _string,
    xsd.Decimal.pythonvalue: _decimal,
    xsd.Integer.pythonvalue: _integer,
    xsd.Long.pythonvalue: _integer,
    xsd.Boolean.pythonvalue: _flag,
    xsd.DateTime.pythonvalue: _moment,
}
