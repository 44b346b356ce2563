"""Mapping paths: parsing (with the reason a path is malformed), reading and writing."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from bridge.mapping.paths import (
    EVERY,
    MISSING,
    PathError,
    fans_out,
    finish_lists,
    format_path,
    parse_path,
    read_every,
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
        ("payments[*].type", ("payments", EVERY, "type")),
        ("payments[*]", ("payments", EVERY)),
        ("orders[*].items[0][*]", ("orders", EVERY, "items", 0, EVERY)),
        ("a*b.c*", ("a*b", "c*")),  # a star inside a key is part of the key
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
        ("a[**]", "[**] is not a list index (0, 1, 2 …) or [*]"),
        ("a[ * ]", "[ * ] is not a list index"),
        ("[*].type", "must start with a key"),
        ("payments.*.type", "'*' is not a key; every item or value of a key is written with [*]"),
        ("payments.*", "'*' is not a key"),
        ("*", "'*' is not a key"),
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


def test_only_paths_with_every_fan_out() -> None:
    assert fans_out(parse_path("payments[*].type"))
    assert not fans_out(parse_path("payments[0].type"))


# RetailCRM reads payments back keyed by payment id, and an empty set as PHP's `[]`
# (reference/retailcrm-api.md §1.4, §2.2; connectors/retailcrm/emulator/orders.py).
BY_ID = {
    "payments": {
        "17": {"id": 17, "type": "cash", "amount": 100},
        "9": {"id": 9, "amount": 50},  # no type: left out of what payments[*].type yields
        "4": {"id": 4, "type": "bank-card", "amount": 25},
    }
}


@pytest.mark.parametrize(
    ("document", "found"),
    [
        (BY_ID, [(("payments", "17", "type"), "cash"), (("payments", "4", "type"), "bank-card")]),
        (
            {"payments": [{"type": "cash"}, None, {"type": None}, {"type": "bank-card"}]},
            [(("payments", 0, "type"), "cash"), (("payments", 3, "type"), "bank-card")],
        ),
        ({"payments": []}, []),
        ({"payments": {}}, []),
        ({"payments": None}, []),
        ({}, []),
        ({"payments": "cash"}, []),  # neither a list nor an object: nothing to step into
        ({"payments": [1, "x", [{"type": "nested list"}]]}, []),  # items without a type key
    ],
)
def test_every_value_of_an_object_or_item_of_a_list_in_document_order(
    document: dict[str, object], found: list[tuple[tuple[object, ...], object]]
) -> None:
    path = parse_path("payments[*].type")
    assert list(read_every(document, path)) == found
    assert read_path(document, path) == (found[0][1] if found else MISSING)  # the first


def test_every_nests_and_keeps_where_each_value_was_found() -> None:
    document = {
        "orders": [
            {"payments": {"5": {"amount": 1}, "6": {"amount": 2}}},
            {"payments": []},
            {"payments": {"7": {"amount": 3}}},
        ]
    }
    found = list(read_every(document, parse_path("orders[*].payments[*].amount")))
    assert [(format_path(where), value) for where, value in found] == [
        ("orders[0].payments.5.amount", 1),
        ("orders[0].payments.6.amount", 2),
        ("orders[2].payments.7.amount", 3),
    ]
    whole = list(read_every(BY_ID, parse_path("payments[*]")))
    assert [where for where, _ in whole] == [("payments", k) for k in ("17", "9", "4")]
    assert whole[0][1] is BY_ID["payments"]["17"]  # read, not copied: the engine copies
    assert read_path(document, parse_path("orders[*].payments[*].amount")) == 1


def test_every_over_a_path_without_it_yields_its_one_value() -> None:
    assert list(read_every({"a": {"b": 1}}, ("a", "b"))) == [(("a", "b"), 1)]
    assert list(read_every({"a": {"b": None}}, ("a", "b"))) == []


def test_every_reads_any_mapping_and_tuple() -> None:
    document = MappingProxyType({"p": MappingProxyType({"1": ({"t": "x"},)})})
    assert read_path(document, parse_path("p[*][*].t")) == "x"
