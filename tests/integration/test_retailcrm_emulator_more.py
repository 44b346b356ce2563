"""Issue 12, point 11: the RetailCRM emulator as strict as RetailCRM, and the endpoints the
official ``retailcrm`` client calls, each driven with that client over a socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import retailcrm

from connectors.retailcrm.emulator import RetailcrmEmulator

MANAGER_KEY = "sandbox-manager-key-0001"
BRIDGE_KEY = "sandbox-bridge-key-0001"


@pytest.fixture
async def crm() -> AsyncIterator[RetailcrmEmulator]:
    async with RetailcrmEmulator(rate_limit=0) as emulator:
        yield emulator


async def call(crm: RetailcrmEmulator, fn: Callable[[Any], Any], key: str = MANAGER_KEY) -> Any:
    """(status, body) of one official-client call."""
    client = retailcrm.v5(crm.url, key)
    answer = await asyncio.to_thread(lambda: fn(client))
    return answer.get_status_code(), answer.get_response()


async def ok(crm: RetailcrmEmulator, fn: Callable[[Any], Any], key: str = MANAGER_KEY) -> Any:
    status, body = await call(crm, fn, key)
    assert status in (200, 201) and body["success"], (status, body)
    return body


async def history(crm: RetailcrmEmulator, feed: str) -> list[dict[str, Any]]:
    reads = {
        "orders": lambda c: c.orders_history({}, 100, 1),
        "customers": lambda c: c.customers_history({}, 100, 1),
        "corporate": lambda c: c.customers_corporate_history({}, 100, 1),
    }
    body = await ok(crm, reads[feed], BRIDGE_KEY)
    assert body["generatedAt"]
    return list(body["history"])


# -- offers the catalogue does not hold (retailcrm-api.md §10.5) ----------------------------


async def test_an_unknown_offer_with_a_name_becomes_a_line_without_a_product(
    crm: RetailcrmEmulator,
) -> None:
    items = [
        {"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 1500},
        {
            "offer": {"externalId": "1C-00042"},
            "productName": "Гравировка",
            "quantity": 2,
            "initialPrice": 300,
        },
    ]
    made = await ok(crm, lambda c: c.order_create({"externalId": "u-1", "items": items}, "shop"))
    order = (await ok(crm, lambda c: c.order(str(made["id"]), "id")))["order"]
    catalogued, free = order["items"]
    assert catalogued["offer"]["externalId"] == "SKU-1"
    assert "offer" not in free  # kept, but bound to no catalogue product
    assert (free["productName"], free["quantity"], free["initialPrice"]) == ("Гравировка", 2, 300)
    assert order["summ"] == 2100


async def test_an_unknown_offer_without_a_name_or_by_internal_id_is_refused(
    crm: RetailcrmEmulator,
) -> None:
    nameless = [{"offer": {"externalId": "1C-00042"}, "quantity": 1, "initialPrice": 10}]
    status, body = await call(
        crm, lambda c: c.order_create({"externalId": "u-2", "items": nameless}, "shop")
    )
    assert status == 400
    assert body["errors"] == {
        "items[0].offer.externalId": "Offer with externalId 1C-00042 not found."
    }
    by_id = [{"offer": {"id": 123123}, "productName": "x", "quantity": 1, "initialPrice": 1}]
    status, body = await call(
        crm, lambda c: c.order_create({"externalId": "u-3", "items": by_id}, "shop")
    )
    assert status == 400
    assert body["errors"] == {"items[0].offer.id": "Offer with id 123123 not found."}


# -- statuses, external ids, payments (§10.7) ----------------------------------------------


async def test_reference_statuses_and_order_statuses(crm: RetailcrmEmulator) -> None:
    statuses = (await ok(crm, lambda c: c.statuses()))["statuses"]
    assert statuses["new"] == {
        "name": "Новый",
        "code": "new",
        "active": True,
        "ordering": 10,
        "group": "new",
    }
    assert statuses["complete"]["group"] == "complete"
    made = await ok(crm, lambda c: c.order_create({"externalId": "s-1", "status": "assembling"}))
    answer = await ok(crm, lambda c: c.orders_statuses([made["id"]], ["o-1", "nobody"]))
    found = {o["externalId"]: o for o in answer["orders"]}
    assert set(found) == {"s-1", "o-1"}
    assert found["s-1"] == {
        "id": made["id"],
        "externalId": "s-1",
        "status": "assembling",
        "group": "assembling",
    }


async def test_fix_external_ids(crm: RetailcrmEmulator) -> None:
    made = await ok(crm, lambda c: c.order_create({"number": "W-9"}, "shop"))
    await ok(crm, lambda c: c.orders_fix_external_ids([{"id": made["id"], "externalId": "w-9"}]))
    assert (await ok(crm, lambda c: c.order("w-9", "externalId", "shop")))["order"]["id"] == made[
        "id"
    ]
    records = await history(crm, "orders")
    assert records[-1]["field"] == "external_id" and records[-1]["newValue"] == "w-9"
    status, body = await call(crm, lambda c: c.orders_fix_external_ids([{"externalId": "x"}]))
    assert status == 400 and body["errorMsg"] == "Invalid input parameters"
    customer = await ok(crm, lambda c: c.customer_create({"firstName": "Без кода"}, "shop"))
    await ok(
        crm,
        lambda c: c.customers_fix_external_ids([{"id": customer["id"], "externalId": "c-77"}]),
    )
    assert (await ok(crm, lambda c: c.customer("c-77", "externalId", "shop")))["customer"]


async def test_payments_create(crm: RetailcrmEmulator) -> None:
    payment = {"order": {"externalId": "o-1"}, "type": "cash", "amount": 500, "status": "paid"}
    made = await ok(crm, lambda c: c.order_payment_create(payment, "shop"))
    order = (await ok(crm, lambda c: c.order("o-1", "externalId", "shop")))["order"]
    assert order["payments"][str(made["id"])]["amount"] == 500
    assert order["prepaySum"] == 500
    status, body = await call(crm, lambda c: c.order_payment_create({"type": "cash"}, "shop"))
    assert status == 400
    assert body["errors"] == {"order": "Set one of the following fields: id, externalId, number"}


# -- merges (§10.2, §10.3) -----------------------------------------------------------------


async def test_combined_customers_leave_deleted_records_with_combined_to(
    crm: RetailcrmEmulator,
) -> None:
    c1 = (await ok(crm, lambda c: c.customer("c-1", "externalId", "shop")))["customer"]
    c3 = (await ok(crm, lambda c: c.customer("c-3", "externalId", "shop")))["customer"]
    await ok(crm, lambda c: c.customers_combine([{"id": c3["id"]}], {"id": c1["id"]}))
    (record,) = await history(crm, "customers")
    assert record["deleted"] is True
    assert (record["field"], record["oldValue"], record["newValue"]) == ("id", c3["id"], None)
    assert record["customer"]["id"] == c3["id"] and record["customer"]["externalId"] == "c-3"
    assert record["combinedTo"]["id"] == c1["id"]
    assert record["combinedTo"]["externalId"] == "c-1"
    status, body = await call(crm, lambda c: c.customer("c-3", "externalId", "shop"))
    assert status == 404
    assert body["errorMsg"] == "Not found" and body["combinedTo"]["id"] == c1["id"]
    status, body = await call(crm, lambda c: c.customer(str(c3["id"]), "id"))
    assert status == 404 and body["combinedTo"]["id"] == c1["id"]
    status, body = await call(crm, lambda c: c.customers_combine([{"id": 99999}], {"id": 101}))
    assert status == 404


async def test_combined_orders_leave_a_deleted_record_with_combined_to(
    crm: RetailcrmEmulator,
) -> None:
    o1 = (await ok(crm, lambda c: c.order("o-1", "externalId", "shop")))["order"]
    o2 = (await ok(crm, lambda c: c.order("o-2", "externalId", "shop")))["order"]
    await ok(crm, lambda c: c.orders_combine({"id": o2["id"]}, {"id": o1["id"]}, "summ"))
    records = await history(crm, "orders")
    deleted = [r for r in records if r.get("deleted")]
    assert len(deleted) == 1
    assert deleted[0]["order"]["id"] == o2["id"] and deleted[0]["combinedTo"]["id"] == o1["id"]
    survivor = (await ok(crm, lambda c: c.order("o-1", "externalId", "shop")))["order"]
    assert len(survivor["items"]) == 2  # "summ": the absorbed order's lines join
    status, _ = await call(crm, lambda c: c.order("o-2", "externalId", "shop"))
    assert status == 404


# -- corporate customers (§10.4) -----------------------------------------------------------


async def test_corporate_customers_and_their_history(crm: RetailcrmEmulator) -> None:
    contact = (await ok(crm, lambda c: c.customer("c-2", "externalId", "shop")))["customer"]
    corporate = {
        "externalId": "corp-1",
        "nickName": "ООО Ромашка",
        "customerContacts": [{"isMain": True, "customer": {"externalId": "c-2"}}],
        "companies": [
            {"name": "Ромашка", "isMain": True, "contragent": {"INN": "7701234567"}},
        ],
    }
    made = await ok(crm, lambda c: c.customer_corporate_create(corporate, "shop"))
    got = (await ok(crm, lambda c: c.customer_corporate("corp-1", "externalId", "shop")))[
        "customerCorporate"
    ]
    assert got["type"] == "customer_corporate" and got["id"] == made["id"]
    assert got["mainCustomerContact"]["customer"]["id"] == contact["id"]
    assert got["mainCompany"]["name"] == "Ромашка"
    listed = await ok(crm, lambda c: c.customers_corporate({"externalIds": ["corp-1"]}))
    assert [c["nickName"] for c in listed["customersCorporate"]] == ["ООО Ромашка"]
    edit = {"externalId": "corp-1", "nickName": "ООО Ромашка и К"}
    await ok(crm, lambda c: c.customer_corporate_edit(edit, "externalId", "shop"))
    created, renamed = await history(crm, "corporate")
    assert created["created"] is True and created["customer"]["type"] == "customer_corporate"
    assert (renamed["field"], renamed["newValue"]) == ("nick_name", "ООО Ромашка и К")
    assert renamed["customer"] == {"id": made["id"], "externalId": "corp-1", "site": "shop"}

    order = {
        "externalId": "corp-order-1",
        "customer": {"id": made["id"]},
        "contact": {"externalId": "c-2"},
        "company": {"id": got["mainCompany"]["id"]},
    }
    await ok(crm, lambda c: c.order_create(order, "shop"))
    read = (await ok(crm, lambda c: c.order("corp-order-1", "externalId", "shop")))["order"]
    assert read["customer"]["type"] == "customer_corporate"
    assert read["contact"]["type"] == "customer"
    assert read["contact"]["phones"] == [{"number": "+79000000002"}]
    assert read["company"]["name"] == "Ромашка"


async def test_a_merge_moves_the_absorbed_customers_orders_and_loyalty_account(
    crm: RetailcrmEmulator,
) -> None:
    c1 = (await ok(crm, lambda c: c.customer("c-1", "externalId", "shop")))["customer"]
    c2 = (await ok(crm, lambda c: c.customer("c-2", "externalId", "shop")))["customer"]
    await ok(crm, lambda c: c.customers_combine([{"id": c2["id"]}], {"id": c1["id"]}))
    order = (await ok(crm, lambda c: c.order("o-2", "externalId", "shop")))["order"]
    assert order["customer"]["id"] == c1["id"]
    moved = (await ok(crm, lambda c: c.loyalty_account(12)))["loyaltyAccount"]
    # c-1 takes part already (account 11): c-2's account follows, deactivated.
    assert moved["customer"]["id"] == c1["id"] and moved["active"] is False
    listed = await ok(crm, lambda c: c.loyalty_accounts({"customerExternalId": "c-1"}, 20, 1))
    assert sorted(a["id"] for a in listed["loyaltyAccounts"]) == [11, 12]
    records = await history(crm, "orders")
    assert [(r["field"], r["newValue"]) for r in records] == [("customer", {"id": c1["id"]})]
