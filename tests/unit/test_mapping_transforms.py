"""Every transform, through a real mapping file: what it writes and how it refuses."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from bridge.mapping import TRANSFORMS, MappingFailed, check_mapping, load_mapping

HEADER = "version: 1\nsource: shop\nentity: order\ntarget: crm\n"
ABSENT = object()


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "shop_order_to_crm.yaml"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return path


def convert(tmp_path: Path, rule: str, value: Any = ABSENT, tables: str = "") -> Any:
    """Map ``{"v": value}`` with one rule ``{to: out, from: v, <rule>}``; ABSENT if omitted."""
    mapping = load_mapping(write(tmp_path, f"{tables}fields:\n  - {{to: out, from: v, {rule}}}\n"))
    result = mapping.apply({} if value is ABSENT else {"v": value})
    assert result.document is not None
    return result.document.get("out", ABSENT)


def refusal(tmp_path: Path, rule: str, value: Any) -> str:
    with pytest.raises(MappingFailed) as caught:
        convert(tmp_path, rule, value)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'shop_order_to_crm.yaml'}:6: fields[0] out: v: ")
    return message


def test_the_closed_set_has_every_named_transform() -> None:
    assert set(TRANSFORMS) == {
        "copy",
        "phone",
        "money",
        "number",
        "string",
        "date",
        "const",
        "lookup",
        "join",
        "first",
        "sum",
        "default",
        "lower",
        "upper",
        "bool",
    }


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_every_transform_refuses_an_unknown_parameter(tmp_path: Path, name: str) -> None:
    source = "" if name == "const" else ", from: v"
    extra = {"const": ", value: 1", "default": ", value: 1", "lookup": ", table: t"}.get(name, "")
    body = "tables:\n  t: {values: {a: b}}\nfields:\n"
    body += f"  - {{to: out{source}, transform: {name}{extra}, bogus: 1}}\n"
    [problem] = check_mapping(write(tmp_path, body))
    assert ":8: fields[0].bogus: unknown key 'bogus'" in problem


def test_copy_is_the_default_and_shares_nothing_with_the_source(tmp_path: Path) -> None:
    source = {"v": {"a": [1, 2]}}
    mapping = load_mapping(write(tmp_path, "fields:\n  - {to: out, from: v}\n"))
    document = mapping.apply(source).document
    assert document == {"out": {"a": [1, 2]}}
    document["out"]["a"].append(3)
    assert source == {"v": {"a": [1, 2]}}


@pytest.mark.parametrize(
    ("value", "text"), [("x", "x"), (12, "12"), (1.5, "1.5"), (True, "true"), (False, "false")]
)
def test_string(tmp_path: Path, value: Any, text: str) -> None:
    assert convert(tmp_path, "transform: string", value) == text


def test_string_refuses_objects_and_lists(tmp_path: Path) -> None:
    assert refusal(tmp_path, "transform: string", {"a": 1}).endswith("an object is not text")
    assert refusal(tmp_path, "transform: string", [1]).endswith("a list is not text")


def test_lower_and_upper_handle_cyrillic(tmp_path: Path) -> None:
    assert convert(tmp_path, "transform: lower", "Анна ПЕТРОВА") == "анна петрова"
    assert convert(tmp_path, "transform: upper", "Анна") == "АННА"


@pytest.mark.parametrize("value", [True, 1, "true", "YES", "да", "on", " 1 "])
def test_bool_true(tmp_path: Path, value: Any) -> None:
    assert convert(tmp_path, "transform: bool", value) is True


@pytest.mark.parametrize("value", [False, 0, "false", "No", "нет", "off", "0"])
def test_bool_false(tmp_path: Path, value: Any) -> None:
    assert convert(tmp_path, "transform: bool", value) is False


def test_bool_refuses_other_values(tmp_path: Path) -> None:
    assert refusal(tmp_path, "transform: bool", "maybe").endswith("'maybe' is not a yes/no value")
    assert refusal(tmp_path, "transform: bool", 2).endswith("2 is not a yes/no value")


@pytest.mark.parametrize(
    "value",
    ["+7 900 000-00-01", "8 (900) 000-00-01", "9000000001", "79000000001", 79000000001],
)
def test_phone_in_any_russian_notation(tmp_path: Path, value: Any) -> None:
    assert convert(tmp_path, "transform: phone", value) == "+79000000001"


def test_phone_refusal_names_the_rule_but_not_the_number(tmp_path: Path) -> None:
    message = refusal(tmp_path, "transform: phone", "12-34-567")
    assert "not a phone number" in message
    assert "12-34-567" not in message  # errors reach logs; phones stay out of them


def test_phone_region_is_checked_when_loading(tmp_path: Path) -> None:
    body = "fields:\n  - {to: out, from: v, transform: phone, region: XX}\n"
    assert check_mapping(write(tmp_path, body)) == [
        f"{tmp_path / 'shop_order_to_crm.yaml'}:6: fields[0].region:"
        " unknown region 'XX' (two letters, such as RU or KZ)"
    ]


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2349.5, "2349.50"),
        (0.1 + 0.2, "0.30"),  # 0.30000000000000004: the float's noise is rounded off
        (10, "10.00"),
        ("1 234,5", "1234.50"),
        ("1\u00a0234.567", "1234.57"),
        ("-0.005", "-0.01"),  # half away from zero, as cash registers round
        ("1e3", "1000.00"),
    ],
)
def test_money_is_text_with_two_places(tmp_path: Path, value: Any, text: str) -> None:
    assert convert(tmp_path, "transform: money", value) == text


def test_money_places(tmp_path: Path) -> None:
    assert convert(tmp_path, "transform: money, places: 0", 2.5) == "3"
    assert convert(tmp_path, "transform: money, places: 3", "1.23456") == "1.235"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("abc", "'abc' is not an amount"),
        (True, "true is not an amount"),
        ("1,234.5", "(both ',' and '.')"),
        ("NaN", "'NaN' is not an amount"),
        ([1], "a list is not an amount"),
        ("1e40", "too large an amount"),
    ],
)
def test_money_refusals(tmp_path: Path, value: Any, reason: str) -> None:
    assert refusal(tmp_path, "transform: money", value).endswith(reason)


@pytest.mark.parametrize(
    ("value", "number"), [("3", 3), ("3.00", 3), (3.0, 3), (1.5, 1.5), ("2,5", 2.5), (-7, -7)]
)
def test_number(tmp_path: Path, value: Any, number: float) -> None:
    result = convert(tmp_path, "transform: number", value)
    assert result == number
    assert type(result) is type(number)


def test_number_refusals(tmp_path: Path) -> None:
    assert refusal(tmp_path, "transform: number", "x").endswith("'x' is not a number")
    whole = refusal(tmp_path, "transform: number, integer: true", 1.5)
    assert whole.endswith("1.5 is not a whole number")


@pytest.mark.parametrize(
    ("rule", "value", "text"),
    [
        ("", "2026-03-02 14:05:09", "2026-03-02T14:05:09"),  # RetailCRM's format
        ("", "2026-03-02T14:05:09+03:00", "2026-03-02T14:05:09+03:00"),
        ("", "2026-03-02", "2026-03-02"),
        ("format: '%d.%m.%Y'", "2026-03-02T14:05:09", "02.03.2026"),
        (
            "format: '%Y-%m-%d %H:%M:%S', timezone: Europe/Moscow",
            "2026-03-02T11:05:09Z",
            "2026-03-02 14:05:09",
        ),
        ("timezone: Europe/Moscow", "2026-03-02 14:05:09", "2026-03-02T14:05:09+03:00"),
        ("input_format: '%d.%m.%Y %H:%M:%S'", "02.03.2026 14:05:09", "2026-03-02T14:05:09"),
        ("input_format: '%d.%m.%Y'", "02.03.2026", "2026-03-02"),
    ],
)
def test_date(tmp_path: Path, rule: str, value: str, text: str) -> None:
    assert convert(tmp_path, f"transform: date, {rule}".rstrip(", "), value) == text


def test_onec_empty_date_is_no_date(tmp_path: Path) -> None:
    assert convert(tmp_path, "transform: date", "0001-01-01T00:00:00") is ABSENT
    assert convert(tmp_path, "transform: date, default: null", "0001-01-01T00:00:00") is None


def test_date_refusals(tmp_path: Path) -> None:
    message = refusal(tmp_path, "transform: date", "yesterday")
    assert message.endswith("'yesterday' is not a date (ISO 8601 or YYYY-MM-DD HH:MM:SS)")
    assert refusal(tmp_path, "transform: date", 1700000000).endswith("is not a date")


def test_const_needs_no_source_and_writes_yaml_values_as_json(tmp_path: Path) -> None:
    body = """\
    fields:
      - {to: a, transform: const, value: retailcrm}
      - {to: b, transform: const, value: {kind: site, ids: [1, 2]}}
      - {to: c, transform: const, value: 2026-03-02}
      - {to: d, transform: const, value: null}
    """
    document = load_mapping(write(tmp_path, body)).apply({}).document
    assert document == {
        "a": "retailcrm",
        "b": {"kind": "site", "ids": [1, 2]},
        "c": "2026-03-02",
        "d": None,
    }


@pytest.mark.parametrize(
    ("value", "result"), [(ABSENT, "-"), (None, "-"), ("", "-"), ("  ", "-"), ("x", "x"), (0, 0)]
)
def test_default_replaces_missing_and_blank(tmp_path: Path, value: Any, result: Any) -> None:
    assert convert(tmp_path, "transform: default, value: '-'", value) == result


def test_join_leaves_out_missing_and_blank_parts(tmp_path: Path) -> None:
    body = """\
    fields:
      - {to: name, from: [first, middle, last], transform: join}
      - {to: address, from: lines, transform: join, separator: ", "}
    """
    mapping = load_mapping(write(tmp_path, body))
    doc = {"first": "Анна", "middle": " ", "last": "Петрова", "lines": ["Тверская 1", None, 5]}
    assert mapping.apply(doc).document == {"name": "Анна Петрова", "address": "Тверская 1, 5"}
    assert mapping.apply({"middle": ""}).document == {}  # nothing to join: left out


def test_lookup_maps_through_a_table(tmp_path: Path) -> None:
    tables = "tables:\n  t: {values: {new: Новый, '1': Наличные}}\n"
    assert convert(tmp_path, "transform: lookup, table: t", "new", tables) == "Новый"
    assert convert(tmp_path, "transform: lookup, table: t", 1, tables) == "Наличные"
