"""The closed set of transforms a field rule may name, each with its parameters' model.

A transform is built once per rule when the file is loaded (``build(params, context)``)
into a plain function of one value. A function raises :class:`ValueProblem` for a value it
cannot convert and may return :data:`MISSING` ("no value", e.g. 1C's empty date).
Adding a transform means adding one function here with ``@transform(...)``.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

import phonenumbers
from pydantic import BaseModel, Field, field_validator

from bridge.bonus.phones import PhoneError, normalize_phone
from bridge.errors import BridgeError
from bridge.mapping.errors import ValueProblem
from bridge.mapping.paths import MISSING
from bridge.mapping.tables import Table, Unknown
from bridge.mapping.values import (
    describe,
    json_copy,
    to_bool,
    to_decimal,
    to_text,
    yaml_value,
)
from bridge.settings_base import Strict

Converter = Callable[[Any], Any]
P = TypeVar("P", bound=BaseModel)


class Sources(StrEnum):
    """How many source paths (``from``) a transform reads."""

    NONE = "none"  # const
    ONE = "one"
    MANY = "many"  # one path, or a list of paths (join)


class BuildProblem(BridgeError):
    """A parameter is valid on its own but not in this file (a table that does not exist)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True)
class BuildContext:
    """What a transform may consult while it is built: the file's value tables."""

    tables: Mapping[str, Table]
    table_names: frozenset[str]  # every table written, compiled or not (no cascades)


@dataclass(frozen=True)
class Transform:
    """One named transform: its parameters and how to build its function."""

    name: str
    params: type[BaseModel]
    build: Callable[[Any, BuildContext], Converter]
    sources: Sources
    takes_missing: bool  # called even when the source has no value (default)


TRANSFORMS: dict[str, Transform] = {}


class NoParams(Strict):
    """A transform without parameters."""


def transform(
    name: str,
    params: type[P],
    sources: Sources = Sources.ONE,
    *,
    takes_missing: bool = False,
) -> Callable[[Callable[[P, BuildContext], Converter]], Callable[[P, BuildContext], Converter]]:
    """Register ``build`` as the transform ``name``."""

    def register(
        build: Callable[[P, BuildContext], Converter],
    ) -> Callable[[P, BuildContext], Converter]:
        TRANSFORMS[name] = Transform(name, params, build, sources, takes_missing)
        return build

    return register


@transform("copy", NoParams)
def _copy(_: NoParams, __: BuildContext) -> Converter:
    return json_copy


@transform("string", NoParams)
def _string(_: NoParams, __: BuildContext) -> Converter:
    return to_text


@transform("lower", NoParams)
def _lower(_: NoParams, __: BuildContext) -> Converter:
    return lambda value: to_text(value).lower()


@transform("upper", NoParams)
def _upper(_: NoParams, __: BuildContext) -> Converter:
    return lambda value: to_text(value).upper()


@transform("bool", NoParams)
def _bool(_: NoParams, __: BuildContext) -> Converter:
    return to_bool


class PhoneParams(Strict):
    """``region``: how to read numbers written without a country code; ``format``: how to
    write it, as the receiving system keeps phones (1C services often want bare digits)."""

    region: str = "RU"
    # e164 +79001234567 · digits 79001234567 · trunk 89001234567 (the country's trunk
    # prefix and the national number, as Russians write it) · national 9001234567 ·
    # international +7 900 123-45-67 · or a pattern whose # are the national number's
    # digits: "+7 (###) ###-##-##" gives +7 (900) 123-45-67
    format: str = "e164"

    @field_validator("format")
    @classmethod
    def _form(cls, value: str) -> str:
        if value not in _PHONE_FORMS and "#" not in value:
            known = ", ".join(_PHONE_FORMS)
            raise ValueError(f"{value!r}: one of {known}, or a pattern such as '8 (###) ###-##-##'")
        return value

    @field_validator("region")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown region {value!r} (two letters, such as RU or KZ)")
        return value


@transform("phone", PhoneParams)
def _phone(params: PhoneParams, _: BuildContext) -> Converter:
    def convert(value: Any) -> str:
        try:
            e164 = normalize_phone(to_text(value), params.region)
        except PhoneError as exc:
            # The value itself stays out of the message: it lands in logs (STYLE.md).
            raise ValueProblem(f"not a phone number: {exc}") from None
        return e164 if params.format == "e164" else _phone_as(e164, params.format)

    return convert


_PHONE_FORMS = ("e164", "digits", "trunk", "national", "international")


def _phone_as(e164: str, form: str) -> str:
    number = phonenumbers.parse(e164)
    national = str(number.national_number)
    if "#" in form:
        if form.count("#") != len(national):
            raise ValueProblem(f"the pattern has {form.count('#')} #, the number {len(national)}")
        digits = iter(national)
        return "".join(next(digits) if char == "#" else char for char in form)
    if form == "international":
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if form == "digits":
        return f"{number.country_code}{national}"
    if form == "national":
        return national
    # trunk: Russia and Kazakhstan dial 8 before the national number (RU's trunk prefix).
    region = phonenumbers.region_code_for_number(number)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region or "RU")
    prefix = (metadata.national_prefix if metadata is not None else None) or ""
    return f"{prefix}{national}"


class MoneyParams(Strict):
    """``places``: digits after the point in the output text."""

    places: int = Field(default=2, ge=0, le=6)


@transform("money", MoneyParams)
def _money(params: MoneyParams, _: BuildContext) -> Converter:
    step = Decimal(1).scaleb(-params.places)

    def convert(value: Any) -> str:
        amount = to_decimal(value, "an amount")
        try:
            return str(amount.quantize(step, rounding=ROUND_HALF_UP))
        except InvalidOperation:
            raise ValueProblem(f"{describe(value)} is too large an amount") from None

    return convert


class NumberParams(Strict):
    """``integer``: refuse values with a fraction instead of writing them."""

    integer: bool = False


@transform("number", NumberParams)
def _number(params: NumberParams, _: BuildContext) -> Converter:
    def convert(value: Any) -> int | float:
        number = to_decimal(value)
        if number == number.to_integral_value():
            return int(number)
        if params.integer:
            raise ValueProblem(f"{describe(value)} is not a whole number")
        # Non-whole numbers are JSON numbers (floats); up to 15 significant digits a float
        # prints back exactly as written. Amounts belong in `money`, which writes text.
        if len(number.normalize().as_tuple().digits) > 15:
            raise ValueProblem(f"{describe(value)} has too many digits (use money or string)")
        return float(number)

    return convert


class DateParams(Strict):
    """``format``: strftime of the output (ISO 8601 when absent); ``input_format``: a
    strptime pattern tried before ISO 8601; ``timezone``: the zone to write times in."""

    format: str | None = None
    input_format: str | None = None
    timezone: str | None = None

    @field_validator("format", "input_format")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise ValueError("a date pattern needs % directives, such as %Y-%m-%d %H:%M:%S")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (such as Europe/Moscow)") from None
        return value


# 1C writes an empty date as 0001-01-01T00:00:00 ("ПустаяДата"): no date, not year 1.
_ONEC_EMPTY_DATE = "0001-01-01"
_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%X", "%c", "%T", "%R")


@transform("date", DateParams)
def _date(params: DateParams, _: BuildContext) -> Converter:
    zone = zoneinfo.ZoneInfo(params.timezone) if params.timezone else None
    expected = "ISO 8601 or YYYY-MM-DD HH:MM:SS"
    if params.input_format:
        expected = f"{params.input_format} or {expected}"

    def convert(value: Any) -> Any:
        if isinstance(value, dt.datetime | dt.date):
            text = value.isoformat()
        elif isinstance(value, str):
            text = value.strip()
        else:
            raise ValueProblem(f"{describe(value)} is not a date")
        if text.startswith(_ONEC_EMPTY_DATE):
            return MISSING
        moment, date_only = None, False
        if params.input_format:
            try:
                moment = dt.datetime.strptime(text, params.input_format)
                date_only = not any(d in params.input_format for d in _TIME_DIRECTIVES)
            except ValueError:
                moment = None
        if moment is None:
            date_only = ":" not in text
            try:
                # Python 3.11 reads ISO 8601 with T or a space (RetailCRM's
                # "2024-01-31 10:00:00"), with Z or an offset, or a date alone.
                moment = dt.datetime.fromisoformat(text)
            except ValueError:
                raise ValueProblem(f"{describe(value)} is not a date ({expected})") from None
        if zone is not None:
            moment = moment.astimezone(zone) if moment.tzinfo else moment.replace(tzinfo=zone)
        if params.format:
            return moment.strftime(params.format)
        return moment.date().isoformat() if date_only else moment.isoformat()

    return convert


class ValueParams(Strict):
    """``value``: what to write (any YAML value; dates become ISO 8601 text)."""

    value: Any

    @field_validator("value")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return yaml_value(value)


@transform("const", ValueParams, Sources.NONE, takes_missing=True)
def _const(params: ValueParams, _: BuildContext) -> Converter:
    return lambda _: json_copy(params.value)


@transform("default", ValueParams, takes_missing=True)
def _default(params: ValueParams, _: BuildContext) -> Converter:
    def convert(value: Any) -> Any:
        if value is MISSING or (isinstance(value, str) and not value.strip()):
            return json_copy(params.value)
        return json_copy(value)

    return convert


class LookupParams(Strict):
    """``table``: the name of a table under ``tables:``."""

    table: str


@transform("lookup", LookupParams)
def _lookup(params: LookupParams, context: BuildContext) -> Converter:
    table = context.tables.get(params.table)
    if table is None:
        if params.table in context.table_names:  # written, but wrong: reported there
            return json_copy
        names = ", ".join(sorted(context.table_names)) or "the file has none"
        raise BuildProblem("table", f"no value table {params.table!r} (tables: {names})")
    return table.look_up


def absent_refusal(name: str, params: BaseModel, context: BuildContext) -> str | None:
    """Why a rule through transform ``name`` stops the change when its source has no value.

    A lookup into a table with ``unknown: skip`` lets through only the values the table
    lists, and an absent value is none of them: a guard that reads nothing (the push of an
    order its source does not hold) must not let pass what it exists to stop (issue 12)."""
    if name != "lookup" or not isinstance(params, LookupParams):
        return None
    table = context.tables.get(params.table)
    if table is None or table.unknown is not Unknown.SKIP:
        return None
    return f"absent, so not in table {table.name!r} (unknown: skip)"


class Parts(tuple[Any, ...]):
    """The values of several source paths, as a rule with ``from: [a, b]`` reads them."""

    __slots__ = ()


def known_transforms() -> str:
    """The names, for messages: ``bool, const, copy, …``."""
    return ", ".join(sorted(TRANSFORMS))


# The transforms of several source paths (join, first, sum) register themselves there; the
# import comes last, as that module builds on this one.
import bridge.mapping.several  # noqa: E402, F401
