"""The RetailCRM emulator over real sockets, driven by the official `retailcrm` 5.3 client.

The client is blocking and calls module-level `requests`, so every scenario with it runs in
a thread (`asyncio.to_thread`) while the emulator serves on the test's event loop. No bridge
code talks to the emulator here (issue 4, acceptance point 1). Wire-level shapes (§1.4/§1.5
error bodies, the HTML 405, 503, faults) are checked with aiohttp.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from typing import Any

import aiohttp
import pytest
import requests
import retailcrm

from bridge.connector import Emulator
from connectors.retailcrm.emulator import DEFAULT_KEYS, RetailcrmEmulator

BRIDGE = "sandbox-bridge-key-0001"
MANAGER = "sandbox-manager-key-0001"
SITE = "shop"


def crm(emu: RetailcrmEmulator, key: str = BRIDGE) -> Any:
    """A plain official client, as any integrator would build it."""
    return retailcrm.v5(emu.url, key)


def ok(response: Any, status: int = 200) -> dict[str, Any]:
    """The body of a response that must have `status`."""
    body = response.get_response()
    assert response.get_status_code() == status, body
    return dict(body)


async def in_thread(scenario: Callable[[], Any]) -> Any:
    """Run a blocking client scenario off the event loop."""
    return await asyncio.to_thread(scenario)


@pytest.fixture
async def emulator() -> AsyncIterator[RetailcrmEmulator]:
    # The rate limit has its own test; sequential client calls would trip it here.
    async with RetailcrmEmulator(rate_limit=0) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


ITEMS = [{"offer": {"externalId": "SKU-7"}, "quantity": 2, "initialPrice": 500}]


async def test_is_an_emulator_and_answers_the_unversioned_endpoints() -> None:
    emu = RetailcrmEmulator(sites=("shop", "shop-1c"), rate_limit=0)
    assert isinstance(emu, Emulator)
    assert emu.url == ""
    await emu.start()
    try:
        assert emu.url == f"http://127.0.0.1:{emu.port}"

        def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
            client = crm(emu)
            return ok(client.api_versions()), ok(client.api_credentials())

        versions, credentials = await in_thread(scenario)
        assert "5.0" in versions["versions"]
        assert credentials["sitesAvailable"] == ["shop", "shop-1c"]
        assert credentials["siteAccess"] == "access_full"
    finally:
        await emu.stop()
    assert set(DEFAULT_KEYS) == {BRIDGE, MANAGER}


async def test_orders_create_edit_get_list_and_history(emulator: RetailcrmEmulator) -> None:
    order = {
        "externalId": "1c-000123",
        "number": "ЧК-000123",
        "customer": {"externalId": "c-1"},
        "items": ITEMS,
        "payments": [{"type": "cash", "amount": 900, "status": "paid"}],
        "delivery": {"cost": 100},
        "discountManualAmount": 100,
    }

    def scenario() -> dict[str, Any]:
        client, seen = crm(emulator), {}
        seen["created"] = ok(client.order_create(order, SITE), 201)
        seen["duplicate"] = client.order_create(order, SITE)
        seen["edited"] = ok(client.order_edit({"externalId": "1c-000123", "status": "complete"}))
        seen["got"] = ok(client.order("1c-000123", site=SITE))["order"]
        seen["by_id"] = ok(client.order(seen["created"]["id"], "id"))["order"]
        seen["missing"] = client.order("no-such-order")
        seen["listed"] = ok(client.orders({"customerExternalId": "c-1"}))
        seen["by_number"] = ok(client.orders({"numbers": ["ЧК-000123"]}))["orders"]
        seen["history"] = ok(client.orders_history({"sinceId": 0}, 100))
        last = seen["history"]["history"][-1]["id"]
        seen["after"] = ok(client.orders_history({"sinceId": last}, 100))["history"]
        seen["default_filter"] = ok(client.orders_history())  # sends the literal filter=None
        return seen

    seen = await in_thread(scenario)
    created = seen["created"]
    assert created["success"] is True and created["order"]["externalId"] == "1c-000123"
    duplicate = seen["duplicate"]
    assert duplicate.get_status_code() == 400 and "externalId" in duplicate.get_errors()
    assert seen["edited"]["order"]["status"] == "complete"
    got = seen["got"]
    assert got == seen["by_id"]
    assert got["status"] == "complete" and got["number"] == "ЧК-000123"
    assert got["summ"] == 1000 and got["totalSumm"] == 1000  # 1000 - 100 discount + 100 delivery
    assert got["customer"]["externalId"] == "c-1"
    assert got["customer"]["phones"] == [{"number": "+79000000001"}]
    (payment_id, payment), *_ = got["payments"].items()  # §2.2: keyed by id on read
    assert payment["id"] == int(payment_id) and payment["amount"] == 900
    assert got["customFields"] == []  # §1.4: PHP writes an empty object as []
    assert got["items"][0]["prices"] == [{"price": 500, "quantity": 2}]
    assert seen["missing"].get_status_code() == 404
    assert seen["missing"].get_error_msg() == "Not found"
    listed = seen["listed"]
    assert {o["externalId"] for o in listed["orders"]} == {"o-1", "1c-000123"}
    assert listed["pagination"] == {
        "limit": 20,
        "totalCount": 2,
        "currentPage": 1,
        "totalPageCount": 1,
    }
    assert [o["externalId"] for o in seen["by_number"]] == ["1c-000123"]

    history = seen["history"]
    records = history["history"]
    assert history["generatedAt"] and history["pagination"]["totalCount"] == len(records)
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    first = records[0]
    assert first["created"] is True and first["field"] == "id" and first["source"] == "api"
    assert first["apiKey"] == {"current": True}
    assert first["order"]["items"][0]["offer"] == {"externalId": "SKU-7"}  # full order
    status = next(r for r in records if r["field"] == "status")
    assert status["oldValue"] == {"code": "new"} and status["newValue"] == {"code": "complete"}
    assert status["order"]["externalId"] == "1c-000123" and "items" not in status["order"]
    assert seen["after"] == []
    assert seen["default_filter"]["history"] == records[:20]


async def test_upload_is_partial_with_460_and_capped_at_50(emulator: RetailcrmEmulator) -> None:
    good = {"externalId": "u-1", "customer": {"externalId": "c-2"}, "items": ITEMS}
    bad = {"externalId": "u-2", "items": [*ITEMS, {"offer": {"externalId": "missing-1"}}]}

    def scenario() -> list[Any]:
        client = crm(emulator)
        return [
            client.orders_upload([good, bad], SITE),
            client.orders_upload([{"externalId": f"many-{i}"} for i in range(51)], SITE),
            client.order("u-2"),
            client.customers_upload(
                [
                    {"externalId": "c-9", "firstName": "Пётр"},
                    {"externalId": "c-1", "firstName": "Дубль"},
                ]
            ),
            ok(client.orders_upload([{"externalId": "u-3"}])),
        ]

    partial, too_many, missing, customers, full = await in_thread(scenario)
    assert partial.get_status_code() == 460
    body = partial.get_response()
    assert body["success"] is False and body["errorMsg"] == "Orders are loaded with errors"
    assert [o["externalId"] for o in body["uploadedOrders"]] == ["u-1"]
    assert body["failedOrders"] == [{"externalId": "u-2"}]
    assert body["errors"] == [
        "items[1].offer.externalId: Offer with externalId missing-1 not found."
    ]
    assert too_many.get_status_code() == 400 and "orders" in too_many.get_errors()
    assert missing.get_status_code() == 404
    assert customers.get_status_code() == 460
    assert customers.get_response()["failedCustomers"] == [{"externalId": "c-1"}]
    assert customers.get_response()["errorMsg"] == "Customers are loaded with errors"
    assert full["uploadedOrders"][0]["externalId"] == "u-3" and len(full["orders"]) == 1


async def test_customers_create_edit_get_list_upload_history(emulator: RetailcrmEmulator) -> None:
    customer = {
        "externalId": "1c-77",
        "firstName": "Анна",
        "lastName": "Кузнецова",
        "phones": [{"number": "+7 (900) 111-22-33"}],
        "email": "anna@example.com",
    }

    def scenario() -> dict[str, Any]:
        client, seen = crm(emulator), dict[str, Any]()
        seen["created"] = ok(client.customer_create(customer, SITE), 201)
        seen["bad_email"] = client.customer_create({"externalId": "x", "email": "nope"}, SITE)
        edit = {
            "externalId": "1c-77",
            "email": "anna@example.org",
            "phones": [{"number": "+79001112233"}, {"number": "+79005554433"}],
        }
        seen["edited"] = ok(client.customer_edit(edit, site=SITE))
        seen["got"] = ok(client.customer("1c-77", site=SITE))["customer"]
        seen["by_id"] = ok(client.customer(seen["created"]["id"], "id"))["customer"]
        for query in ("89001112233", "9001112233", "+7 900 111 22 33", "Кузнецова"):
            seen[query] = [
                c["externalId"] for c in ok(client.customers({"name": query}))["customers"]
            ]
        seen["by_ids"] = ok(client.customers({"externalIds": ["c-2", "1c-77"]}))["customers"]
        seen["by_card"] = ok(client.customers({"discountCardNumber": "2000000000015"}))["customers"]
        seen["upload"] = ok(
            client.customers_upload([{"externalId": "1c-78", "firstName": "Олег"}], SITE)
        )
        seen["history"] = ok(client.customers_history({"customerExternalId": "1c-77"}, 50))[
            "history"
        ]
        return seen

    seen = await in_thread(scenario)
    assert set(seen["created"]) == {"success", "id"}
    assert seen["bad_email"].get_status_code() == 400
    assert seen["bad_email"].get_errors() == {"email": "This value is not a valid email address."}
    assert seen["edited"] == {"success": True, "id": seen["created"]["id"]}
    got = seen["got"]
    assert got == seen["by_id"] and got["email"] == "anna@example.org" and got["customFields"] == []
    for query in ("89001112233", "9001112233", "+7 900 111 22 33", "Кузнецова"):
        assert seen[query] == ["1c-77"], query
    assert {c["externalId"] for c in seen["by_ids"]} == {"c-2", "1c-77"}
    assert [c["externalId"] for c in seen["by_card"]] == ["c-1"]
    assert seen["upload"]["uploadedCustomers"][0]["externalId"] == "1c-78"
    history = seen["history"]
    assert history[0]["created"] is True and history[0]["customer"]["firstName"] == "Анна"
    changed = {(r["field"], r["oldValue"], r["newValue"]) for r in history[1:]}
    assert ("email", "anna@example.com", "anna@example.org") in changed
    assert ("phones", None, "+79005554433") in changed
    assert all(r["customer"]["externalId"] == "1c-77" for r in history)


async def test_api_key_current_is_computed_for_the_caller(
    emulator: RetailcrmEmulator, http: aiohttp.ClientSession
) -> None:
    def write() -> None:
        ok(crm(emulator, BRIDGE).order_create({"externalId": "k-1", "items": ITEMS}, SITE), 201)
        ok(crm(emulator, MANAGER).order_edit({"externalId": "k-1", "managerId": 7}))

    await in_thread(write)
    edit = {"entity": "order", "id": "k-1", "changes": {"status": "assembling"}, "userId": 5}
    async with http.post(f"{emulator.url}/__emulator__/user-edit", json=edit) as response:
        assert response.status == 200
        assert (await response.json())["order"]["status"] == "assembling"

    def read(key: str) -> list[dict[str, Any]]:
        return list(ok(crm(emulator, key).orders_history({"orderExternalId": "k-1"}))["history"])

    as_bridge, as_manager = await in_thread(lambda: (read(BRIDGE), read(MANAGER)))
    assert [(r["field"], r["apiKey"]) for r in as_bridge[:2]] == [
        ("id", {"current": True}),
        ("manager", {"current": False}),
    ]
    assert [r["apiKey"] for r in as_manager[:2]] == [{"current": False}, {"current": True}]
    assert as_bridge[1]["newValue"] == {"id": 7}
    user = as_bridge[2]
    assert user["source"] == "user" and user["user"] == {"id": 5} and "apiKey" not in user
    assert user["newValue"] == {"code": "assembling"}


async def test_loyalty_programme_accounts_credit_charge_and_operations(
    emulator: RetailcrmEmulator,
) -> None:
    future = date.today() + timedelta(days=7)

    def scenario() -> dict[str, Any]:
        client, seen = crm(emulator), {}
        seen["loyalties"] = ok(client.loyalty_loyalties())["loyalties"]
        seen["loyalty"] = ok(client.loyalty_loyalty(1))["loyalty"]
        seen["no_loyalty"] = client.loyalty_loyalty(2)
        ivan = ok(client.loyalty_accounts({"phoneNumber": "89000000001"}))["loyaltyAccounts"]
        seen["ivan"] = ivan
        seen["by_card"] = ok(client.loyalty_accounts({"cardNumber": "2000000000015"}))
        seen["by_customer"] = ok(client.loyalty_accounts({"customerExternalId": "c-1"}))
        new = {"customer": {"externalId": "c-3"}, "phoneNumber": "+79000000003"}
        created = ok(client.loyalty_account_create(SITE, new), 201)["loyaltyAccount"]
        seen["created"], uid = created, created["id"]
        seen["again"] = client.loyalty_account_create(SITE, new)
        seen["activated"] = ok(client.loyalty_account_activate(uid))["loyaltyAccount"]
        seen["edited"] = ok(
            client.loyalty_account_edit(uid, {"loyaltyLevelId": 2, "cardNumber": "555"})
        )
        ok(client.loyalty_account_bonus_credit(uid, 300, None, None, "welcome"))
        seen["credit"] = ok(
            client.loyalty_account_bonus_credit(
                uid, 200, future.isoformat(), (future + timedelta(days=10)).isoformat(), None
            )
        )
        seen["charge"] = ok(client.loyalty_account_bonus_charge(uid, 100, "offline sale"))
        soon = (date.today() + timedelta(days=3)).isoformat()
        ok(client.loyalty_account_bonus_credit(uid, 50, None, soon, None))
        seen["too_much"] = client.loyalty_account_bonus_charge(uid, 10000, None)
        seen["account"] = ok(client.loyalty_account(uid))["loyaltyAccount"]
        seen["by_ids"] = ok(client.loyalty_accounts({"ids": [uid]}))["loyaltyAccounts"]
        seen["operations"] = ok(client.loyalty_account_bonus_operations(uid, None, 20, 1))
        seen["waiting"] = ok(client.loyalty_account_bonus_details(uid, "waiting_activation"))
        seen["burn_soon"] = ok(client.loyalty_account_bonus_details(uid, "burn_soon", {}, 20, 1))
        feed, cursor = [], None
        while True:
            page = ok(
                client.loyalty_bonus_operations({"loyalties": [1]}, 20 if cursor else 50, cursor)
            )
            if not page["bonusOperations"]:
                break
            feed += page["bonusOperations"]
            cursor = page["pagination"]["nextCursor"]
        seen["feed"], seen["last_cursor"], seen["end_cursor"] = feed, cursor, page["pagination"]
        seen["bad_cursor"] = client.loyalty_bonus_operations(None, 20, "not-a-cursor")
        return seen

    seen = await in_thread(scenario)
    (programme,) = seen["loyalties"]
    assert programme == seen["loyalty"] and programme["id"] == 1
    assert programme["confirmSmsCharge"] is False
    levels = programme["levels"]
    assert [(lv["sum"], lv["privilegeSize"]) for lv in levels] == [
        (0, 5),
        (10000, 10),
        (25000, 15),
        (50000, 20),
    ]
    assert seen["no_loyalty"].get_status_code() == 404
    (ivan,) = seen["ivan"]
    assert ivan["amount"] == 1000 and ivan["status"] == "activated" and ivan["active"] is True
    assert ivan["customer"]["externalId"] == "c-1" and ivan["cardNumber"] == "2000000000015"
    assert ivan["level"]["privilegeSize"] == 5 and ivan["nextLevelSum"] == 10000
    assert (
        seen["by_card"]["loyaltyAccounts"] == seen["ivan"] == seen["by_customer"]["loyaltyAccounts"]
    )
    assert seen["created"]["status"] == "not_confirmed" and seen["created"]["active"] is False
    again = seen["again"]
    assert again.get_status_code() == 400
    assert again.get_errors() == {"loyalty": "The customer is in this loyalty program already"}
    assert seen["activated"]["active"] is True and seen["activated"]["activatedAt"]
    assert seen["edited"]["loyaltyAccount"]["level"]["id"] == 2
    assert seen["credit"]["loyaltyBonus"] == {
        "amount": 200,
        "activationDate": future.isoformat(),
        "expireDate": (future + timedelta(days=10)).isoformat(),
    }
    assert seen["charge"] == {"success": True}
    assert seen["too_much"].get_status_code() == 400 and "amount" in seen["too_much"].get_errors()
    assert seen["account"]["amount"] == 250  # 300 - 100 + 50; the 200 wait for their date
    assert seen["by_ids"] == [seen["account"]]
    operations = seen["operations"]["bonusOperations"]
    assert [(o["type"], o["amount"]) for o in operations] == [
        ("credit_manual", 50),
        ("charge_manual", -100),
        ("credit_manual", 200),
        ("credit_manual", 300),
    ]
    assert operations[2]["bonus"] == {"activationDate": future.isoformat()}
    assert seen["waiting"]["bonuses"] == [{"date": future.isoformat(), "amount": 200}]
    assert seen["waiting"]["statistic"] == {"totalAmount": 200}
    burn = seen["burn_soon"]["bonuses"]
    assert burn == [{"date": (date.today() + timedelta(days=3)).isoformat(), "amount": 50}]

    feed = seen["feed"]
    assert len(feed) == len(emulator.loyalty.operations) == 7  # 3 seeded + 4 here
    assert [o["type"] for o in feed[-2:]] == ["charge_manual", "credit_manual"]
    assert all(o["loyalty"] == {"id": 1} and "id" in o["loyaltyAccount"] for o in feed)
    assert seen["end_cursor"] == {"nextCursor": seen["last_cursor"]}
    assert seen["bad_cursor"].get_status_code() == 400


async def test_calculate_apply_and_cancel_without_sms(emulator: RetailcrmEmulator) -> None:
    basket = {
        "customer": {"externalId": "c-1"},
        "privilegeType": "loyalty_level",
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 2, "initialPrice": 1500}],
    }

    def scenario() -> dict[str, Any]:
        client, seen = crm(emulator), {}
        seen["calc"] = ok(client.loyalty_calculate(basket, SITE, 100))
        small = basket | {"items": [{"offer": {"externalId": "S"}, "initialPrice": 600}]}
        seen["small"] = ok(client.loyalty_calculate(small, SITE, 5000))
        seen["anonymous"] = ok(client.loyalty_calculate({"items": basket["items"]}, SITE))
        seen["applied"] = ok(client.orders_loyalty_apply({"externalId": "o-1"}, SITE, 400))
        seen["order"] = ok(client.order("o-1"))["order"]
        seen["twice"] = client.orders_loyalty_apply({"externalId": "o-1"}, SITE, 10)
        seen["over_cap"] = client.orders_loyalty_apply({"externalId": "o-2"}, SITE, 300)
        seen["no_order"] = client.orders_loyalty_apply({"externalId": "nope"}, SITE, 10)
        ok(
            client.order_create(
                {"externalId": "olga-1", "customer": {"externalId": "c-3"}, "items": ITEMS}, SITE
            ),
            201,
        )
        seen["no_account"] = client.orders_loyalty_apply({"externalId": "olga-1"}, SITE, 10)
        seen["cancelled"] = ok(
            client.orders_loyalty_cancel_bonus_operations({"id": seen["order"]["id"]}, SITE)
        )
        seen["after"] = ok(client.loyalty_accounts({"customerExternalId": "c-1"}))[
            "loyaltyAccounts"
        ][0]
        seen["history"] = ok(client.orders_history({"orderExternalId": "o-1"}))["history"]
        seen["ops"] = ok(client.loyalty_account_bonus_operations(seen["after"]["id"]))[
            "bonusOperations"
        ]
        return seen

    seen = await in_thread(scenario)
    calc = seen["calc"]
    best, plain = calc["calculations"]
    assert best == {
        "privilegeType": "loyalty_level",
        "discount": 100,
        "creditBonuses": 145,
        "maxChargeBonuses": 1000,
        "maximum": True,
    }
    assert plain["privilegeType"] == "none" and plain["maximum"] is False
    assert calc["loyalty"]["chargeRate"] == 1
    assert calc["order"]["bonusesChargeTotal"] == 100 and calc["order"]["totalSumm"] == 2900
    assert calc["order"]["loyaltyAccount"]["amount"] == 1000
    assert seen["small"]["calculations"][0]["maxChargeBonuses"] == 300  # half the basket
    assert seen["small"]["order"]["bonusesChargeTotal"] == 300
    assert seen["anonymous"]["calculations"] == [
        {
            "privilegeType": "none",
            "discount": 0,
            "creditBonuses": 0,
            "maxChargeBonuses": 0,
            "maximum": True,
        }
    ]

    applied = seen["applied"]
    assert "verification" not in applied
    assert applied["order"]["bonusesChargeTotal"] == 400
    assert applied["order"]["loyaltyAccount"]["amount"] == 600
    assert applied["order"]["items"][0]["discounts"] == [{"type": "bonus_charge", "amount": 400}]
    assert seen["order"]["totalSumm"] == 2600 and seen["order"]["privilegeType"] == "loyalty_level"
    assert seen["twice"].get_status_code() == 400
    assert seen["over_cap"].get_status_code() == 400 and "bonuses" in seen["over_cap"].get_errors()
    assert seen["no_order"].get_status_code() == 404
    assert seen["no_account"].get_status_code() == 400
    cancelled = seen["cancelled"]["order"]
    assert cancelled["bonusesChargeTotal"] == 0 and cancelled["loyaltyAccount"]["amount"] == 1000
    assert seen["after"]["amount"] == 1000
    charges = [r for r in seen["history"] if r["field"] == "order_product.bonuses_charge"]
    assert [(r["oldValue"], r["newValue"]) for r in charges] == [(0, 400), (400, 0)]
    assert [(o["type"], o["amount"], o["order"]["externalId"]) for o in seen["ops"][:2]] == [
        ("cancel_of_charge", 400, "o-1"),
        ("charge_for_order", -400, "o-1"),
    ]


async def test_apply_with_sms_confirmation(http: aiohttp.ClientSession) -> None:
    async with RetailcrmEmulator(rate_limit=0, confirm_sms_charge=True) as emu:

        def apply(order: str, bonuses: int) -> dict[str, Any]:
            return ok(crm(emu).orders_loyalty_apply({"externalId": order}, SITE, bonuses))

        first = await in_thread(lambda: apply("o-1", 300))
        verification = first["verification"]
        assert set(verification) == {
            "checkId",
            "createdAt",
            "expiredAt",
            "verifiedAt",
            "actionType",
        }
        assert verification["verifiedAt"] is None
        assert first["order"]["bonusesChargeTotal"] == 300  # what it will be once confirmed
        async with http.get(f"{emu.url}/__emulator__/sms") as response:
            (sms,) = (await response.json())["messages"]
        assert sms["phone"] == "+79000000001" and sms["checkId"] == verification["checkId"]
        check_id, code = sms["checkId"], sms["code"]
        wrong = "0000" if code != "0000" else "1111"

        def confirm() -> dict[str, Any]:
            client, seen = crm(emu), {}
            seen["programme"] = ok(client.loyalty_loyalty(1))["loyalty"]
            seen["pending"] = ok(client.verification_sms_status(check_id))["verification"]
            seen["untouched"] = ok(client.order("o-1"))["order"]["bonusesChargeTotal"]
            seen["wrong"] = client.verification_sms_confirm({"checkId": check_id, "code": wrong})
            seen["right"] = ok(client.verification_sms_confirm({"checkId": check_id, "code": code}))
            seen["again"] = client.verification_sms_confirm({"checkId": check_id, "code": code})
            seen["status"] = ok(client.verification_sms_status(check_id))["verification"]
            seen["unknown"] = client.verification_sms_status("no-such-check")
            seen["order"] = ok(client.order("o-1"))["order"]
            seen["account"] = ok(client.loyalty_accounts({"customerExternalId": "c-1"}))
            return seen

        seen = await in_thread(confirm)
        assert seen["programme"]["confirmSmsCharge"] is True
        assert seen["pending"]["verifiedAt"] is None and seen["untouched"] == 0
        assert seen["wrong"].get_status_code() == 400 and "code" in seen["wrong"].get_errors()
        assert seen["right"]["verification"]["verifiedAt"] is not None
        assert seen["again"].get_status_code() == 400
        assert seen["status"] == seen["right"]["verification"]
        assert seen["unknown"].get_status_code() == 404
        assert seen["order"]["bonusesChargeTotal"] == 300
        assert seen["account"]["loyaltyAccounts"][0]["amount"] == 700

        # A second apply while a code is pending replaces the check (Bitrix's "resend").
        stale = (await in_thread(lambda: apply("o-2", 100)))["verification"]["checkId"]
        await in_thread(lambda: apply("o-2", 100))
        stale_code = next(m["code"] for m in emu.checkout.sms if m["checkId"] == stale)
        refused = await in_thread(
            lambda: crm(emu).verification_sms_confirm({"checkId": stale, "code": stale_code})
        )
        assert refused.get_status_code() == 400


async def test_a_completed_order_earns_bonuses_and_a_cancelled_one_gives_them_back(
    emulator: RetailcrmEmulator,
) -> None:
    def scenario() -> list[dict[str, Any]]:
        client = crm(emulator)
        ok(client.order_edit({"externalId": "o-1", "status": "complete"}))
        earned = ok(client.loyalty_accounts({"customerExternalId": "c-1"}))["loyaltyAccounts"][0]
        ok(client.order_edit({"externalId": "o-1", "status": "cancel-other"}))
        after = ok(client.loyalty_account_bonus_operations(earned["id"]))["bonusOperations"]
        return [earned, *after]

    earned, *operations = await in_thread(scenario)
    assert earned["amount"] == 1150 and earned["ordersSum"] == 3000  # 5 % of 3000
    assert [(o["type"], o["amount"]) for o in operations[:2]] == [
        ("cancel_of_credit", -150),
        ("credit_for_order", 150),
    ]


async def test_rate_limit_answers_503_per_key(http: aiohttp.ClientSession) -> None:
    async with RetailcrmEmulator() as emu:  # the default: 10 requests per second and key
        url = f"{emu.url}/api/v5/orders/no-such-order"

        async def one(key: str) -> tuple[int, Any]:
            async with http.get(url, headers={"X-API-KEY": key}) as response:
                return response.status, await response.json()

        started = time.monotonic()
        answers = await asyncio.gather(*(one(BRIDGE) for _ in range(25)))
        statuses = [status for status, _ in answers]
        assert set(statuses) == {404, 503}  # 404: there is no such order
        if time.monotonic() - started < 0.9:  # the whole burst fell in one window
            assert statuses.count(404) == 10 and statuses.count(503) == 15
        assert next(body for status, body in answers if status == 503) == {
            "success": False,
            "errorMsg": "Rate limit exceeded",
        }
        assert (await one(MANAGER))[0] == 404  # another key has its own window
        assert emu.stats["rateLimited"] == statuses.count(503)
        assert emu.requests_by_key == {"bridge": 25, "manager": 1}
        await asyncio.sleep(1.05)
        assert (await one(BRIDGE))[0] == 404


async def test_error_shapes(emulator: RetailcrmEmulator, http: aiohttp.ClientSession) -> None:
    api = f"{emulator.url}/api/v5"

    async def call(method: str, url: str, **kwargs: Any) -> tuple[int, str, str]:
        async with http.request(method, url, **kwargs) as response:
            return response.status, response.content_type, await response.text()

    status, _, text = await call("GET", f"{api}/orders")
    assert (status, json.loads(text)) == (
        403,
        {"success": False, "errorMsg": '"apiKey" is missing.'},
    )
    status, _, text = await call("GET", f"{api}/orders", headers={"X-API-KEY": "nope"})
    assert (status, json.loads(text)["errorMsg"]) == (403, 'Wrong "apiKey" value.')
    # §1.2: the key as a GET or form parameter; §1.3: bracketed filters.
    query = [("apiKey", BRIDGE), ("filter[ids][]", "5001"), ("filter[ids][]", "5002")]
    status, _, text = await call("GET", f"{api}/orders", params=query)
    assert status == 200 and [o["id"] for o in json.loads(text)["orders"]] == [5001, 5002]
    form = {"apiKey": MANAGER, "customer": json.dumps({"externalId": "f-1"}), "site": SITE}
    status, _, text = await call("POST", f"{api}/customers/create", data=form)
    assert status == 201 and json.loads(text)["success"] is True

    key = {"X-API-KEY": BRIDGE}
    status, _, text = await call("GET", f"{api}/customers/nobody", headers=key)
    assert (status, json.loads(text)) == (404, {"success": False, "errorMsg": "Not found"})
    form = {"customer": json.dumps({"externalId": "f-2", "email": "bad"})}
    status, _, text = await call("POST", f"{api}/customers/create", headers=key, data=form)
    assert status == 400 and json.loads(text) == {
        "success": False,
        "errorMsg": "Errors in the entity format",
        "errors": {"email": "This value is not a valid email address."},
    }
    status, _, text = await call("POST", f"{api}/orders/create", headers=key, data={"site": SITE})
    assert (status, json.loads(text)["errorMsg"]) == (400, "Parameter 'order' is missing")
    status, _, text = await call("GET", f"{api}/orders", headers=key, params={"limit": "7"})
    assert status == 400 and "limit" in json.loads(text)["errors"]
    status, _, text = await call("GET", f"{api}/no/such/method", headers=key)
    assert (status, json.loads(text)["errorMsg"]) == (404, "API method not found")

    # §1.5: a wrong account URL answers a non-GET with 405 and HTML, which the official
    # client cannot parse (§6.2).
    status, content_type, text = await call("POST", f"{emulator.url}/orders/create", headers=key)
    assert (status, content_type) == (405, "text/html") and text.startswith("<")
    wrong = retailcrm.v5(f"{emulator.url}/wrong-account", BRIDGE)
    with pytest.raises(requests.exceptions.JSONDecodeError):
        await in_thread(lambda: wrong.order_create({"externalId": "w"}, SITE))


async def test_injected_faults(emulator: RetailcrmEmulator, http: aiohttp.ClientSession) -> None:
    url, key = f"{emulator.url}/api/api-versions", {"X-API-KEY": BRIDGE}

    async def status(timeout: float = 5) -> int:
        limit = aiohttp.ClientTimeout(total=timeout)
        async with http.get(url, headers=key, timeout=limit) as response:
            await response.read()
            return response.status

    emulator.faults.set(http_status=502, count=1)
    assert await status() == 502
    assert await status() == 200
    # Not count=1: aiohttp retries an idempotent request once on a dropped keep-alive.
    emulator.faults.set(outage=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await status()
    emulator.faults.clear()
    emulator.faults.set(hang=5, count=1)
    with pytest.raises(asyncio.TimeoutError):
        await status(timeout=0.3)
    admin = f"{emulator.url}/__emulator__/faults"
    async with http.post(admin, json={"latency": 0.2, "count": 1}) as response:
        assert response.status == 200 and (await response.json())["latency"] == 0.2
    started = asyncio.get_running_loop().time()
    assert await status() == 200
    assert asyncio.get_running_loop().time() - started >= 0.2
    async with http.post(admin, json={"http_status": 42}) as response:
        assert response.status == 400
    async with http.get(f"{emulator.url}/__emulator__/state") as response:
        state = await response.json()
    assert {"orders", "customers", "loyaltyAccounts", "bonusOperations", "stats"} <= set(state)
    assert [c["externalId"] for c in state["customers"]] == ["c-1", "c-2", "c-3"]
