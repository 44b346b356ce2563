"""Applying mappings: tables, filters, each, absent values, and errors naming the rule."""

from __future__ import annotations

import copy
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.errors import PermanentError
from bridge.mapping import FlowMapping, MappingFailed, MapResult, load_mapping

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mappings"
HEADER = "version: 1\nsource: shop\nentity: order\ntarget: crm\n"


def mapping(tmp_path: Path, body: str) -> FlowMapping:
    path = tmp_path / "shop_order_to_crm.yaml"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return load_mapping(path)


def failure(flow: FlowMapping, document: dict[str, Any]) -> MappingFailed:
    with pytest.raises(MappingFailed) as caught:
        flow.apply(document)
    return caught.value


@pytest.fixture(scope="module")
def example() -> FlowMapping:
    return load_mapping(FIXTURES / "retailcrm_order_to_onec.yaml")


@pytest.fixture
def order() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "retailcrm_order.json").read_text("utf-8"))
    return data


def test_the_example_order(example: FlowMapping, order: dict[str, Any]) -> None:
    before = copy.deepcopy(order)
    assert example.apply(order) == MapResult(
        {
            "Number": "101A",
            "Status": "Собирается",
            "Customer": {"Phone": "+79000000001", "Name": "Анна Петрова"},
            "Total": "2349.50",
            "Date": "2026-03-02T14:05:09",
            "Source": "retailcrm",
            "Comment": "",
            "Payment": "Карта",
            "Delivery": "pickup-point",  # unknown: keep
            "Paid": False,
            "Items": [{"Sku": "SKU-1", "Quantity": 2, "Price": "999.75"}],  # cancelled left out
        }
    )
    assert order == before  # the source is never changed


def test_mapping_failed_is_a_permanent_error_naming_file_line_rule_and_value(
    example: FlowMapping, order: dict[str, Any]
) -> None:
    order["status"] = "weird"
    error = failure(example, order)
    assert isinstance(error, PermanentError)  # the dispatcher dead-letters it
    assert str(error) == (
        f"{FIXTURES / 'retailcrm_order_to_onec.yaml'}:24: fields[1] Status:"
        " status: 'weird' is not in table 'statuses'"
    )
    assert error.rule == "fields[1] Status"
    assert error.reason == "status: 'weird' is not in table 'statuses'"


def test_errors_inside_each_name_the_item(example: FlowMapping, order: dict[str, Any]) -> None:
    order["items"][0]["quantity"] = "lots"
    assert str(failure(example, order)).endswith(
        ":40: fields[11].each[1] Quantity: items[0].quantity: 'lots' is not a number"
    )
    order["items"] = {"not": "a list"}
    message = str(failure(example, order))
    assert message.endswith(
        ":34: fields[11] Items: items: an object, not a list (write items[*] to map its values)"
    )
    order["items"] = ["text"]
    assert str(failure(example, order)).endswith("items: [0] is 'text', not an object")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"site": "other"}, "filters[0]: site is 'other', not one of 'shop'"),
        ({"site": None}, "filters[0]: site is absent, not one of 'shop'"),
        ({"status": "draft"}, "filters[1]: status is 'draft', excluded by not_in"),
        ({"customer": {"firstName": "Анна"}}, "filters[2]: customer.id is absent"),
    ],
)
def test_filters_skip_with_a_reason(
    example: FlowMapping, order: dict[str, Any], change: dict[str, Any], reason: str
) -> None:
    order.update(change)
    assert example.apply(order) == MapResult(None, reason)


def test_filters_compare_as_text_and_exists_false(tmp_path: Path) -> None:
    flow = mapping(
        tmp_path,
        """\
        filters:
          - {path: site, in: [1, shop]}
          - {path: deleted, exists: false}
        fields:
          - {to: site, from: site}
        """,
    )
    assert flow.apply({"site": "1"}).document == {"site": "1"}
    assert flow.apply({"site": 1.0}).document == {"site": 1.0}
    assert flow.apply({"site": "shop", "deleted": True}).skipped == "filters[1]: deleted is present"


TABLE_RULES = """\
tables:
  s: {values: {new: Новый, '2': Второй}, unknown: %s}
fields:
  - {to: status, from: status, transform: lookup, table: s}
  - {to: number, from: number}
"""


def test_unknown_error(tmp_path: Path) -> None:
    flow = mapping(tmp_path, TABLE_RULES % "error")
    assert flow.apply({"status": 2}).document == {"status": "Второй"}
    assert str(failure(flow, {"status": "odd"})).endswith(
        ":8: fields[0] status: status: 'odd' is not in table 's'"
    )


def test_unknown_error_wins_over_invalid_omit(tmp_path: Path) -> None:
    body = (TABLE_RULES % "error").replace("table: s}", "table: s, invalid: omit}")
    assert "not in table 's'" in str(failure(mapping(tmp_path, body), {"status": "odd"}))


def test_unknown_skip(tmp_path: Path) -> None:
    flow = mapping(tmp_path, TABLE_RULES % "skip")
    assert flow.apply({"status": "odd", "number": 1}) == MapResult(
        None, "fields[0] status: status: 'odd' is not in table 's' (unknown: skip)"
    )


def test_unknown_keep(tmp_path: Path) -> None:
    flow = mapping(tmp_path, TABLE_RULES % "keep")
    assert flow.apply({"status": "odd"}).document == {"status": "odd"}


def test_unknown_default(tmp_path: Path) -> None:
    body = (TABLE_RULES % "default").replace("default}", "default, default: '?'}")
    flow = mapping(tmp_path, body)
    assert flow.apply({"status": "odd"}).document == {"status": "?"}


def test_a_table_never_matches_objects(tmp_path: Path) -> None:
    flow = mapping(tmp_path, TABLE_RULES % "keep")
    assert str(failure(flow, {"status": {"code": "new"}})).endswith(
        "status: an object is not a plain value (text or number)"
    )


def test_absent_values_are_left_out_unless_default_or_required(tmp_path: Path) -> None:
    flow = mapping(
        tmp_path,
        """\
        fields:
          - {to: a, from: a}
          - {to: b, from: b, default: none}
          - {to: c, from: c.d, transform: money, default: "0.00"}
          - {to: e, from: e, required: true}
        """,
    )
    assert flow.apply({"e": 1}).document == {"b": "none", "c": "0.00", "e": 1}
    assert flow.apply({"a": None, "c": {"d": 5}, "e": 1}).document == {
        "b": "none",
        "c": "5.00",
        "e": 1,
    }
    assert str(failure(flow, {"a": 1})).endswith(
        ":9: fields[3] e: e: required, but the source has no value"
    )


def test_invalid_omit_and_keep(tmp_path: Path) -> None:
    flow = mapping(
        tmp_path,
        """\
        fields:
          - {to: phone, from: phone, transform: phone, invalid: omit}
          - {to: total, from: total, transform: money, invalid: keep}
          - {to: date, from: date, transform: date, invalid: omit, default: null}
          - {to: need, from: need, transform: number, invalid: omit, required: true}
        """,
    )
    document = {"phone": "123", "total": "n/a", "date": "never", "need": 1}
    assert flow.apply(document).document == {"total": "n/a", "date": None, "need": 1}
    document["need"] = "x"  # omitted, but required: the conversion's reason is given
    assert str(failure(flow, document)).endswith("fields[3] need: need: 'x' is not a number")


def test_each_with_item_filters_and_list_targets(tmp_path: Path) -> None:
    flow = mapping(
        tmp_path,
        """\
        fields:
          - {to: "phones[0].number", from: phone, transform: phone}
          - {to: "phones[1].number", from: phone2, transform: phone}
          - to: lines
            from: items
            filters: [{path: kind, not_in: [service]}]
            each:
              - {to: sku, from: sku}
              - {to: "codes[0]", from: barcode}
              - {to: total.amount, from: price, transform: money}
        """,
    )
    source = {
        "phone2": "8 900 000-00-02",  # phones[0] absent: the list closes the gap
        "items": [
            {"sku": "A", "barcode": "460", "price": 1},
            {"sku": "S", "kind": "service"},
            {"sku": "B"},
        ],
    }
    assert flow.apply(source).document == {
        "phones": [{"number": "+79000000002"}],
        "lines": [{"sku": "A", "codes": ["460"], "total": {"amount": "1.00"}}, {"sku": "B"}],
    }
    assert flow.apply({"items": []}).document == {"lines": []}
    assert flow.apply({}).document == {}


def test_skip_inside_each_skips_the_whole_change(tmp_path: Path) -> None:
    flow = mapping(
        tmp_path,
        """\
        tables:
          units: {values: {pcs: шт}, unknown: skip}
        fields:
          - to: lines
            from: items
            each:
              - {to: unit, from: unit, transform: lookup, table: units}
        """,
    )
    assert flow.apply({"items": [{"unit": "pcs"}]}).document == {"lines": [{"unit": "шт"}]}
    assert flow.apply({"items": [{"unit": "pcs"}, {"unit": "kg"}]}) == MapResult(
        None, "fields[0].each[0] unit: items[1].unit: 'kg' is not in table 'units' (unknown: skip)"
    )


def test_the_source_must_be_an_object(example: FlowMapping) -> None:
    assert "the source must be an object" in str(failure(example, ["x"]))  # type: ignore[arg-type]


def test_outputs_are_independent(tmp_path: Path) -> None:
    flow = mapping(tmp_path, "fields:\n  - {to: c, transform: const, value: {a: [1]}}\n")
    first = flow.apply({}).document
    assert first is not None
    first["c"]["a"].append(2)
    assert flow.apply({}).document == {"c": {"a": [1]}}


SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=12)
JSON = st.recursive(
    SCALARS | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
KEYS = ["number", "site", "status", "createdAt", "totalSumm", "fullPaid", "customer", "items"]


@settings(max_examples=150, deadline=None)
@given(
    base=st.fixed_dictionaries({"site": st.just("shop"), "customer": st.just({"id": 1})}),
    noise=st.dictionaries(st.sampled_from(KEYS), JSON, max_size=6),
)
def test_any_json_maps_skips_or_fails_by_name(
    example: FlowMapping, base: dict[str, Any], noise: dict[str, Any]
) -> None:
    failed: MappingFailed | None = None
    try:
        result = example.apply({**base, **noise})
    except MappingFailed as exc:
        failed = exc
    if failed is not None:
        assert str(failed).startswith(f"{FIXTURES / 'retailcrm_order_to_onec.yaml'}:")
    else:
        assert (result.document is None) != (result.skipped is None)
        json.dumps(result.document, allow_nan=False)  # only JSON comes out


def test_a_source_nested_too_deeply_fails_by_name(tmp_path: Path) -> None:
    flow = mapping(tmp_path, "fields:\n  - {to: v, from: v}\n")
    deep: dict[str, Any] = {}
    for _ in range(5000):
        deep = {"x": deep}
    assert str(failure(flow, {"v": deep})).endswith("(document): nested too deeply")
