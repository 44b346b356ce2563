"""The ``[*]`` path step in rules: one value for a field, every value for join and ``each``.

RetailCRM reads an order's payments back as an object keyed by payment id, and an order
without payments as ``[]`` (PHP's empty array; reference/retailcrm-api.md §1.4, §2.2), so
the tests run every rule against both shapes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bridge.mapping import FlowMapping, MappingFailed, MapResult, check_mapping, load_mapping
from tests.support.mapping_files import findings, load_flow, write_flow

SHIPPED = Path(__file__).resolve().parents[2] / "mappings"

BY_ID = {"17": {"id": 17, "type": "cash", "amount": 100}, "18": {"id": 18, "type": "card"}}
AS_LIST = [{"id": 17, "type": "cash", "amount": 100}, {"id": 18, "type": "card"}]


def failure(flow: FlowMapping, document: dict[str, Any]) -> str:
    with pytest.raises(MappingFailed) as caught:
        flow.apply(document)
    return str(caught.value)


FIELDS = """\
tables:
  types: {values: {cash: Наличные, card: Карта}, unknown: default, default: Прочее}
fields:
  - {to: type, from: "payments[*].type", transform: lookup, table: types}
  - {to: amount, from: "payments[*].amount", transform: money, default: "0.00"}
  - {to: first, from: "payments[*].id", required: true}
"""


@pytest.mark.parametrize("payments", [BY_ID, AS_LIST], ids=["keyed by id", "list"])
def test_a_field_rule_reads_the_first_value_in_document_order(
    tmp_path: Path, payments: Any
) -> None:
    flow = load_flow(tmp_path, FIELDS)
    assert flow.apply({"payments": payments}).document == {
        "type": "Наличные",
        "amount": "100.00",
        "first": 17,
    }


def test_the_first_value_is_the_first_the_path_yields(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, FIELDS)
    # The first payment has no amount: the amount is the second's, the type the first's.
    payments = {"18": {"id": 18, "type": "card"}, "17": {"id": 17, "amount": 5}}
    assert flow.apply({"payments": payments}).document == {
        "type": "Карта",
        "amount": "5.00",
        "first": 18,
    }


@pytest.mark.parametrize("payments", [[], {}, None, "cash"], ids=["[]", "{}", "null", "text"])
def test_no_value_is_missing_default_required_or_left_out(tmp_path: Path, payments: Any) -> None:
    flow = load_flow(tmp_path, FIELDS)
    message = failure(flow, {"payments": payments})
    assert message.endswith(
        ":10: fields[2] first: payments[*].id: required, but the source has no value"
    )
    body = FIELDS.replace(", required: true", "")
    assert load_flow(tmp_path, body).apply({"payments": payments}).document == {"amount": "0.00"}


def test_a_bad_value_names_the_wildcard_path(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, FIELDS)
    payments = {"17": {"id": 17, "type": "cash", "amount": "lots"}}
    assert failure(flow, {"payments": payments}).endswith(
        ":9: fields[1] amount: payments[*].amount: 'lots' is not an amount"
    )


def test_nested_wildcards(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, "fields:\n  - {to: t, from: 'orders[*].payments[*].type'}\n")
    orders = [{"payments": []}, {"payments": BY_ID}]
    assert flow.apply({"orders": orders}).document == {"t": "cash"}
    assert flow.apply({"orders": [{"payments": []}]}).document == {}


def test_join_takes_every_value(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        fields:
          - {to: types, from: "payments[*].type", transform: join, separator: ", "}
          - {to: label, from: [number, "payments[*].type"], transform: join}
        """,
    )
    for payments in (BY_ID, AS_LIST):
        document = {"number": "A1", "payments": payments}
        assert flow.apply(document).document == {"types": "cash, card", "label": "A1 cash card"}
    assert flow.apply({"number": "A1", "payments": []}).document == {"label": "A1"}


EACH = """\
tables:
  types: {values: {cash: Наличные, card: Карта}, unknown: error}
fields:
  - to: payments
    from: "payments[*]"
    filters: [{path: status, not_in: [cancelled]}]
    each:
      - {to: type, from: type, transform: lookup, table: types}
      - {to: amount, from: amount, transform: money, default: "0.00"}
"""


@pytest.mark.parametrize("payments", [BY_ID, AS_LIST], ids=["keyed by id", "list"])
def test_each_maps_every_value_of_an_object_or_item_of_a_list(
    tmp_path: Path, payments: Any
) -> None:
    flow = load_flow(tmp_path, EACH)
    assert flow.apply({"payments": payments}).document == {
        "payments": [
            {"type": "Наличные", "amount": "100.00"},
            {"type": "Карта", "amount": "0.00"},
        ]
    }


def test_each_over_none_absent_and_item_filters(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, EACH)
    assert flow.apply({"payments": []}).document == {"payments": []}  # PHP's empty object
    assert flow.apply({"payments": {}}).document == {"payments": []}
    assert flow.apply({}).document == {}  # absent: left out, as for a list
    assert flow.apply({"payments": None}).document == {}
    cancelled = {"17": {"type": "cash", "status": "cancelled"}, "18": {"type": "card"}}
    assert flow.apply({"payments": cancelled}).document == {
        "payments": [{"type": "Карта", "amount": "0.00"}]
    }
    with_default = EACH.replace('from: "payments[*]"', 'from: "payments[*]"\n    default: []')
    assert load_flow(tmp_path, with_default).apply({}).document == {"payments": []}


def test_each_errors_name_the_item_where_it_was_found(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, EACH)
    odd = {"17": {"type": "cash"}, "18": {"type": "cheque"}}
    assert failure(flow, {"payments": odd}).endswith(
        ":12: fields[0].each[0] type: payments.18.type: 'cheque' is not in table 'types'"
    )
    assert failure(flow, {"payments": [{"type": "cash"}, {"type": "cheque"}]}).endswith(
        "payments[1].type: 'cheque' is not in table 'types'"
    )
    assert failure(flow, {"payments": {"17": "cash"}}).endswith(
        ":8: fields[0] payments: payments[*]: payments.17 is 'cash', not an object"
    )
    assert failure(flow, {"payments": "cash"}).endswith(
        ":8: fields[0] payments: payments[*]: 'cash', not a list or an object"
    )
    omitted = EACH.replace('from: "payments[*]"', 'from: "payments[*]"\n    invalid: omit')
    assert load_flow(tmp_path, omitted).apply({"payments": "cash"}).document == {}


def test_each_over_nested_wildcards_and_inside_each(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        fields:
          - to: all
            from: "orders[*].payments[*]"
            each: [{to: id, from: id}]
          - to: orders
            from: "orders[*]"
            each:
              - to: payments
                from: "payments[*]"
                each: [{to: amount, from: amount, transform: money}]
        """,
    )
    orders: dict[str, dict[str, Any]] = {"5": {"payments": BY_ID}, "6": {"payments": []}}
    assert flow.apply({"orders": orders}).document == {
        "all": [{"id": 17}, {"id": 18}],
        "orders": [{"payments": [{"amount": "100.00"}, {}]}, {"payments": []}],
    }
    orders["6"]["payments"] = {"20": {"amount": "x"}}
    assert failure(flow, {"orders": orders}).endswith(
        "fields[1].each[0].each[0] amount: orders.6.payments.20.amount: 'x' is not an amount"
    )


def test_each_without_wildcard_still_wants_a_list_and_says_how(tmp_path: Path) -> None:
    flow = load_flow(tmp_path, EACH.replace('"payments[*]"', "payments"))
    assert flow.apply({"payments": AS_LIST}).document is not None
    assert failure(flow, {"payments": BY_ID}).endswith(
        "payments: an object, not a list (write payments[*] to map its values)"
    )


def test_filters_read_the_first_value(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        filters:
          - {path: "payments[*].type", in: [cash]}
        fields:
          - {to: n, from: n}
        """,
    )
    assert flow.apply({"n": 1, "payments": BY_ID}).document == {"n": 1}
    assert flow.apply({"n": 1, "payments": []}) == MapResult(
        None, "filters[0]: payments[*].type is absent, not one of 'cash'"
    )


def test_wildcard_mistakes_are_named_with_file_line_and_rule(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """\
        filters:
          - {path: "payments.*.type", exists: true}
        fields:
          - {to: "lines[*].type", from: "payments[*].type"}
          - {to: a, from: "payments[**].type"}
          - to: b
            from: "payments[*]"
            each:
              - {to: "c[*]", from: "x[*]"}
        """,
    )
    one_place = "[*] reads every item or value; a target names one place, such as [0]"
    assert findings(path) == [
        (
            6,
            "filters[0].path",
            "malformed path 'payments.*.type': '*' is not a key; every item or value of a key"
            " is written with [*], as in payments[*].type",
        ),
        (8, "fields[0].to", one_place),
        (
            9,
            "fields[1].from",
            "malformed path 'payments[**].type': [**] is not a list index (0, 1, 2 …) or [*]",
        ),
        (13, "fields[2].each[0].to", one_place),
    ]


def test_every_shipped_mapping_loads() -> None:
    files = sorted(SHIPPED.glob("*.yaml"))
    assert files
    for path in files:
        assert check_mapping(path) == [], path


# An order as the RetailCRM emulator answers GET /api/v5/orders/{id} (render_payments).
ORDER = {
    "id": 5003,
    "number": "W-1",
    "site": "shop",
    "status": "new",
    "createdAt": "2026-03-02 14:05:09",
    "totalSumm": 1500,
    "customer": {"id": 1, "externalId": "c-1", "phones": [{"number": "+79000000001"}]},
    "customFields": [],
    "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 1500}],
}


@pytest.mark.parametrize(
    ("payments", "payment", "mapped"),
    [
        (
            {"4": {"id": 4, "type": "bank-card", "amount": 1000, "status": "paid"}},
            "Банковская карта",
            [{"type": "Банковская карта", "amount": "1000.00"}],
        ),
        (
            {
                "4": {"id": 4, "type": "cash", "amount": 1000},
                "5": {"id": 5, "type": "gift-card", "amount": 500},  # unknown: default
            },
            "Наличные",
            [
                {"type": "Наличные", "amount": "1000.00"},
                {"type": "Прочее", "amount": "500.00"},
            ],
        ),
        ([{"type": "bank-transfer", "amount": 1500}], "Безналичный расчет", None),  # as written
        ([], None, []),  # PHP's empty object
    ],
)
def test_the_shipped_order_mapping_reads_payments_in_either_shape(
    payments: Any, payment: str | None, mapped: list[dict[str, str]] | None
) -> None:
    flow = load_mapping(SHIPPED / "retailcrm_order_to_onec.yaml")
    document = flow.apply({**ORDER, "payments": payments}).document
    assert document is not None
    assert document.get("payment") == payment
    if mapped is not None:
        assert document["payments"] == mapped
    assert "payments" not in (flow.apply(ORDER).document or {})  # none at all: left out
