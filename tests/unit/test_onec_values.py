"""1C's own spellings of values (connectors/onec/values.py), as a table (issue 12, point 12)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.onec import values
from connectors.onec.answers import change_page
from connectors.onec.values import (
    OnecBadValue,
    canonical,
    canonical_xml,
    read_bool,
    read_decimal,
    read_int,
    read_moment,
)

NBSP, NARROW = "\u00a0", "\u202f"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("true", True),
        ("false", False),
        (" FALSE ", False),
        ("Истина", True),
        ("Ложь", False),
        ("ИСТИНА", True),
        ("Да", True),  # Строка(Истина) in a Russian infobase
        ("Нет", False),
        ("1", True),
        ("0", False),
        (1, True),
        (0, False),
    ],
)
def test_booleans(value: Any, expected: bool) -> None:
    assert read_bool(value, "more") is expected


@pytest.mark.parametrize("value", ["maybe", "", None, 2, "2", [], "ложно"])
def test_a_flag_that_is_none_of_them_is_refused_never_taken_for_false(value: Any) -> None:
    with pytest.raises(OnecBadValue, match=r"^more: .* is not a boolean"):
        read_bool(value, "more")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1000.50", "1000.50"),
        ("1 000,50", "1000.50"),
        (f"1{NBSP}000,50", "1000.50"),  # Формат(Число, "ЧДЦ=2") with the locale's NBSP
        (f"12{NARROW}345{NARROW}678,9", "12345678.9"),
        ("-1 000,5", "-1000.5"),
        ("0,00", "0.00"),
        (" 15 ", "15"),
        (150, "150"),
        (Decimal("2.50"), "2.50"),
        (0.1, "0.1"),  # a JSON number: by its shortest repr, never 0.1000000000000000055…
    ],
)
def test_decimals(value: Any, expected: str) -> None:
    assert read_decimal(value, "balance") == Decimal(expected)
    assert str(read_decimal(value, "balance")) == expected


@pytest.mark.parametrize(
    "value", ["много", "", "1,000.50", "1.2.3", "NaN", "Infinity", None, True, [1], "1 0 0,0,0"]
)
def test_an_amount_that_is_no_number_is_refused(value: Any) -> None:
    with pytest.raises(OnecBadValue, match=r"^balance: .* is not a decimal number"):
        read_decimal(value, "balance")


def test_whole_numbers() -> None:
    assert read_int("1 234", "message_no") == 1234
    assert read_int(f"7{NBSP}000", "message_no") == 7000
    assert read_int(Decimal("12.0"), "total") == 12
    for bad in ("1,5", "x", None, 1.5):
        with pytest.raises(OnecBadValue, match="is not a whole number"):
            read_int(bad, "total")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0001-01-01T00:00:00", None),  # 1C's empty date
        ("0001-01-01T00:00:00Z", None),
        (datetime(1, 1, 1), None),
        ("", None),
        (None, None),
        ("2026-11-22T10:00:00Z", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        # 1C's local time without an offset, read in Moscow (UTC+3, no DST; onec.md §5.3).
        ("2026-11-22T10:00:00", datetime(2026, 11, 22, 7, tzinfo=UTC)),
        ("2026-11-22T13:00:00+03:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        ("22.11.2026 10:00:00", datetime(2026, 11, 22, 7, tzinfo=UTC)),  # Строка(Дата), local
        (datetime(2026, 11, 22, 13), datetime(2026, 11, 22, 10, tzinfo=UTC)),  # naive: local
        (
            datetime(2026, 11, 22, 13, tzinfo=timezone(timedelta(hours=3))),
            datetime(2026, 11, 22, 10, tzinfo=UTC),
        ),
    ],
)
def test_moments(value: Any, expected: datetime | None) -> None:
    assert read_moment(value, "as_of") == expected


@pytest.mark.parametrize(
    ("zone", "local", "expected"),
    [
        (UTC, "2026-11-22T10:00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        (UTC, "22.11.2026 10:00:00", datetime(2026, 11, 22, 10, tzinfo=UTC)),
        (
            ZoneInfo("Asia/Yekaterinburg"),
            "2026-11-22T10:00:00",
            datetime(2026, 11, 22, 5, tzinfo=UTC),
        ),
        (ZoneInfo("Europe/Berlin"), "22.11.2026 10:00:00", datetime(2026, 11, 22, 9, tzinfo=UTC)),
        (
            ZoneInfo("Europe/Berlin"),
            "2026-07-22T10:00:00",
            datetime(2026, 7, 22, 8, tzinfo=UTC),
        ),  # DST
    ],
)
def test_a_local_time_is_read_in_the_zone_given(
    zone: tzinfo, local: str, expected: datetime
) -> None:
    assert read_moment(local, "as_of", zone) == expected
    # A time that says its offset is that moment, whatever the zone; the empty date is none.
    aware = datetime(2026, 11, 22, 10, tzinfo=UTC)
    assert read_moment("2026-11-22T13:00:00+03:00", "as_of", zone) == aware
    assert read_moment("0001-01-01T00:00:00", "as_of", zone) is None


def test_a_moment_that_is_no_date_is_refused() -> None:
    with pytest.raises(OnecBadValue, match=r"^as_of: 'вчера' is not a date and time"):
        read_moment("вчера", "as_of")


def test_canonical_forms_for_a_soap_parser() -> None:
    assert canonical("decimal", f"1{NBSP}000,50", "balance") == "1000.50"
    assert canonical("boolean", "Ложь", "more") == "false"
    assert canonical("int", "1 000", "last_message_no") == "1000"
    # Строка(Дата) is local time: read in the default zone (Moscow, UTC+3), written in UTC.
    # Still local: the reader that knows the infobase's zone places it (read_moment).
    assert canonical("dateTime", "22.11.2026 10:00:00", "as_of") == "2026-11-22T10:00:00"
    assert canonical("dateTime", "2026-11-22T10:00:00", "as_of") == "2026-11-22T10:00:00"
    assert canonical("dateTime", "0001-01-01T00:00:00", "as_of") == "0001-01-01T00:00:00"
    assert canonical("string", "1 000,50", "name") == "1 000,50"


def test_canonical_xml_rewrites_only_what_needs_it() -> None:
    kinds = {"Balance": ("decimal", "balance"), "More": ("boolean", "more")}
    body = '<r xmlns="urn:x"><Balance>1 000,50</Balance><More>Истина</More><Name>1,5</Name></r>'
    out = canonical_xml(body.encode(), kinds, "GetBalance").decode()
    assert "<Balance>1000.50</Balance>" in out
    assert "<More>true</More>" in out
    assert "<Name>1,5</Name>" in out  # a text field: as it is
    entity = b'<m:r xmlns:m="urn:x"><m:Balance a="1">1&#160;000,50</m:Balance></m:r>'
    assert b">1000.50</m:Balance>" in canonical_xml(entity, kinds, "GetBalance")
    plain = b'<r xmlns="urn:x"><Balance>10.00</Balance></r>'
    assert canonical_xml(plain, kinds, "GetBalance") is plain  # nothing to do: the same bytes
    with pytest.raises(OnecBadValue, match=r"^GetBalance: balance: 'x' is not a decimal"):
        canonical_xml(b"<r><Balance>x</Balance></r>", kinds, "GetBalance")


CHANGED = {"items": [{"message_no": "6", "id": "a"}], "last_message_no": "6", "more": "Истина"}


@pytest.mark.parametrize(
    ("page", "since", "expected"),
    [
        ({"items": [], "last_message_no": 5, "more": "false"}, 5, (5, False)),
        ({"items": [], "last_message_no": "5", "more": "Ложь"}, 5, (5, False)),
        # "More" from where it was asked would have the poller call again at once, forever.
        ({"items": [], "last_message_no": 5, "more": "true"}, 5, (5, False)),
        ({"items": [], "last_message_no": 5, "more": True}, 5, (5, False)),
        (CHANGED, 5, (6, True)),
        ({"items": None, "last_message_no": None, "more": None}, 5, (5, False)),
    ],
)
def test_a_change_page_never_says_more_without_moving(
    page: dict[str, Any], since: int, expected: tuple[int, bool]
) -> None:
    read = change_page(page, since)
    assert (read.last, read.more) == expected


def test_an_unreadable_change_page_names_the_field() -> None:
    pages: list[tuple[dict[str, Any], str]] = [
        ({"more": "maybe"}, "more"),
        ({"last_message_no": "many"}, "last_message_no"),
        ({"items": [{"message_no": "x", "id": "a"}]}, "message_no"),
        ({"items": [{"message_no": 1}]}, "id"),
    ]
    for page, field in pages:
        with pytest.raises(OnecBadValue) as caught:
            change_page(page, 0)
        assert caught.value.field == field


SPELT = [
    "150.00", "-1", ".5", "1.", "1 000,50", "1\u00a0000,50", " 7 ", "\u0661\u0662", "", "x",
    "true", "Да", "0", "2026-12-06T15:55:19", "2026-12-06T15:55:19.25+03:00",
    "22.11.2026 10:00:00", "&#49;", "&#160;5", "<![CDATA[12]]>", "<![CDATA[1]]>2", "1<!-- c -->",
    "<!-- c -->1",
]  # fmt: skip
SCAN_KINDS = {"Balance": ("decimal", "balance"), "N": ("int", "n"), "Ok": ("boolean", "ok")}
SCAN_KINDS |= {"AsOf": ("dateTime", "as_of"), "Name": ("string", "name")}


@pytest.mark.parametrize("kinds", [SCAN_KINDS, MappingProxyType(SCAN_KINDS)], ids=["dict", "view"])
@settings(max_examples=400, deadline=None)
@given(
    texts=st.lists(
        st.tuples(st.sampled_from(sorted(SCAN_KINDS)), st.sampled_from(SPELT)), max_size=5
    ),
    prefix=st.sampled_from(["", "m:"]),
    nil=st.booleans(),
)
def test_the_byte_scan_never_misses_what_the_parsed_check_respells(
    kinds: Any, texts: list[tuple[str, str]], prefix: str, nil: bool
) -> None:
    """Whatever the loop over the parsed answer would respell (or refuse), the scan of the
    bytes that decides whether to run it sees too."""
    inner = "".join(f"<{prefix}{name}>{text}</{prefix}{name}>" for name, text in texts)
    if nil:
        inner += f'<{prefix}Balance xsi:nil="true"></{prefix}Balance>'
    body = (
        f'<r xmlns:m="urn:x" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{inner}</r>'
    ).encode()
    forced = outcome(lambda: values._respelt(body, kinds, "Op"))
    if forced != ("ok", body):
        assert values._needs_respelling(body, kinds), (body, forced)
    assert outcome(lambda: canonical_xml(body, kinds, "Op")) == forced


def outcome(respell: Any) -> tuple[str, Any]:
    """The bytes ``respell`` gives, or the refusal it raises."""
    try:
        return ("ok", respell())
    except OnecBadValue as exc:
        return ("refused", str(exc))
