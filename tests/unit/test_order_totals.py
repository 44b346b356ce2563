"""Every line reaches the target, and the lines add up to its total (issue 12, point 10).

Over random orders, for every shipped order mapping (``mappings/*_order_to_*.yaml``): the
target gets as many lines as the source has, each with its name, price, quantity and
discount (a line without a catalogue product, or whose product has no external id,
included), and lines + delivery − discounts equal the total the target receives, exactly
(Decimal):

- 1C's document (CONTRACT.md: the shape the mapping files agree with the 1C developer)
  states its total: Σ (price − discount) × quantity + delivery.cost − discount −
  bonuses_charged = total, each line's ``discount`` per unit as RetailCRM's
  ``discountManualAmount`` (retailcrm-api.md §10.6).
- RetailCRM computes its total from what it receives (§2.2, §10.6); the sandbox's own
  arithmetic (``connectors/retailcrm/emulator/orders.py``) computes it here.
- A Bitrix deal carries no lines (crm.item.get has no product rows): it receives the amount
  (``opportunity``). The flows into Bitrix create nothing (their guard), so they are tried
  with the guard deleted, as their comments say to create deals.
"""

from __future__ import annotations

import copy
import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.mapping import FlowMapping, MappingFailed, check_mapping, load_mapping
from connectors.retailcrm.emulator.orders import normalize_order
from tests.support.mapping_files import load_flow

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
CENT = Decimal("0.01")
ORDER_FILES = sorted(p.name for p in MAPPINGS.glob("*_order_to_*.yaml"))

amounts = st.decimals(min_value=0, max_value=99999, places=2, allow_nan=False)
quantities = st.integers(min_value=1, max_value=12)
names = st.text(alphabet="абвгдежзик ABC-1", min_size=1, max_size=12).filter(str.strip)


def loaded(name: str, folder: Path) -> FlowMapping:
    """A shipped mapping; a flow into Bitrix without its guard (the first rule, create-only)."""
    path = MAPPINGS / name
    if not name.endswith("_to_bitrix.yaml"):
        return load_mapping(path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert data["fields"][0]["to"] == "guard"
    data["fields"] = data["fields"][1:]
    copy_path = folder / name
    copy_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert check_mapping(copy_path) == []
    return load_mapping(copy_path)


@pytest.fixture(scope="module")
def flows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FlowMapping]:
    folder = tmp_path_factory.mktemp("order_totals")
    return {name: loaded(name, folder) for name in ORDER_FILES}


def as_json(value: Any) -> Any:
    """What a JSON API answers: Decimal amounts as JSON numbers."""
    return json.loads(json.dumps(value, default=float))


def exact(value: Any) -> Decimal:
    """A JSON number or decimal text as an exact Decimal (floats by their shortest repr)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(str(value))


# -- sources --------------------------------------------------------------------------------


@st.composite
def onec_lines(draw: st.DrawFn) -> dict[str, Any]:
    price = draw(amounts)
    line: dict[str, Any] = {
        "name": draw(names),
        "quantity": draw(quantities),
        "price": str(price),
        "discount": str(draw(st.decimals(min_value=0, max_value=price, places=2))),
    }
    if draw(st.booleans()):
        line["sku"] = draw(st.sampled_from(["SKU-1", "SKU-2", "ЯБЛ-7"]))
    return line


@st.composite
def onec_orders(draw: st.DrawFn) -> dict[str, Any]:
    """1C's GetOrder of an order entered in 1C (a till sale: no external id)."""
    lines = draw(st.lists(onec_lines(), min_size=1, max_size=6))
    goods = sum(
        ((Decimal(i["price"]) - Decimal(i["discount"])) * i["quantity"] for i in lines),
        Decimal(0),
    )
    delivery = draw(amounts)
    discount = draw(st.decimals(min_value=0, max_value=goods, places=2))
    bonuses = draw(st.decimals(min_value=0, max_value=goods - discount, places=2))
    total = goods + delivery - discount - bonuses
    document = {
        "number": "ЧК-1",
        "status": "Новый",
        "items": lines,
        "delivery": {"type": "Курьер", "cost": str(delivery)},
        "discount": str(discount),
        "bonuses_charged": str(bonuses),
        "total": str(total),
    }
    return {"id": "10000000-0000-0000-0000-000000000001", "external_id": None, "number": "00-1",
            "status": "Новый", "version": "1", "document": document}  # fmt: skip


@st.composite
def retailcrm_lines(draw: st.DrawFn) -> dict[str, Any]:
    price = draw(amounts)
    line: dict[str, Any] = {
        "quantity": draw(quantities),
        "initialPrice": price,
        "discountManualAmount": draw(st.decimals(min_value=0, max_value=price, places=2)),
    }
    kind = draw(st.sampled_from(["catalogue", "no external id", "no product"]))
    if kind == "catalogue":
        line["offer"] = {"externalId": "SKU-1", "name": draw(names), "id": 11}
    elif kind == "no external id":  # a catalogue product the shop's catalogue has no id for
        line["offer"] = {"id": 12, "name": draw(names)}
    if kind != "catalogue" or draw(st.booleans()):
        line["productName"] = draw(names)
    return line


@st.composite
def retailcrm_orders(draw: st.DrawFn) -> dict[str, Any]:
    """RetailCRM's GET /orders/{id} of a call-centre order, totals as RetailCRM computes."""
    lines = draw(st.lists(retailcrm_lines(), min_size=1, max_size=6))
    goods = sum(
        ((i["initialPrice"] - i["discountManualAmount"]) * i["quantity"] for i in lines),
        Decimal(0),
    )
    order: dict[str, Any] = {
        "id": 5003,
        "number": "5003A",
        "site": "shop",
        "status": "new",
        "createdAt": "2026-11-23 08:03:32",
        "items": lines,
        "discountManualAmount": draw(st.decimals(min_value=0, max_value=goods, places=2)),
        "delivery": {"code": "courier", "cost": draw(amounts)},
    }
    counter = itertools.count(1)
    normalize_order(order, lambda _kind: next(counter))
    return as_json(order)  # type: ignore[no-any-return]


@st.composite
def bitrix_deals(draw: st.DrawFn) -> dict[str, Any]:
    """crm.item.get of a deal of the shop's pipeline (amounts as JSON numbers)."""
    return {
        "id": 7,
        "title": draw(names),
        "categoryId": 0,
        "stageId": "NEW",
        "currencyId": "RUB",
        "opportunity": float(draw(amounts)),
        "createdTime": "2026-11-23T08:03:32+03:00",
    }


SOURCES = {"onec": onec_orders(), "retailcrm": retailcrm_orders(), "bitrix": bitrix_deals()}


def source_total(system: str, source: dict[str, Any]) -> Decimal:
    if system == "onec":
        return Decimal(source["document"]["total"])
    if system == "retailcrm":
        return exact(source["totalSumm"])
    return exact(source["opportunity"])


def source_lines(system: str, source: dict[str, Any]) -> int:
    if system == "onec":
        return len(source["document"]["items"])
    if system == "retailcrm":
        return len(source["items"])
    return 1  # a deal: one line of its amount, as the site's order reaches RetailCRM


# -- targets --------------------------------------------------------------------------------


def onec_total(document: dict[str, Any]) -> Decimal:
    """1C's document: its lines add up to its total, which it states."""
    lines = sum(
        (
            (Decimal(i["price"]) - Decimal(i.get("discount", "0"))) * exact(i["quantity"])
            for i in document["items"]
        ),
        Decimal(0),
    )
    delivery = Decimal((document.get("delivery") or {}).get("cost") or "0")
    discounts = Decimal(document.get("discount", "0")) + Decimal(
        document.get("bonuses_charged", "0")
    )
    assert lines + delivery - discounts == Decimal(document["total"])
    for line in document["items"]:
        assert line.get("name"), line
    return Decimal(document["total"])


def retailcrm_total(document: dict[str, Any]) -> Decimal:
    """What RetailCRM makes the order's total from the lines, delivery and discounts sent."""
    order = copy.deepcopy(document)
    for line in order["items"]:
        assert line.get("productName") or (line.get("offer") or {}).get("externalId"), line
    normalize_order(order, lambda _kind: 1)
    return exact(order["totalSumm"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_line_reaches_the_target_and_the_lines_add_up_to_its_total(
    flows: dict[str, FlowMapping], data: st.DataObject
) -> None:
    for name in ORDER_FILES:
        source_system, _, _, target = name.removesuffix(".yaml").split("_")
        source = data.draw(SOURCES[source_system], label=name)
        mapped = flows[name].apply(source)
        assert mapped.document is not None, (name, mapped.skipped)
        document = mapped.document
        expected = source_total(source_system, source)
        if target == "onec":
            assert onec_total(document) == expected, name
            assert len(document["items"]) == source_lines(source_system, source), name
        elif target == "retailcrm":
            assert retailcrm_total(document) == expected, name
            assert len(document["items"]) == source_lines(source_system, source), name
        else:  # a deal receives the amount
            assert exact(document["opportunity"]) == expected, name


def test_the_issue_s_order_keeps_its_free_line_in_1c(flows: dict[str, FlowMapping]) -> None:
    """Total 1300: a catalogue line of 1000 and a line of 300 with no catalogue product."""
    order = {
        "id": 5003,
        "status": "new",
        "items": [
            {"offer": {"externalId": "SKU-1", "name": "Кофе"}, "quantity": 1, "initialPrice": 1000},
            {"productName": "Подарочная упаковка", "quantity": 1, "initialPrice": 300},
        ],
    }
    normalize_order(order, lambda _kind: 1)
    document = flows["retailcrm_order_to_onec.yaml"].apply(as_json(order)).document
    assert document is not None
    assert [(i.get("sku"), i["name"], i["price"]) for i in document["items"]] == [
        ("SKU-1", "Кофе", "1000.00"),
        (None, "Подарочная упаковка", "300.00"),
    ]
    assert onec_total(document) == Decimal("1300.00")


def test_first_takes_the_first_path_with_a_value_and_sum_adds_exactly(tmp_path: Path) -> None:
    flow = load_flow(
        tmp_path,
        """\
        fields:
          - {to: name, from: [productName, offer.name], transform: first}
          - {to: less, from: [discount, bonuses], transform: sum}
          - {to: lessn, from: [discount, bonuses], transform: sum, number: true}
          - {to: lines, from: "items[*].price", transform: sum}
        """,
    )
    assert flow.apply(
        {
            "productName": "  ",
            "offer": {"name": "Кофе"},
            "discount": "0.10",
            "bonuses": 0.2,
            "items": [{"price": "1 000,05"}, {"price": None}, {"price": 2}],
        }
    ).document == {"name": "Кофе", "less": "0.30", "lessn": 0.3, "lines": "1002.05"}
    assert flow.apply({"discount": "5", "bonuses": None}).document == {"less": "5.00", "lessn": 5}
    assert flow.apply({}).document == {}
    with pytest.raises(MappingFailed, match="'x' is not an amount"):
        flow.apply({"discount": "x"})
