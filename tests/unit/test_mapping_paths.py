"""Mapping paths: parsing (with the reason a path is malformed), reading and writing."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from bridge.mapping.paths import (
    MISSING,
    PathError,
    finish_lists,
    format_path,
    parse_path,
    read_path,
    write_path,
)


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("number", ("number",)),
        ("customer.id", ("customer", "id")),
        ("customer.phones[0].number", ("customer", "phones", 0, "number")),
        ("items[12]", ("items", 12)),
        ("matrix[1][2]", ("matrix", 1, 2)),
        ("Контрагент.Телефон", ("Контрагент", "Телефон")),
        ("customFields.my_field-2", ("customFields", "my_field-2")),
    ],
)
def test_well_formed_paths(text: str, parsed: tuple[object, ...]) -> None:
    assert parse_path(text) == parsed
    assert format_path(parse_path(text)) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty path"),
        ("a..b", "empty key at position 3"),
        (".a", "empty key at position 1"),
        ("a.", "empty key at position 3"),
        ("x[", "'[' at position 2 is not closed"),
        ("[-1]", "must start with a key"),
        ("a[-1]", "[-1] is not a list index"),
        ("a[x]", "[x] is not a list index"),
        ("a[]", "[] is not a list index"),
        ("a[0]b", "expected '.' or '[' after ']'"),
        ("a]", "']' at position 2 has no '['"),
        ("a. b", "has spaces around it"),
    ],
)
def test_malformed_paths_say_where(text: str, reason: str) -> None:
    with pytest.raises(PathError) as caught:
        parse_path(text)
    assert reason in str(caught.value)


def test_reading_treats_absent_null_and_wrong_shapes_as_missing() -> None:
    doc = {"a": {"b": [10, None, {"c": "x"}]}, "n": None, "s": "text"}
    assert read_path(doc, ("a", "b", 0)) == 10
    assert read_path(doc, ("a", "b", 2, "c")) == "x"
    assert read_path(doc, ("a", "b", 1)) is MISSING  # null
    assert read_path(doc, ("a", "b", 3)) is MISSING  # past the end
    assert read_path(doc, ("n",)) is MISSING
    assert read_path(doc, ("s", "x")) is MISSING  # a key of a text
    assert read_path(doc, ("a", 0)) is MISSING  # an index of an object
    assert read_path(doc, ("zzz", "y")) is MISSING


def test_reading_accepts_any_mapping() -> None:
    assert read_path(MappingProxyType({"a": ({"b": 1},)}), ("a", 0, "b")) == 1


def test_writing_creates_objects_and_lists_in_index_order() -> None:
    out: dict[object, object] = {}
    write_path(out, ("Customer", "Phone"), "+7")
    write_path(out, ("Customer", "Name"), "Анна")
    write_path(out, ("phones", 3, "number"), "second")  # index 1, 2 never written
    write_path(out, ("phones", 0, "number"), "first")
    assert finish_lists(out) == {
        "Customer": {"Phone": "+7", "Name": "Анна"},
        "phones": [{"number": "first"}, {"number": "second"}],
    }
