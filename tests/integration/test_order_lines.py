"""Every order line reaches the other system, over the wire (issue 12, point 10).

Both sandboxes and the shipped RetailCRM ⇄ 1C routes. A RetailCRM order with a catalogue
line and a line without a catalogue product reaches 1C with both, so 1C's lines add up
to its total; a 1C till sale with a line
without a SKU, line and order discounts and points charged reaches RetailCRM with every
line, and RetailCRM's own total is 1C's.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import BonusFactory, bonus_factory
from tests.support.mirroring import crm_call, mirroring_config
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name


def onec_sum(document: dict[str, Any]) -> Decimal:
    """Lines + delivery − discounts of a 1C order document (amounts as decimal text)."""
    lines = sum(
        (
            (Decimal(str(i["price"])) - Decimal(str(i.get("discount", 0)))) * Decimal(i["quantity"])
            for i in document["items"]
        ),
        Decimal(0),
    )
    delivery = Decimal(str((document.get("delivery") or {}).get("cost") or 0))
    discount = Decimal(str(document.get("discount", 0)))
    return lines + delivery - discount - Decimal(str(document.get("bonuses_charged", 0)))


async def test_a_retailcrm_order_reaches_1c_with_every_line(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = bonus.runtime.emulators["onec"]
    assert isinstance(onec, OnecEmulator)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    order = {
        "number": "L-1",
        "status": "new",
        "customer": {"externalId": "c-1"},
        "items": [
            {"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 1000},
            {"productName": "Подарочная упаковка", "quantity": 1, "initialPrice": 300},
        ],
    }
    created = await crm_call(bonus, lambda c: c.order_create(order, "shop"))
    key = f"retailcrm-{created['id']}"

    async def in_1c() -> Any:
        orders = onec.ledger.snapshot()["orders"]
        assert isinstance(orders, dict)
        return orders.get(key)

    _number, _version, document = await eventually(in_1c)
    assert document["total"] == "1300.00"
    assert [(i.get("sku"), i["price"]) for i in document["items"]] == [
        ("SKU-1", "1000.00"),
        (None, "300.00"),
    ]
    assert document["items"][1]["name"] == "Подарочная упаковка"
    assert onec_sum(document) == Decimal("1300.00")


async def test_a_1c_sale_reaches_retailcrm_with_every_line_and_1c_s_total(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = bonus.runtime.emulators["onec"]
    assert isinstance(onec, OnecEmulator)
    store = bonus.runtime.store
    await eventually(lambda: store.get_cursor("onec", "changes"))
    sale: dict[str, Any] = {
        "number": "ЧК-555",
        "date": "2026-11-22 13:05:00",
        "status": "Новый",
        "customer": {"phone": "+79000000001", "name": "Иван Петров"},
        "items": [
            {
                "sku": "SKU-1",
                "name": "Кофе",
                "quantity": 2,
                "price": "1500.00",
                "discount": "100.00",
            },
            {"name": "Сборка подарка", "quantity": 1, "price": "250.50", "discount": "0.00"},
        ],
        "delivery": {"type": "Курьер", "cost": "300.00"},
        "discount": "50.00",
        "bonuses_charged": "200.00",
        "total": "3100.50",  # 2 × 1400 + 250.50 + 300 − 50 − 200
    }
    assert onec_sum(sale) == Decimal(sale["total"])
    entered = onec.ledger.enter_order(sale)

    async def in_crm() -> Any:
        listed = await crm_call(bonus, lambda c: c.orders({"numbers": ["ЧК-555"]}, 20, 1))
        return listed["orders"] or None

    [created] = await eventually(in_crm)
    assert created["externalId"] == f"onec-{entered.id}"
    names = [i.get("productName") or i["offer"].get("name") for i in created["items"]]
    assert names == ["Кофе", "Сборка подарка"]
    assert "offer" not in created["items"][1] or not created["items"][1]["offer"].get("externalId")
    assert Decimal(str(created["totalSumm"])) == Decimal("3100.50")
