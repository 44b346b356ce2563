"""A till's time budget holds under RetailCRM's rate limit (issue 12, point 15): ten
reservations at once for one customer, RetailCRM as the master at its real 10 requests/s
per key. Time waiting for the limiter counts against the budget: every answer comes within
``bonus.timeout_seconds``, those that cannot be served in time are refused at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import retailcrm

from tests.support.bonus import Bonus, BonusFactory, bonus_config, bonus_factory

__all__ = ["bonus_factory"]  # the fixture, used by name

RSV = "/api/v1/bonus/reservations"
BUDGET = 3.0  # the default bonus.timeout_seconds
MARGIN = 0.3  # the bridge's own work around the master calls: store, SMS outbox, HTTP
ORDERS = 10


async def orders_of_the_first_customer(bonus: Bonus) -> list[str]:
    """Ten orders of customer c-1 (+79000000001), made as the shop's site would, paced
    under the manager key's own limit."""
    client = retailcrm.v5(bonus.emulator.url, "sandbox-manager-key-0001")
    made: list[str] = []
    for n in range(ORDERS):
        external_id = f"till-burst-{n}"
        data: dict[str, Any] = {
            "externalId": external_id,
            "customer": {"externalId": "c-1"},
            "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 1500}],
        }
        answer = await asyncio.to_thread(create_order, client, data)
        assert answer.get("success"), answer
        made.append(external_id)
        await asyncio.sleep(0.15)
    return made


def create_order(client: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``/orders/create`` with the official client (blocking: run it in a thread)."""
    answer: dict[str, Any] = client.order_create(data, "shop").get_response()
    return answer


async def reserve(bonus: Bonus, order_id: str) -> tuple[int, Any, float]:
    body = {
        "customer": {"phone": "+7 900 000-00-01"},
        "amount": "10.00",
        "order": {"system": "retailcrm", "id": order_id},
        "channel": "till",
    }
    started = time.monotonic()
    status, answer = await bonus.call("POST", RSV, body)
    return status, answer, time.monotonic() - started


async def test_ten_reservations_at_once_all_answer_within_the_budget(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = bonus_config(
        tmp_path, "retailcrm", timeout_seconds=BUDGET, reservations={"max_codes_per_phone": 50}
    )
    options = config["systems"]["retailcrm"]["options"]
    # RetailCRM's real limit, on a key of this test's own (limiters are per key and process).
    options |= {"rate_limit": 10, "api_key": "budget-test-key-0000001"}
    bonus = await bonus_factory("retailcrm", config=config)
    orders = await orders_of_the_first_customer(bonus)
    await asyncio.sleep(1.1)  # the emulator's one-second window forgets the set-up
    bonus.emulator.stats["rateLimited"] = 0

    answers = await asyncio.gather(*(reserve(bonus, order) for order in orders))

    for status, answer, elapsed in answers:
        assert elapsed <= BUDGET + MARGIN, (status, answer, elapsed)
        if status != 201:
            assert (status, answer["code"]) == (503, "master_unavailable"), answer
            assert int(answer["_retry_after"]) >= 1
    created = [a for s, a, _ in answers if s == 201]
    assert len(created) >= 3, [(s, a.get("code")) for s, a, _ in answers]
    assert bonus.emulator.stats["rateLimited"] == 0  # the bridge never tripped the limit
    service = bonus.runtime.bonus
    assert service is not None
    assert service.breaker.state == "closed"  # waiting for turns is not a master failure
