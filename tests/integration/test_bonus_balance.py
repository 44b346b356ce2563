"""``POST /api/v1/bonus/balance`` against both masters' emulators, over sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.bonus import ADMIN, MASTERS, BonusFactory, bonus_factory

__all__ = ["bonus_factory"]  # the fixture, used by name


@pytest.mark.parametrize("master", MASTERS)
@pytest.mark.parametrize("phone", ["+7 900 000-00-01", "8 (900) 000-00-01", "9000000001"])
async def test_balance_by_phone_in_any_notation(
    bonus_factory: BonusFactory, master: str, phone: str
) -> None:
    bonus = await bonus_factory(master)
    status, body = await bonus.balance({"customer": {"phone": phone}, "cart": {"total": "300.00"}})
    assert status == 200, body
    assert body["master"] == master
    assert (body["balance"], body["available"], body["reserved"]) == ("1000.00", "1000.00", "0.00")
    assert body["max_redeemable"] == "150.00"
    assert body["customer"]["phone"] == "+7 900 ***-**-01"
    assert (body["stale"], body["spendable"]) == (False, True)


@pytest.mark.parametrize("master", MASTERS)
async def test_balance_by_card_and_by_system_id(bonus_factory: BonusFactory, master: str) -> None:
    bonus = await bonus_factory(master)
    status, by_card = await bonus.balance({"customer": {"card": "2000000000015"}})
    assert status == 200
    cid = by_card["customer"]["id"]
    status, by_id = await bonus.balance({"customer": {"system": master, "id": cid}})
    assert (status, by_id["balance"]) == (200, "1000.00")
    other = "retailcrm" if master == "onec" else "onec"
    status, unknown = await bonus.balance({"customer": {"system": other, "id": "x-1"}})
    assert (status, unknown["code"]) == (404, "unknown_customer")
    await bonus.runtime.store.map_ids("customer", other, "x-1", master, cid)
    status, mapped = await bonus.balance({"customer": {"system": other, "id": "x-1"}})
    assert (status, mapped["customer"]["id"]) == (200, cid)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "customer"),
        ({"customer": {}}, "customer"),
        ({"customer": {"phone": "12"}}, "customer.phone"),
        ({"customer": {"phone": "+7 000 000-00-00"}}, "customer.phone"),
        ({"customer": {"phone": 79000000001}}, "customer.phone"),
        ({"customer": {"card": "1", "phone": "+79000000001"}}, "customer"),
        ({"customer": {"system": "onec"}}, "customer"),
        ({"customer": {"card": "x" * 65}}, "customer.card"),
        ({"customer": {"card": "1"}, "cart": {"total": 1.5}}, "cart.total"),
        ({"customer": {"card": "1"}, "cart": {"total": "1.234"}}, "cart.total"),
        ({"customer": {"card": "1"}, "cart": {"total": "-1"}}, "cart.total"),
        ({"customer": {"card": "1"}, "cart": {"total": "NaN"}}, "cart.total"),
        ({"customer": {"card": "1"}, "colour": "red"}, "colour"),
        ([], "body"),
    ],
)
async def test_bad_input_names_the_field(
    bonus_factory: BonusFactory, body: Any, field: str
) -> None:
    bonus = await bonus_factory("onec")
    status, problem = await bonus.balance(body)
    assert status == 422, problem
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: ")


async def test_auth_and_scope(bonus_factory: BonusFactory) -> None:
    bonus = await bonus_factory("onec")
    body = {"customer": {"card": "2000000000015"}}
    assert (await bonus.balance(body, headers={}))[0] == 401
    admin = ADMIN
    assert (await bonus.balance(body, headers=admin))[0] == 403


@pytest.mark.parametrize("master", MASTERS)
async def test_a_master_that_hangs_opens_the_breaker_and_lookups_fail_fast(
    bonus_factory: BonusFactory, master: str
) -> None:
    bonus = await bonus_factory(master, timeout_seconds=0.5)
    body = {"customer": {"card": "2000000000015"}}
    bonus.emulator.faults.set(hang=5)
    for _ in range(3):  # each waits out the 0.5 s budget, never the master's 5 s
        started = time.monotonic()
        status, problem = await bonus.balance(body)
        assert (status, problem["code"]) == (503, "master_unavailable")
        assert time.monotonic() - started < 1.5
    started = time.monotonic()
    status, problem = await bonus.balance(body)
    elapsed = time.monotonic() - started
    assert (status, problem["code"]) == (503, "master_unavailable")
    assert elapsed < 0.1, elapsed  # the breaker answers without asking the master
    assert int(problem["_retry_after"]) >= 1
    async with bonus.http.get(f"{bonus.url}/metrics") as resp:
        assert f'bridge_breaker_open{{system="{master}"}} 1.0' in await resp.text()


async def test_stale_mode_answers_the_last_known_balance_not_spendable(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec", when_master_down="stale")
    body = {"customer": {"card": "2000000000015"}}
    status, fresh = await bonus.balance(body)
    assert (status, fresh["stale"]) == (200, False)
    bonus.emulator.faults.set(outage=True)
    status, stale = await bonus.balance(body)
    assert status == 200
    assert (stale["stale"], stale["spendable"], stale["balance"]) == (True, False, "1000.00")
    status, never_seen = await bonus.balance({"customer": {"card": "2000000000022"}})
    assert (status, never_seen["code"]) == (503, "master_unavailable")


async def test_stale_mode_keeps_the_last_balance_of_the_most_recent_customers_only(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec", when_master_down="stale", stale_cache_size=1)
    first, second = {"card": "2000000000015"}, {"card": "2000000000022"}
    for customer in (first, second):
        assert (await bonus.balance({"customer": customer}))[0] == 200
    bonus.emulator.faults.set(outage=True)
    status, stale = await bonus.balance({"customer": second})
    assert (status, stale["stale"]) == (200, True)
    status, forgotten = await bonus.balance({"customer": first})  # pushed out by the second
    assert (status, forgotten["code"]) == (503, "master_unavailable")


async def test_without_stale_mode_no_balance_is_kept(bonus_factory: BonusFactory) -> None:
    bonus = await bonus_factory("onec")
    assert (await bonus.balance({"customer": {"card": "2000000000015"}}))[0] == 200
    service = bonus.runtime.bonus
    assert service is not None
    assert len(service._last) == 0  # what a fail-mode bridge holds
