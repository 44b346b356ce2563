"""Field rules that apply on create only (``when: create``): create vs edit, validation,
the shipped 1C → RetailCRM order mapping, and ``bridge map --edit``."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.cli.main import main
from bridge.mapping import FlowMapping, MappingFailed, MapResult, load_mapping
from tests.support.mapping_files import findings, load_flow, write_flow

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"


ORDER = {
    "status": "paid",
    "number": "A-1",
    "phone": "8 900 000-00-01",
    "lines": [{"sku": "S1", "qty": "2"}, {"sku": "S2", "qty": 1}],
}
RULES = """\
fields:
  - {to: Status, from: status}
  - {to: Number, from: number, when: always}
  - {to: Phone, from: phone, transform: phone, when: create}
  - to: Items
    from: lines
    when: create
    each:
      - {to: Sku, from: sku}
      - {to: Qty, from: qty, transform: number}
  - {to: Origin, transform: const, value: shop, when: create}
"""


def test_create_writes_every_rule_and_edit_leaves_the_create_rules_out(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, RULES)
    whole = {
        "Status": "paid",
        "Number": "A-1",
        "Phone": "+79000000001",
        "Items": [{"Sku": "S1", "Qty": 2}, {"Sku": "S2", "Qty": 1}],
        "Origin": "shop",
    }
    assert flow.apply(ORDER) == MapResult(whole)  # creating is the default
    assert flow.apply(ORDER, creating=True) == MapResult(whole)
    assert flow.apply(ORDER, creating=False) == MapResult({"Status": "paid", "Number": "A-1"})


def test_a_rule_left_out_of_an_edit_is_not_read_at_all(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        tables:
          kinds: {values: {a: A}, unknown: skip}
          sizes: {values: {s: S}, unknown: error}
        fields:
          - {to: Number, from: number}
          - {to: Name, from: name, required: true, when: create}
          - {to: Kind, from: kind, transform: lookup, table: kinds, when: create}
          - {to: Size, from: size, transform: lookup, table: sizes, when: create}
          - {to: Price, from: price, transform: money, when: create}
          - {to: Comment, from: comment, default: "", when: create}
        """,
    )
    # No name (required), an unknown kind (skip) and size (error), a price that is no amount:
    # each would stop a create, none concerns an edit.
    odd = {"number": "A-1", "kind": "zzz", "size": "xxl", "price": "много"}
    assert flow.apply(odd, creating=False) == MapResult({"Number": "A-1"})
    with pytest.raises(MappingFailed, match="fields\\[1\\] Name: name: required"):
        flow.apply(odd)
    named = {**odd, "name": "Анна"}
    assert flow.apply(named) == MapResult(
        None, "fields[2] Kind: kind: 'zzz' is not in table 'kinds' (unknown: skip)"
    )
    assert flow.apply({"number": "A-1", "name": "Анна", "kind": "a"}) == MapResult(
        {"Number": "A-1", "Name": "Анна", "Kind": "A", "Comment": ""}  # default on create only
    )
    # An absent kind is not one the skip-table lists either (issue 12): skipped on a create.
    assert flow.apply({"number": "A-1", "name": "Анна"}) == MapResult(
        None, "fields[2] Kind: kind: absent, so not in table 'kinds' (unknown: skip)"
    )


def test_filters_apply_to_an_edit_as_to_a_create(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        filters:
          - {path: site, in: [shop]}
        fields:
          - {to: Number, from: number}
          - {to: Site, from: site, when: create}
        """,
    )
    skipped = MapResult(None, "filters[0]: site is 'other', not one of 'shop'")
    for creating in (True, False):
        assert flow.apply({"number": 1, "site": "other"}, creating=creating) == skipped
    assert flow.apply({"number": 1, "site": "shop"}, creating=False) == MapResult({"Number": 1})


def test_an_edit_with_only_create_rules_maps_to_an_empty_document(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, "fields:\n  - {to: 'Lines[0].Sku', from: sku, when: create}\n")
    assert flow.apply({"sku": "S1"}) == MapResult({"Lines": [{"Sku": "S1"}]})
    assert flow.apply({"sku": "S1"}, creating=False) == MapResult({})


def test_create_and_edit_results_are_independent(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, RULES)
    source = copy.deepcopy(ORDER)
    created = flow.apply(source).document
    assert created is not None
    created["Items"].append("changed")
    assert flow.apply(source).document == flow.apply(ORDER).document
    assert source == ORDER  # the source is never changed


def test_when_mistakes_are_named_with_file_line_and_rule(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """\
        fields:
          - {to: A, from: a, when: creat}
          - {to: B, from: b, when: [create]}
          - to: C
            from: c
            each:
              - {to: x, from: x, when: create}
              - {to: y, from: y, when: always}
          - {to: D, from: d, when: create}
          - {to: D, from: e}
          - {to: E, from: e, when: create, transfrom: lower}
        """,
    )
    choice = "Input should be 'always' or 'create'"
    inside = "`when` applies to a whole target: put it on the rule with `each`"
    assert findings(path) == [
        (6, "fields[0].when", choice),
        (7, "fields[1].when", choice),
        (11, "fields[2].each[0].when", inside),
        (12, "fields[2].each[1].when", inside),
        (14, "fields[4].to", "duplicate target 'D' (also fields[3] D)"),
        (
            15,
            "fields[5].transfrom",
            "unknown key 'transfrom' (a rule takes to, from, transform, required, default,"
            " invalid, when, each, filters; copy takes no parameters)",
        ),
    ]


def test_an_each_rule_names_when_among_its_keys(tmp_path: Path) -> None:
    path = write_flow(tmp_path, "fields:\n  - {to: X, from: a, each: [{to: y, from: y}], sep: 1}\n")
    [(_, _, message)] = findings(path)
    assert "when" in message


# A till sale as 1C's GetOrder gives it (connectors/onec/models.py order_state): the
# document in the shape retailcrm_order_to_onec.yaml writes, plus the customer's key.
SALE: dict[str, Any] = {
    "id": "10000000-0000-0000-0000-000000000007",
    "external_id": None,
    "number": "00-000007",
    "date": "2026-11-22T10:05:00+00:00",
    "status": "Выполнен",
    "version": "1",
    "document": {
        "number": "ЧК-000123",
        "date": "2026-11-22 13:05:00",
        "status": "Выполнен",
        "customer": {
            "phone": "8 (900) 000-00-01",
            "name": "Иван Петров",
            "email": "ivan@example.com",
            "card": "2000000000015",
            "retailcrm_external_id": "c-1",
        },
        "items": [
            {"sku": "SKU-1", "name": "Кофе", "quantity": 2, "price": "1500.00"},
            {"sku": "SKU-2", "quantity": "1", "price": "99.50"},
        ],
        "payments": [
            {"type": "Наличные", "amount": "1000.00"},
            {"type": "Прочее", "amount": "2099.50"},
        ],
        "payment": "Наличные",
        "delivery": {"type": "Самовывоз", "cost": "0.00", "address": "Тверская, 1"},
        "comment": "у кассы",
        "total": "3099.50",
        "bonuses_charged": "0.00",
    },
}
HEADER_ONLY = {"status": "complete", "number": "ЧК-000123", "createdAt": "2026-11-22 13:05:00"}


@pytest.fixture(scope="module")
def onec_orders() -> FlowMapping:
    return load_mapping(SHIPPED / "onec_order_to_retailcrm.yaml")


def test_the_shipped_1c_order_mapping_creates_the_whole_order(onec_orders: FlowMapping) -> None:
    assert onec_orders.apply(SALE, creating=True) == MapResult(
        {
            **HEADER_ONLY,
            "items": [
                {
                    "offer": {"externalId": "SKU-1"},
                    "productName": "Кофе",
                    "quantity": 2,
                    "initialPrice": 1500,
                },
                {"offer": {"externalId": "SKU-2"}, "quantity": 1, "initialPrice": 99.5},
            ],
            "discountManualAmount": 0,  # the order's discount and points charged: none
            "customer": {"externalId": "c-1"},
            "phone": "+79000000001",
            "firstName": "Иван Петров",
            "email": "ivan@example.com",
            "customerComment": "у кассы",
            "payments": [{"type": "cash", "amount": 1000}],  # "Прочее" has no RetailCRM type
            "delivery": {"code": "self-delivery", "cost": 0, "address": {"text": "Тверская, 1"}},
        }
    )


def test_the_shipped_1c_order_mapping_edits_the_header_alone(onec_orders: FlowMapping) -> None:
    assert onec_orders.apply(SALE, creating=False) == MapResult(HEADER_ONLY)
    # A write-back of an order from RetailCRM: 1C's document in the same shape, whatever
    # its items, customer or amounts now say, gives the same three keys.
    back = copy.deepcopy(SALE)
    back["external_id"] = "retailcrm-5003"
    back["document"]["items"] = [{"quantity": "lots"}]  # would fail a create
    back["document"]["customer"] = {"phone": "не телефон"}
    assert onec_orders.apply(back, creating=False) == MapResult(HEADER_ONLY)


def test_the_shipped_1c_order_mapping_without_a_customer_key_or_extras(
    onec_orders: FlowMapping,
) -> None:
    document = {
        "number": "ЧК-9",
        "status": "Новый",
        "customer": {"phone": "+79000000002"},
        "items": [{"sku": "SKU-2", "quantity": 1, "price": 800}],
    }
    result = onec_orders.apply({"id": "1", "status": "Новый", "document": document})
    assert result == MapResult(
        {
            "status": "new",
            "number": "ЧК-9",
            "items": [{"offer": {"externalId": "SKU-2"}, "quantity": 1, "initialPrice": 800}],
            "phone": "+79000000002",
        }
    )


def test_the_shipped_1c_order_mapping_keeps_an_item_without_a_sku_on_create(
    onec_orders: FlowMapping,
) -> None:
    """Issue 12: a line without a SKU is a line without a catalogue offer, not a loss."""
    sale = copy.deepcopy(SALE)
    del sale["document"]["items"][1]["sku"]
    sale["document"]["items"][1]["name"] = "Упаковка"
    created = onec_orders.apply(sale).document
    assert created is not None
    assert created["items"][1] == {"productName": "Упаковка", "quantity": 1, "initialPrice": 99.5}
    assert onec_orders.apply(sale, creating=False) == MapResult(HEADER_ONLY)


def run_map(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``bridge map ARGS`` in this process: (exit code, stdout, stderr)."""
    code = main(["map", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_bridge_map_shows_the_create_by_default_and_the_edit_with_edit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], onec_orders: FlowMapping
) -> None:
    sample = tmp_path / "sale.json"
    sample.write_text(json.dumps(SALE, ensure_ascii=False), encoding="utf-8")
    shipped = str(SHIPPED / "onec_order_to_retailcrm.yaml")
    code, out, err = run_map(capsys, shipped, str(sample))
    assert (code, err) == (0, "")
    created = json.loads(out)
    assert created == onec_orders.apply(SALE).document
    assert created["items"][0]["offer"] == {"externalId": "SKU-1"}
    code, out, err = run_map(capsys, shipped, str(sample), "--edit")
    assert (code, err, json.loads(out)) == (0, "", HEADER_ONLY)
    code, out, _ = run_map(capsys, shipped, str(sample), "--edit", "--json")
    assert (code, json.loads(out)) == (
        0,
        {"ok": True, "document": HEADER_ONLY, "skipped": None, "problems": []},
    )


def test_bridge_map_edit_does_not_trip_over_what_only_a_create_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = write_flow(
        tmp_path,
        "fields:\n  - {to: N, from: n}\n  - {to: Q, from: q, required: true, when: create}\n",
    )
    sample = tmp_path / "order.json"
    sample.write_text('{"n": 1}', encoding="utf-8")
    code, out, err = run_map(capsys, str(rules), str(sample))
    assert (code, out) == (1, "")
    assert f"{rules}:7: fields[1] Q: q: required, but the source has no value" in err
    code, out, err = run_map(capsys, str(rules), str(sample), "--edit")
    assert (code, json.loads(out), err) == (0, {"N": 1}, "")
