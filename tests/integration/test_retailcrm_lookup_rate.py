"""RetailCRM as the bonus master at its real 10 requests/s (issue 16), through the bridge's
balance API, counted at the emulator over loopback: a warm look-up spends one request of
the key's budget (two with a cart: the cap is ``/loyalty/calculate``'s), so one key
sustains 8 look-ups/s without a 503."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.bonus import Bonus, BonusFactory, bonus_config, bonus_factory

__all__ = ["bonus_factory"]  # the fixture, used by name

PHONE = "+79000000001"
ACCOUNTS = "GET v5/loyalty/accounts"
ACCOUNT = "GET v5/loyalty/account/(?P<ref>[^/]+)"
CALCULATE = "POST v5/loyalty/calculate"
DETAILS = "GET v5/loyalty/account/(?P<ref>[^/]+)/bonus/(?P<status>[^/]+)/details"


async def at_ten_per_second(bonus_factory: BonusFactory, tmp_path: Path) -> Bonus:
    """The bridge with the sandbox RetailCRM, both at 10 requests/s (the emulator takes
    the limit from the system's options): RetailCRM's own limit, retailcrm-api.md §1.6."""
    config = bonus_config(tmp_path, "retailcrm")
    config["systems"]["retailcrm"]["options"]["rate_limit"] = 10
    return await bonus_factory("retailcrm", config=config)


async def look_up(bonus: Bonus, cart: str | None = None) -> tuple[Any, Counter[str]]:
    """One look-up by phone; its answer and the requests RetailCRM served for it."""
    before = Counter(bonus.emulator.requests_by_route)
    body: dict[str, Any] = {"customer": {"phone": PHONE}}
    if cart is not None:
        body["cart"] = {"total": cart}
    status, answer = await bonus.balance(body)
    assert status == 200, answer
    return answer, Counter(bonus.emulator.requests_by_route) - before


async def test_a_warm_look_up_spends_one_request(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await at_ten_per_second(bonus_factory, tmp_path)
    first, made = await look_up(bonus)
    assert made == {ACCOUNTS: 1, DETAILS: 2}  # the listed account answers the balance
    warm, made = await look_up(bonus)
    assert made == {ACCOUNT: 1}
    assert (warm["balance"], warm["customer"]["id"]) == (first["balance"], first["customer"]["id"])
    capped, made = await look_up(bonus, "300.00")
    assert made == {ACCOUNT: 1, CALCULATE: 1}  # the cart's cap needs calculate
    assert capped["max_redeemable"] == "150.00"


async def test_one_key_sustains_eight_look_ups_a_second_without_a_503(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await at_ten_per_second(bonus_factory, tmp_path)
    await look_up(bonus)  # cold: the account found, its details read
    await asyncio.sleep(1.1)  # the emulator's one-second window empty again
    before, refused = Counter(bonus.emulator.requests_by_route), bonus.emulator.stats["rateLimited"]
    rate, seconds = 8, 5
    started = time.monotonic()

    async def one(i: int) -> tuple[int, float]:
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))  # open loop
        sent = time.monotonic()
        status, body = await bonus.balance({"customer": {"phone": PHONE}})
        assert status == 200, body
        return status, time.monotonic() - sent

    answers = await asyncio.gather(*(one(i) for i in range(rate * seconds)))
    assert [status for status, _ in answers] == [200] * rate * seconds  # bonus timeout 0.5 s
    assert bonus.emulator.stats["rateLimited"] == refused  # no 503 from RetailCRM
    assert Counter(bonus.emulator.requests_by_route) - before == {ACCOUNT: rate * seconds}
    assert time.monotonic() - started < seconds + 1  # kept up with the schedule
