"""Look-ups recover within seconds of the master (issue 12, point 17): while the breaker is
open it lets one trial call through every few seconds, so the first trial after the master
is back closes it; a master asking to slow down (RetailCRM's 503) is no failure."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.bonus.breaker import PROBE_MAX, Breaker, BreakerState
from tests.support.bonus import MASTERS, Bonus, BonusFactory, bonus_factory

__all__ = ["bonus_factory"]  # the fixture, used by name

CARD = {"customer": {"card": "2000000000015"}}
BUDGET = 0.5  # bonus.timeout_seconds, given to each bridge here


def state(breaker: Breaker) -> BreakerState:
    """The state now (a call, so that mypy does not narrow it across calls)."""
    return breaker.state


async def take_down(bonus: Bonus, fault: str) -> None:
    """The master stops answering: its process stopped, connections cut, or a hang."""
    if fault == "stopped":
        await bonus.emulator.stop()
    else:
        bonus.emulator.faults.set(**({"outage": True} if fault == "outage" else {"hang": 5}))


async def bring_back(bonus: Bonus, fault: str) -> None:
    """The master answers again (a stopped one restarts on the same port, data kept)."""
    if fault == "stopped":
        await bonus.emulator.start()
    else:
        bonus.emulator.faults.set()


@pytest.mark.parametrize("fault", ["stopped", "outage", "hang"])
@pytest.mark.parametrize("master", MASTERS)
async def test_lookups_recover_within_seconds_of_the_master(
    bonus_factory: BonusFactory, master: str, fault: str
) -> None:
    bonus = await bonus_factory(master, timeout_seconds=BUDGET)  # failures: 3, reset: 30 s
    service = bonus.runtime.bonus
    assert service is not None
    await take_down(bonus, fault)
    for _ in range(3):
        status, _ = await bonus.balance(CARD)
        assert status == 503
    assert state(service.breaker) is BreakerState.OPEN

    # Down for 2 s more: answers stay fast but for the few trial calls.
    slow = 0
    until = time.monotonic() + 2.0
    while time.monotonic() < until:
        started = time.monotonic()
        status, problem = await bonus.balance(CARD)
        assert (status, problem["code"]) == (503, "master_unavailable")
        assert 1 <= int(problem["_retry_after"]) <= PROBE_MAX
        slow += time.monotonic() - started > BUDGET / 2
        await asyncio.sleep(0.05)
    assert slow <= 3  # trials at 0.5 s, then 1 s, then 2 s after each failed one

    await bring_back(bonus, fault)
    back = time.monotonic()
    while True:
        status, answer = await bonus.balance(CARD)
        if status == 200:
            break
        assert time.monotonic() - back < PROBE_MAX + 2 * BUDGET, "no recovery in time"
        await asyncio.sleep(0.05)
    assert time.monotonic() - back <= PROBE_MAX + 2 * BUDGET
    assert answer["balance"] == "1000.00"
    assert state(service.breaker) is BreakerState.CLOSED


async def test_a_master_asking_to_slow_down_does_not_open_the_breaker(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("retailcrm", timeout_seconds=BUDGET)  # failures: 3
    service = bonus.runtime.bonus
    assert service is not None
    bonus.emulator.faults.set(http_status=503, count=4)  # RetailCRM's rate limit answer
    answers = []
    until = time.monotonic() + 6
    while time.monotonic() < until:
        started = time.monotonic()
        status, body = await bonus.balance(CARD)
        assert time.monotonic() - started < BUDGET + 0.2
        answers.append(status)
        assert state(service.breaker) is BreakerState.CLOSED, answers
        if status == 200:
            break
        assert (status, body["code"]) == (503, "master_unavailable"), body
        assert body["_retry_after"] is not None
        await asyncio.sleep(0.1)
    assert answers[-1] == 200, answers
    assert answers.count(503) >= 4
