"""Loading mapping files: every problem at once, each with file, line and key path."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bridge.errors import SettingsError
from bridge.mapping import check_mapping, check_route_mappings, load_mapping
from bridge.settings_loader import load_document
from tests.support.mapping_files import HEADER, findings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mappings"


def write(folder: Path, body: str, name: str = "shop_order_to_crm.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_issue6_acceptance4_three_mistakes_are_named_with_their_lines() -> None:
    path = FIXTURES / "broken" / "shop_order_to_crm.yaml"
    known = (
        "bool, const, copy, date, default, first, join, lookup, lower, money, number, phone,"
        " string, sum,"
    )
    assert findings(path) == [
        (
            12,
            "fields[1].transform",
            f"unknown transform 'phnoe' (known: {known} upper)",
        ),
        (13, "fields[2].from", "malformed path 'items[0]..sku': empty key at position 10"),
        (14, "fields[3].table", "no value table 'payment_types' (tables: statuses)"),
    ]
    with pytest.raises(SettingsError) as caught:
        load_mapping(path)
    assert caught.value.problems == check_mapping(path)


def test_the_example_fixture_loads() -> None:
    mapping = load_mapping(FIXTURES / "retailcrm_order_to_onec.yaml")
    assert (mapping.version, mapping.source, mapping.entity, mapping.target) == (
        1,
        "retailcrm",
        "order",
        "onec",
    )
    assert mapping.description == "Site and call-centre orders into 1C"


def test_every_problem_in_one_run(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 2
        source: Shop
        entity: orders
        target: crm
        extra: 1
        tables:
          t1: {values: {a: 1}, unknown: default}
          t2: {values: {a: 1}, unknown: skip, default: 3}
          t3: {values: [1], unknown: maybe}
        filters:
          - {path: "a[", in: [x]}
          - {path: b}
          - {path: c, in: [{x: 1}]}
        fields:
          - {to: A, from: a, transform: join, sep: ","}
          - {to: A, from: b}
          - {to: A.B, from: c}
          - {to: "L[0].x", from: c}
          - {to: L.y, from: c}
          - {to: C, transform: const}
          - {to: D, transform: const, value: 1, from: x}
          - {to: E, from: [a, b], transform: phone}
          - {to: F}
          - {to: I, from: i, transform: date, format: "x", timezone: "Mars/Base"}
          - {to: J, from: j, transform: money, places: 9}
          - {to: K, from: k, trasform: lookup}
          - {to: M, from: m, each: []}
          - {to: N, from: n, each: [{to: x}], transform: copy}
          - {to: O, from: o, required: maybe, invalid: ignore}
          - 5
          - {from: q}
          - {to: P, from: p, filters: [{path: x, exists: true}]}
          - {to: Q, from: q, transform: lookup}
        """,
    )
    found = {(line, key) for line, key, _ in findings(path)}
    assert found == {
        (1, "version"),
        (2, "source"),
        (3, "entity"),
        (5, "extra"),
        (7, "tables.t1.unknown"),
        (8, "tables.t2.default"),
        (9, "tables.t3.values"),
        (9, "tables.t3.unknown"),
        (11, "filters[0].path"),
        (12, "filters[1]"),
        (13, "filters[2].in[0]"),
        (15, "fields[0].sep"),
        (16, "fields[1].to"),  # duplicate target
        (17, "fields[2].to"),  # inside a target written whole
        (19, "fields[4].to"),  # L is a list and an object
        (20, "fields[5].value"),
        (21, "fields[6].from"),
        (22, "fields[7].from"),
        (23, "fields[8]"),
        (24, "fields[9].format"),
        (24, "fields[9].timezone"),
        (25, "fields[10].places"),
        (26, "fields[11].trasform"),
        (27, "fields[12].each"),
        (28, "fields[13].transform"),
        (28, "fields[13].each[0]"),
        (29, "fields[14].required"),
        (29, "fields[14].invalid"),
        (30, "fields[15]"),
        (31, "fields[16].to"),
        (32, "fields[17].filters"),
        (33, "fields[18].table"),
    }


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("version: 3\n", "version: unsupported version 3 (this bridge reads version 1)"),
        ("fields: []\n", "fields: List should have at least 1 item"),
        ("nothing: here\n", "unknown key 'nothing' (a mapping file has version, source"),
        ("version: 1\nversion: 1\n", "version: duplicate key"),
        ("fields:\n  - {to: A, from: a, transform: lookup}\n", "fields[0].table: lookup needs"),
        ("fields:\n  - {to: A, from: a, transform: lookup, table: x}\n", "(tables: the file has"),
        ("fields:\n  - {to: X, from: [], transform: join}\n", "`from` lists no paths"),
        ("fields:\n  - {to: X, from: a, each: [{to: y, from: y}], sep: 1}\n", "unknown key 'sep'"),
        ("fields:\n  - {to: X, from: [a], each: [{to: y, from: y}]}\n", "give one path"),
        ("fields:\n  - {to: X, transform: const, value: 1, default: 2}\n", "drop required/default"),
        ("fields:\n  - {to: X, from: a}\n  - {to: X.y, from: b}\n", "which fields[0] X writes"),
        ("fields:\n  - {to: X.y, from: a}\n  - {to: X, from: b}\n", "key by key by fields[0]"),
        ("tables:\n  t: {values: {a: 2026-01-01}}\nfields:\n  - {to: X, from: a}\n", None),
    ],
)
def test_single_mistakes(tmp_path: Path, body: str, expected: str | None) -> None:
    text = body if body.startswith("version") else HEADER + body
    problems = check_mapping(write(tmp_path, text))
    if expected is None:
        assert problems == []
    else:
        assert any(expected in p for p in problems), problems


def test_the_file_name_must_follow_source_entity_target(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "fields:\n  - {to: A, from: a}\n", name="orders.yaml")
    assert findings(path) == [
        (
            2,
            "source",
            "the file is named 'orders.yaml', but its source, entity and target make it"
            " shop_order_to_crm.yaml (<source>_<entity>_to_<target>.yaml)",
        )
    ]


def test_a_mapping_cannot_target_its_source(tmp_path: Path) -> None:
    body = HEADER.replace("target: crm", "target: shop") + "fields:\n  - {to: A, from: a}\n"
    path = write(tmp_path, body, name="shop_order_to_shop.yaml")
    assert findings(path) == [(4, "target", "a mapping cannot target its own source")]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "version: is required"),
        (b"- a\n- b\n", "(top level): the file must hold a mapping"),
        (b"version: [1\n", ":2: (top level): YAML syntax"),
        (b"\xff\xfe", "is not UTF-8 text"),
    ],
)
def test_unusable_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "shop_order_to_crm.yaml"
    path.write_bytes(content)
    assert any(expected in p for p in check_mapping(path)), check_mapping(path)


def test_a_missing_file(tmp_path: Path) -> None:
    [problem] = check_mapping(tmp_path / "nope.yaml")
    assert "cannot read" in problem


CONFIG = """\
systems:
  shop: {type: recorder}
  crm: {type: recorder}
  erp: {type: recorder}
mirror:
  routes:
    - {source: shop, entity: order, targets: [crm], mapping: mappings/shop_order_to_crm.yaml}
    - {source: shop, entity: order, targets: [crm], mapping: missing.yaml}
    - {source: crm, entity: customer, targets: [erp], mapping: mappings/shop_order_to_crm.yaml}
    - {source: shop, entity: order, targets: [crm, erp], mapping: mappings/shop_order_to_crm.yaml}
    - {source: shop, entity: order, targets: [erp]}
"""


def test_routes_name_existing_files_that_agree_with_them(tmp_path: Path) -> None:
    (tmp_path / "mappings").mkdir()
    write(tmp_path / "mappings", HEADER + "fields:\n  - {to: A, from: a.}\n")
    config = write(tmp_path, CONFIG, name="config.yaml")
    document, _ = load_document(config)
    problems = check_route_mappings(config, document)
    name = "mappings/shop_order_to_crm.yaml"
    assert problems == [
        # The file's own problem, listed once although three routes name it.
        f"{tmp_path / name}:6: fields[0].from: malformed path 'a.': empty key at position 3",
        f"{config}:8: mirror.routes[1].mapping: no such file ({tmp_path / 'missing.yaml'})",
        f"{config}:9: mirror.routes[2].mapping: {name} has source 'shop', but the route's"
        " source is 'crm'",
        f"{config}:9: mirror.routes[2].mapping: {name} has entity 'order', but the route's"
        " entity is 'customer'",
        f"{config}:9: mirror.routes[2].mapping: {name} maps to 'crm', not to the route's"
        " targets ('erp')",
        f"{config}:10: mirror.routes[3].mapping: {name} maps to 'crm' only, but the route also"
        " targets 'erp': give each target its own route and mapping",
    ]
