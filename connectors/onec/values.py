"""1C's own spellings of the values its answers carry, read wherever the connector reads one.

The contract asks for canonical values (CONTRACT.md "Conventions": amounts as ``"150.00"``,
``xs:boolean``, ``xs:dateTime`` in UTC), and 1C's XDTO serializer writes them so over SOAP.
A hand-written service (an HTTP service building its JSON, or an existing SOAP service
that types its results ``xs:string``) writes them as 1C's own functions print them:

- Булево: ``XMLСтрока`` gives ``true``/``false``; ``Строка()`` gives ``Да``/``Нет``; a
  developer's own ``"Истина"``/``"Ложь"``; ``1``/``0`` from a number.
- Число: ``Строка()`` and ``Формат()`` group thousands with a no-break space (U+00A0, a
  narrow one U+202F in some locales; a plain space when typed by hand) and write a decimal
  comma: ``"1 000,50"``.
- Дата: the empty date is ``0001-01-01T00:00:00`` (``XMLСтрока('00010101')``); ``Строка()``
  gives ``"22.11.2026 10:00:00"``; 1C keeps local time without an offset (onec.md §5.3).

A value that still cannot be read raises :class:`OnecBadValue` naming the field; errors.py
classifies it as the master's fault (never a crash of the bridge, never read as something
else). Nothing here imports the bridge's core.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from lxml import etree  # no type hints (mypy: ignore_missing_imports); zeep parses with it

from connectors.onec.wire import OnecCallError

_TRUE = frozenset({"true", "1", "истина", "да", "yes"})
_FALSE = frozenset({"false", "0", "ложь", "нет", "no"})
# Spaces 1C's Формат() and a typist put between groups of digits.
_GROUPING = str.maketrans("", "", " \u00a0\u202f\u2007\t")
_EMPTY_YEAR = 1  # 1C's empty date: 0001-01-01T00:00:00
# Where an infobase keeps its local times when nothing else is said (the seeds are Moscow).
LOCAL_ZONE = ZoneInfo("Europe/Moscow")
_SHOWN = 40  # characters of an unreadable value quoted in a message
_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
# The XML Schema lexical forms zeep reads as they are (what 1C's XDTO serializer writes).
_LEXICAL = {
    "decimal": re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)"),
    "int": re.compile(r"[+-]?\d+"),
    "boolean": re.compile(r"true|false|1|0"),
    "dateTime": re.compile(r"-?\d{4,}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"),
}
# The same forms over bytes (ASCII digits: a digit beyond ASCII is left to the parser).
_LEXICAL_BYTES = {
    "decimal": rb"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)",
    "int": rb"[+-]?[0-9]+",
    "boolean": rb"true|false|1|0",
    "dateTime": rb"-?[0-9]{4,}-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9]"
    rb"(?:\.[0-9]+)?(?:Z|[+-][0-9][0-9]:[0-9][0-9])?",
}
_SCANS: dict[frozenset[tuple[str, str]], re.Pattern[bytes] | None] = {}
_SCANS_OF: dict[int, tuple[Mapping[str, tuple[str, str]], re.Pattern[bytes] | None]] = {}
_SCANS_KEPT = 256  # views kept by identity: a service's operations, a few services
# An answer is parsed as zeep parses it: no entities resolved, nothing fetched.
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


class OnecBadValue(OnecCallError):
    """1C answered a value that cannot be read as its field's type (or left a required one
    out); ``field`` is the contract's logical name (``balance``, ``more``)."""

    def __init__(self, field: str, problem: str, operation: str | None = None) -> None:
        where = f"{operation}: {field}" if operation else field
        super().__init__(f"{where}: {problem}")
        self.field, self.problem, self.operation = field, problem, operation

    def of(self, operation: str) -> OnecBadValue:
        """The same, naming the operation whose answer held it (``GetBalance``)."""
        return OnecBadValue(self.field, self.problem, operation)


def shown(value: Any) -> str:
    """A value quoted for a message, cut short."""
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def required(record: Mapping[str, Any], field: str) -> Any:
    """``record[field]``, which the contract says is always there."""
    value = record.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise OnecBadValue(field, "missing from 1C's answer")
    return value


def read_bool(value: Any, field: str) -> bool:
    """A boolean from any of 1C's spellings; anything else is refused, never taken as false."""
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
    raise OnecBadValue(field, f"{shown(value)} is not a boolean (true/false, Истина/Ложь)")


def read_decimal(value: Any, field: str) -> Decimal:
    """An exact decimal from a number or a text such as ``"1 000,50"`` (never via float)."""
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))  # the shortest text that reads back as this float
    elif isinstance(value, str):
        text = value.strip().translate(_GROUPING)
        if "," in text and "." not in text:
            text = text.replace(",", ".")  # a decimal comma (1C's Russian locale)
        try:
            number = Decimal(text) if text else Decimal("NaN")
        except InvalidOperation:
            number = Decimal("NaN")
    else:
        number = Decimal("NaN")
    if not number.is_finite():
        raise OnecBadValue(field, f"{shown(value)} is not a decimal number")
    return number


def read_int(value: Any, field: str) -> int:
    """A whole number, from any spelling :func:`read_decimal` reads."""
    try:
        number = read_decimal(value, field)
    except OnecBadValue:
        number = Decimal("NaN")
    if not number.is_finite() or number != number.to_integral_value():
        raise OnecBadValue(field, f"{shown(value)} is not a whole number")
    return int(number)


def read_moment(value: Any, field: str, zone: tzinfo | None = None) -> datetime | None:
    """A moment in UTC, or None for 1C's empty date (and for no value at all); a local time
    without an offset is read in ``zone`` (default the infobase's usual Europe/Moscow)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    moment: datetime | None = value if isinstance(value, datetime) else None
    if isinstance(value, str):
        text = value.strip()
        for reader in (_iso, _russian):
            moment = reader(text)
            if moment is not None:
                break
    if moment is None:
        raise OnecBadValue(field, f"{shown(value)} is not a date and time")
    if moment.year == _EMPTY_YEAR:
        return None
    # 1C keeps local time without an offset (onec.md §5.3): it is the infobase's zone's.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone or LOCAL_ZONE)
    return moment.astimezone(UTC)


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _russian(text: str) -> datetime | None:
    """``Строка(Дата)``: ``22.11.2026 10:00:00`` (or the date alone)."""
    for pattern in ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y"):
        try:
            return datetime.strptime(text, pattern)
        except ValueError:
            continue
    return None


def canonical(kind: str, value: str, field: str) -> str:
    """``value`` in the XML Schema form of ``kind`` (``decimal``, ``int``, ``boolean``,
    ``dateTime``), so that a SOAP parser reads 1C's spelling; a value already in it, and
    other kinds, as they are."""
    lexical = _LEXICAL.get(kind)
    if lexical is None or lexical.fullmatch(value):
        return value
    if kind == "decimal":
        return format(read_decimal(value, field), "f")
    if kind == "int":
        return str(read_int(value, field))
    if kind == "boolean":
        return "true" if read_bool(value, field) else "false"
    if kind == "dateTime":
        # Respelt as it stands, a local time still without its offset: the reader that
        # knows the infobase's zone (read_moment with the declaration's) places it.
        text = value.strip()
        moment = _iso(text) or _russian(text)
        if moment is None:
            raise OnecBadValue(field, f"{shown(value)} is not a date and time")
        return moment.isoformat()
    return value


def canonical_xml(body: bytes, kinds: Mapping[str, tuple[str, str]], operation: str) -> bytes:
    """A SOAP answer with the text of every element ``kinds`` names (element → (XML Schema
    type, logical field)) in its canonical form, so the SOAP parser reads 1C's spelling
    instead of failing on it (xs:decimal) or taking it for false (zeep reads any xs:boolean
    but ``true``/``1`` as false). Unchanged bytes when nothing needed it; OnecBadValue for a
    value that cannot be read at all."""
    if not _needs_respelling(body, kinds):
        return body  # the usual answer: one scan, no second parse
    return _respelt(body, kinds, operation)


def _respelt(body: bytes, kinds: Mapping[str, tuple[str, str]], operation: str) -> bytes:
    """``canonical_xml`` past its scan: every element ``kinds`` names, parsed, respelt."""
    try:
        root = etree.fromstring(body, parser=_PARSER)
    except etree.XMLSyntaxError:
        return body  # not XML: the SOAP parser says so, as before
    changed = False
    for element in root.iter():
        if not isinstance(element.tag, str) or not element.text:
            continue
        found = kinds.get(etree.QName(element).localname)
        if found is None or element.get(_NIL) in ("true", "1"):
            continue
        kind, field = found
        try:
            text = canonical(kind, element.text, field)
        except OnecBadValue as exc:
            raise exc.of(operation) from None
        if text != element.text:
            element.text, changed = text, True
    return etree.tostring(root, xml_declaration=True, encoding="utf-8") if changed else body


def _needs_respelling(body: bytes, kinds: Mapping[str, tuple[str, str]]) -> bool:
    """Whether an element ``kinds`` names may hold a text not in its lexical form: one
    search of the bytes, for an element of a kind whose text is not that kind's form up to
    the next ``<``. It may say yes where the parsed text is fine (an entity such as
    ``&#160;``, CDATA, a digit beyond ASCII: only a parser can tell), never no where it is
    not; ``canonical_xml``'s loop then decides on the parsed texts."""
    scan = _scan(kinds)
    return scan is not None and scan.search(body) is not None


def _scan(kinds: Mapping[str, tuple[str, str]]) -> re.Pattern[bytes] | None:
    """The search for ``kinds``: compiled once per set of (element, kind), and found by a
    read-only view itself (the declared service's kinds, built once per operation) without
    building that set again; the entry holds the view, so its id is not reused."""
    held = _SCANS_OF.get(id(kinds))
    if held is not None and held[0] is kinds:
        return held[1]
    names = frozenset((name, kind) for name, (kind, _field) in kinds.items())
    if names not in _SCANS:
        _SCANS[names] = _compiled_scan(names)
    scan = _SCANS[names]
    if isinstance(kinds, MappingProxyType) and len(_SCANS_OF) < _SCANS_KEPT:
        _SCANS_OF[id(kinds)] = (kinds, scan)
    return scan


def _compiled_scan(names: frozenset[tuple[str, str]]) -> re.Pattern[bytes] | None:
    """``<[prefix:]Name …>`` whose text up to the next ``<`` is not its kind's form, for
    every kind with a form (text of other kinds is left as it is)."""
    by_kind: dict[str, list[str]] = {}
    for name, kind in sorted(names):
        if kind in _LEXICAL_BYTES:
            by_kind.setdefault(kind, []).append(name)
    if not by_kind:
        return None
    branches = []
    for kind, elements in sorted(by_kind.items()):
        alternatives = b"|".join(re.escape(name.encode()) for name in elements)
        form = _LEXICAL_BYTES[kind]
        branches.append(b"(?:" + alternatives + rb")(?=[\s>])[^>]*>(?!(?:" + form + b")<)")
    return re.compile(rb"<(?:[^\s<>/:]+:)?(?:" + b"|".join(branches) + b")")
