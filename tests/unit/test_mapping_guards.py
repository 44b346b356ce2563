"""Guards and filters never let through, on a value they cannot read, a change they exist to
stop (issue 12, point 3).

A guard is a filter (``in``, ``exists: true``) or a lookup into a table with
``unknown: skip`` (the shipped Bitrix flows' ``when: create`` rule into an empty table). The
source's value may be absent: a change whose source could not be re-read reaches the
mapping with the push's own data only (1C's webhook for an order its ``GetOrder`` does not
know). Then a filter does not hold and a skip-table skips, as for a value it does not list.

Every shipped mapping is audited below: each of its guards is tested with the value absent.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.mapping import FlowMapping, MappingFailed, MapResult, load_mapping
from tests.support.mapping_files import load_flow
from tests.unit.test_bitrix_mappings import (
    CONTACT,
    CRM_CUSTOMER,
    CRM_ORDER,
    DEAL,
    ONEC_CUSTOMER,
    ONEC_ORDER,
)

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"

GUARD = """\
tables:
  only_known: {values: {}, unknown: skip}
  kinds: {values: {a: A}, unknown: %s}
fields:
  - {to: guard, from: id, transform: lookup, table: only_known, when: create}
  - {to: kind, from: kind, transform: lookup, table: kinds}
  - {to: number, from: number}
"""


# -- the language ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document",
    [{"number": "1"}, {"id": None, "number": "1"}, {"id": "", "number": "1"}],
    ids=["absent", "null", "empty"],
)
def test_a_skip_table_skips_a_change_whose_value_is_absent(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    flow = load_flow(tmp_path, GUARD % "keep")
    result = flow.apply(document)
    assert result.document is None
    if document.get("id") == "":  # an empty text is a value: not listed, so skipped too
        assert result.skipped == (
            "fields[0] guard: id: '' is not in table 'only_known' (unknown: skip)"
        )
    else:
        assert result.skipped == (
            "fields[0] guard: id: absent, so not in table 'only_known' (unknown: skip)"
        )
    # The guard is `when: create`: a write to what the target holds does not read it.
    assert flow.apply(document, creating=False) == MapResult({"number": "1"})


def test_a_skip_table_skips_on_a_star_path_that_yields_nothing(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        tables:
          types: {values: {cash: Наличные}, unknown: skip}
        fields:
          - {to: payment, from: "payments[*].type", transform: lookup, table: types}
        """,
    )
    assert flow.apply({"payments": {"7": {"type": "cash"}}}).document == {"payment": "Наличные"}
    nothing: list[Any] = [{}, [], None, {"7": {"amount": 1}}]
    for payments in nothing:
        result = flow.apply({"payments": payments})
        assert result.document is None, payments
        assert "payments[*].type: absent" in str(result.skipped)


def test_a_skip_table_skips_a_value_invalid_omit_leaves_out(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        tables:
          only_known: {values: {'7': seven}, unknown: skip}
        fields:
          - {to: guard, from: id, transform: lookup, table: only_known, invalid: omit}
        """,
    )
    assert flow.apply({"id": 7}).document == {"guard": "seven"}
    assert "absent, so not in table" in str(flow.apply({"id": {"an": "object"}}).skipped)


def test_inside_each_an_absent_value_of_a_skip_table_skips_the_whole_change(
    tmp_path: Path,
) -> None:
    flow = load_flow(
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
    reason = "items[1].unit: absent, so not in table 'units' (unknown: skip)"
    assert flow.apply({"items": [{"unit": "pcs"}, {"sku": "X"}]}) == MapResult(
        None, f"fields[0].each[0] unit: {reason}"
    )


def test_default_and_required_come_before_the_skip(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        tables:
          s: {values: {new: Новый}, unknown: skip}
        fields:
          - {to: status, from: status, transform: lookup, table: s, default: Новый}
          - {to: stage, from: stage, transform: lookup, table: s, required: true}
        """,
    )
    assert flow.apply({"stage": "new"}).document == {"status": "Новый", "stage": "Новый"}
    with pytest.raises(MappingFailed, match="stage: required, but the source has no value"):
        flow.apply({})


@pytest.mark.parametrize("unknown", ["error", "keep", "default, default: '?'"])
def test_other_tables_leave_an_absent_value_out_as_before(tmp_path: Path, unknown: str) -> None:
    """Only `skip` decides whether the change flows; the others say what to write."""
    flow = load_flow(tmp_path, (GUARD % unknown).replace("- {to: guard", "# - {to: guard"))
    assert flow.apply({"number": "1"}) == MapResult({"number": "1"})


def test_filters_on_an_absent_value(tmp_path: Path) -> None:
    """`in` and `exists: true` do not hold on an absent value; `not_in` holds (an absent
    value is none of those it lists: add `exists: true` to stop it too)."""
    flow = load_flow(
        tmp_path,
        """\
        filters:
          - {path: site, in: [shop]}
          - {path: customer.id, exists: true}
          - {path: channel, not_in: [test]}
        fields:
          - {to: site, from: site}
        """,
    )
    whole = {"site": "shop", "customer": {"id": 1}}
    assert flow.apply(whole).document == {"site": "shop"}
    assert flow.apply({"customer": {"id": 1}}).skipped == (
        "filters[0]: site is absent, not one of 'shop'"
    )
    assert flow.apply({"site": "shop"}).skipped == "filters[1]: customer.id is absent"
    assert flow.apply(whole | {"channel": "test"}).skipped == (
        "filters[2]: channel is 'test', excluded by not_in"
    )


# -- every shipped mapping ------------------------------------------------------------------


def without(sample: dict[str, Any], path: str) -> dict[str, Any]:
    """``sample`` with the value at dotted ``path`` (``fm.0.typeId``) deleted."""
    out = copy.deepcopy(sample)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    del node[int(last) if isinstance(node, list) else last]
    return out


def flow(name: str) -> FlowMapping:
    return load_mapping(MAPPINGS / name)


# A 1C till sale's GetOrder (no external id: entered in 1C) and a RetailCRM call-centre order.
TILL_SALE = copy.deepcopy(ONEC_ORDER) | {"external_id": None, "status": "Новый"}
RETAILCRM_ORDER = copy.deepcopy(CRM_ORDER) | {
    "externalId": None,
    "customer": {"phones": [{"number": "+79000000001"}], "firstName": "Иван"},
}
ONEC_PERSON = copy.deepcopy(ONEC_CUSTOMER) | {"external_id": None}
EXAMPLES = MAPPINGS.parent / "examples"
CORPORATE = json.loads((EXAMPLES / "retailcrm_corporate_customer.json").read_text(encoding="utf-8"))

# (file, what the guard stops, a sample that passes it or that it stops by design, the
# value deleted). Every shipped mapping's every filter and skip-table guard is here.
GUARDS: list[tuple[str, str, dict[str, Any], str]] = [
    ("bitrix_customer_to_onec.yaml", "a contact with no phone", CONTACT, "fm.0.typeId"),
    ("bitrix_customer_to_onec.yaml", "a contact with no phone", CONTACT, "fm"),
    ("bitrix_customer_to_retailcrm.yaml", "a contact with no phone", CONTACT, "fm.0.typeId"),
    ("bitrix_customer_to_retailcrm.yaml", "a contact with no phone", CONTACT, "fm"),
    ("bitrix_order_to_onec.yaml", "another pipeline's deal", DEAL, "categoryId"),
    ("bitrix_order_to_retailcrm.yaml", "another pipeline's deal", DEAL, "categoryId"),
    ("onec_customer_to_bitrix.yaml", "a customer without a card", ONEC_PERSON, "card"),
    ("onec_customer_to_bitrix.yaml", "a contact Bitrix does not hold", ONEC_PERSON, "customer_id"),
    ("onec_customer_to_retailcrm.yaml", "a customer without a phone", ONEC_PERSON, "phone"),
    ("onec_customer_to_retailcrm.yaml", "a customer 1C does not hold", ONEC_PERSON, "customer_id"),
    ("onec_order_to_bitrix.yaml", "a deal Bitrix does not hold", TILL_SALE, "id"),
    ("onec_order_to_retailcrm.yaml", "an order 1C does not hold", TILL_SALE, "id"),
    ("retailcrm_customer_to_bitrix.yaml", "a contact Bitrix does not hold", CRM_CUSTOMER, "id"),
    ("retailcrm_customer_to_onec.yaml", "a customer without a phone", CRM_CUSTOMER, "phones"),
    ("retailcrm_order_to_bitrix.yaml", "a deal Bitrix does not hold", RETAILCRM_ORDER, "id"),
    ("retailcrm_order_to_onec.yaml", "an order without a status", RETAILCRM_ORDER, "status"),
    (
        "retailcrm_corporate_customer_to_onec.yaml",
        "a corporate customer whose contact person has no phone",
        CORPORATE,
        "mainCustomerContact.customer.phones",
    ),
]


@pytest.mark.parametrize(
    ("name", "stops", "sample", "path"),
    GUARDS,
    ids=[f"{g[0].removesuffix('.yaml')}: {g[3]}" for g in GUARDS],
)
def test_each_guard_stops_a_change_whose_value_is_absent(
    name: str, stops: str, sample: dict[str, Any], path: str
) -> None:
    mapping = flow(name)
    result = mapping.apply(without(sample, path))
    assert result.document is None, f"{name} let through {stops}: {result.document}"
    assert result.skipped, stops
    field = path.split(".", maxsplit=1)[0]
    assert field in result.skipped, result.skipped


def test_every_shipped_mapping_is_audited() -> None:
    shipped = {p.name for p in MAPPINGS.glob("*.yaml")}
    assert shipped == {g[0] for g in GUARDS}
