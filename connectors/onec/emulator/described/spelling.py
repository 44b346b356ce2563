"""How a described 1C service writes and reads values: the closed set of spellings an
answer leaf may name (``"balance:ru"``), and the lenient readers of its arguments.

1C's own functions print values in the Russian locale (onec.md §5.3, values.py in the
connector says the same from the reading side): ``Формат(1234.5, "ЧДЦ=2")`` is
``"1 234,50"`` with a no-break space (U+00A0) between groups, a Булево a developer writes
himself is ``"Истина"``/``"Ложь"``, the empty date is ``0001-01-01T00:00:00``, and a Дата
is local time with no offset. XDTO writes ``xs:decimal`` canonically (``1234.50``) and
``xs:boolean`` as ``true``/``false``: that is the default spelling of those values.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from connectors.onec.emulator.faults import Spelled
from connectors.onec.emulator.soap import iso_local

EMPTY_DATE = "0001-01-01T00:00:00"  # XMLСтрока('00010101'): 1C's empty date
CENT = Decimal("0.01")
_NBSP = "\u00a0"
_GROUPING = str.maketrans("", "", " \u00a0\u202f\t")


def _ru(value: Any, space: str) -> Any:
    if not isinstance(value, Decimal | int):
        return value
    whole, _, cents = format(Decimal(value).quantize(CENT), "f").partition(".")
    sign, digits = ("-", whole[1:]) if whole.startswith("-") else ("", whole)
    groups: list[str] = []
    while digits:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    return f"{sign}{space.join(groups) or '0'},{cents}"


def _phone(value: Any, form: str) -> Any:
    """``+79001234567`` (what the infobase keeps) in one of a service's phone forms."""
    if not (isinstance(value, str) and value.startswith("+7") and len(value) == 12):
        return value
    national = value[2:]
    if form == "digits7":
        return "7" + national
    if form == "digits8":
        return "8" + national
    a, b, c, d = national[:3], national[3:6], national[6:8], national[8:]
    return f"+7 ({a}) {b}-{c}-{d}"  # pretty


def _number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _ru_bool(value: Any) -> Any:
    return ("Истина" if value else "Ложь") if isinstance(value, bool) else value


def _date(value: Any, zone: tzinfo) -> Any:
    return EMPTY_DATE if value is None else iso_local(value, zone)


def spell(value: Any, spelling: str | None, zone: tzinfo) -> Any:
    """``value`` in ``spelling`` (one of SPELLINGS; None: the default for its type), as a
    JSON value: a text, a number, a boolean or None. A Spelled value stays as it is."""
    if isinstance(value, Spelled):
        return value
    if spelling is None:
        return _default(value, zone)
    if spelling == "ru":
        return _ru(value, _NBSP)
    if spelling == "ru_plain":
        return _ru(value, " ")
    if spelling == "number":
        return _number(value)
    if spelling == "ru_bool":
        return _ru_bool(value)
    if spelling == "date":
        return _date(value, zone)
    if spelling == "text":
        return None if value is None else str(_default(value, zone))
    return _phone(value, spelling)  # digits7, digits8, e164, pretty


def _default(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, Decimal):
        return format(value.quantize(CENT), "f")  # xs:decimal's canonical form, 2 places
    if isinstance(value, datetime):
        return iso_local(value, zone)
    return value


SPELLINGS = frozenset(
    {"ru", "ru_plain", "number", "ru_bool", "date", "text", "digits7", "digits8", "e164", "pretty"}
)


def xml_text(value: Any) -> str | None:
    """A spelled JSON value as element text (None: xsi:nil)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"  # xs:boolean as XDTO writes it
    return str(value)


def read_decimal(value: Any) -> Any:
    """An amount from a number or a text in either spelling (``1234.50``, ``1 234,50``), as
    a Decimal; anything else is handed on unchanged for the ledger to refuse."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        return value
    text = value.strip().translate(_GROUPING)
    if "," in text and "." not in text:
        text = text.replace(",", ".")
    try:
        return Decimal(text)
    except InvalidOperation:
        return value


def read_text(value: Any) -> Any:
    """A key (a card, an order number, a hold id) as text; numbers from JSON as digits."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    return value
