"""1C sales into RetailCRM through the shipped mapping files, over the wire.

A till sale (an order entered in 1C) is created in RetailCRM whole: items, customer,
contact, payments (the rules marked ``when: create`` in onec_order_to_retailcrm.yaml). A
later status change in 1C edits that same order's status and nothing else, so what
RetailCRM did to the order meanwhile stays; an order that came from RetailCRM gets its
status back the same way (tests/integration/test_mirroring.py runs the rest of that trip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.bonus import BonusFactory, bonus_factory
from tests.support.emulators import onec_emulator
from tests.support.mirroring import crm_call, mirroring_config
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name

# A sale at the till as 1C keeps it: the shape retailcrm_order_to_onec.yaml writes, with
# the key RetailCRM knows the customer by (the sandbox's Иван Петров, c-1).
SALE: dict[str, Any] = {
    "number": "ЧК-000123",
    "date": "2026-11-22 13:05:00",
    "status": "Новый",
    "customer": {
        "phone": "8 (900) 000-00-01",
        "name": "Иван Петров",
        "email": "ivan@example.com",
        "card": "2000000000015",
        "retailcrm_external_id": "c-1",
    },
    "items": [
        {"sku": "SKU-1", "name": "Кофе в зёрнах", "quantity": 2, "price": "1500.00"},
        {"sku": "SKU-2", "name": "Фильтры", "quantity": 1, "price": "99.50"},
    ],
    "payments": [{"type": "Банковская карта", "amount": "3099.50"}],
    "comment": "продажа на кассе 3",
    "total": "3099.50",
}


def lines(order: dict[str, Any]) -> list[tuple[Any, ...]]:
    """(item id, SKU, quantity, price, manual discount) of every item of a RetailCRM order."""
    return [
        (
            i["id"],
            i["offer"]["externalId"],
            i["quantity"],
            float(i["initialPrice"]),
            float(i["discountManualAmount"]),
        )
        for i in order["items"]
    ]


async def test_a_1c_sale_arrives_whole_and_its_status_alone_comes_back_later(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = onec_emulator(bonus.runtime)
    store = bonus.runtime.store
    await eventually(lambda: store.get_cursor("onec", "changes"))
    await eventually(lambda: store.get_cursor("retailcrm", "orders"))
    sale = onec.ledger.enter_order(SALE)  # at the till: 1C's own id, no external id

    async def in_crm() -> Any:
        listed = await crm_call(bonus, lambda c: c.orders({"numbers": ["ЧК-000123"]}, 20, 1))
        return listed["orders"] or None

    [created] = await eventually(in_crm)
    crm_id = str(created["id"])
    assert created["externalId"] == f"onec-{sale.id}"
    assert (created["status"], created["createdAt"]) == ("new", "2026-11-22 13:05:00")
    assert [(sku, qty, price) for _id, sku, qty, price, _d in lines(created)] == [
        ("SKU-1", 2, 1500.0),
        ("SKU-2", 1, 99.5),
    ]
    assert [i["productName"] for i in created["items"]] == ["Кофе в зёрнах", "Фильтры"]
    assert created["customer"]["externalId"] == "c-1"  # the sandbox's Иван Петров, linked
    assert (created["phone"], created["firstName"], created["email"]) == (
        "+79000000001",
        "Иван Петров",
        "ivan@example.com",
    )
    assert created["customerComment"] == "продажа на кассе 3"
    [payment] = created["payments"].values()
    assert (payment["type"], float(payment["amount"])) == ("bank-card", 3099.5)
    assert float(created["totalSumm"]) == 3099.5  # RetailCRM's own sum of the items
    mapped = await eventually(lambda: store.lookup_id("order", "onec", sale.id, "retailcrm"))
    assert mapped == crm_id

    # A manager in RetailCRM gives a discount on the coffee: RetailCRM's own, not 1C's.
    # (An edit sends the whole list of items, §2.3.)
    keys = ("id", "offer", "productName", "quantity", "initialPrice")
    items = [{k: i[k] for k in keys} | {"discountManualAmount": 0} for i in created["items"]]
    items[0]["discountManualAmount"] = 100
    edit = {"id": int(crm_id), "items": items}
    await crm_call(bonus, lambda c: c.order_edit(edit, "id", "shop"))
    discounted = (await crm_call(bonus, lambda c: c.order(crm_id, "id", "shop")))["order"]
    before = lines(discounted)
    assert before[0][4] == 100.0

    async def discount_in_1c() -> Any:
        _n, _v, document = onec.ledger.snapshot()["orders"][sale.id]
        return document.get("total") == "2899.50"  # RetailCRM's view went back to 1C

    await eventually(discount_in_1c)
    # The sale is completed in 1C: its status alone flows to the same RetailCRM order.
    onec.ledger.change_order(sale.id, status="Выполнен")

    async def complete() -> Any:
        answer = await crm_call(bonus, lambda c: c.order(crm_id, "id", "shop"))
        return answer["order"] if answer["order"]["status"] == "complete" else None

    after = await eventually(complete)
    assert lines(after) == before  # the same items, the manager's discount kept
    assert float(after["totalSumm"]) == 2899.5  # 100 off each of the two
    assert after["customer"]["externalId"] == "c-1"
    assert after["externalId"] == f"onec-{sale.id}"
    listed = await crm_call(bonus, lambda c: c.orders({"numbers": ["ЧК-000123"]}, 20, 1))
    assert [o["id"] for o in listed["orders"]] == [int(crm_id)]  # one copy


async def test_a_sale_without_a_customer_key_keeps_the_contact_on_the_order(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = onec_emulator(bonus.runtime)
    await eventually(lambda: bonus.runtime.store.get_cursor("onec", "changes"))
    customer = {k: v for k, v in SALE["customer"].items() if k != "retailcrm_external_id"}
    sale = onec.ledger.enter_order({**SALE, "number": "ЧК-000124", "customer": customer})

    async def in_crm() -> Any:
        answer = await crm_call(bonus, lambda c: c.orders({"numbers": ["ЧК-000124"]}, 20, 1))
        return answer["orders"] or None

    [created] = await eventually(in_crm)
    assert created["externalId"] == f"onec-{sale.id}"
    assert len(created["items"]) == 2
    # RetailCRM takes no customer reference by phone; the sandbox keeps the contact copy
    # on the order and links no customer.
    assert "customer" not in created
    assert (created["phone"], created["firstName"]) == ("+79000000001", "Иван Петров")


async def test_a_retailcrm_order_gets_its_status_back_from_1c_and_keeps_its_items(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = onec_emulator(bonus.runtime)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    order = {
        "externalId": "site-5005",
        "number": "5005A",
        "status": "new",
        "customer": {"externalId": "c-2"},
        "items": [
            {
                "offer": {"externalId": "SKU-2"},
                "quantity": 3,
                "initialPrice": 800,
                "discountManualAmount": 50,
            }
        ],
    }
    crm_id = str((await crm_call(bonus, lambda c: c.order_create(order, "shop")))["id"])
    key = f"retailcrm-{crm_id}"

    async def in_1c() -> Any:
        return onec.ledger.snapshot()["orders"].get(key)

    await eventually(in_1c)
    before = (await crm_call(bonus, lambda c: c.order(crm_id, "id", "shop")))["order"]
    # 1C completes it and its document now says one item at another price: RetailCRM's
    # order came from RetailCRM, so only the status goes back.
    other = [{"sku": "SKU-9", "name": "Другое", "quantity": 1, "price": "10.00"}]
    onec.ledger.change_order(key, status="Выполнен", fields={"items": other, "comment": "1C"})

    async def complete() -> Any:
        answer = await crm_call(bonus, lambda c: c.order(crm_id, "id", "shop"))
        return answer["order"] if answer["order"]["status"] == "complete" else None

    after = await eventually(complete)
    assert lines(after) == lines(before)
    assert after["customer"]["externalId"] == "c-2"
    assert "customerComment" not in after
    assert float(after["totalSumm"]) == float(before["totalSumm"]) == 2250.0
