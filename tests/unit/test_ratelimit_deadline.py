"""The RetailCRM limiter honours the caller's deadline (issue 12, point 15): callers with a
deadline go earliest deadline first, and one whose turn would come after its deadline is
refused at once with ``RateLimited`` instead of queueing past it."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.deadline import current_deadline, cut_off_within, deadline_within
from bridge.errors import RateLimited
from connectors.retailcrm.ratelimit import RateLimiter


async def test_a_turn_past_the_deadline_is_refused_at_once() -> None:
    limiter = RateLimiter(5)  # a turn every 0.22 s
    await limiter.acquire()
    began = time.monotonic()
    with deadline_within(0.1), pytest.raises(RateLimited) as refused:
        await limiter.acquire()
    assert time.monotonic() - began < 0.05
    assert refused.value.retry_after == pytest.approx(limiter.interval, abs=0.05)
    began = time.monotonic()
    await limiter.acquire()  # the refused caller's place is not kept
    assert time.monotonic() - began < 1.5 * limiter.interval


async def test_callers_with_a_deadline_go_before_those_without_and_note_the_wait() -> None:
    limiter = RateLimiter(10)  # a turn every 0.11 s
    await limiter.acquire()
    order: list[str] = []

    async def background(name: str) -> None:
        await limiter.acquire()
        order.append(name)

    async def till() -> float:
        with deadline_within(1.0) as deadline:
            await limiter.acquire()
            order.append("till")
            assert current_deadline() is deadline
            return deadline.waited

    queued = [asyncio.create_task(background(f"delivery-{n}")) for n in range(4)]
    await asyncio.sleep(0)  # the deliveries queue first
    waited = await till()
    await asyncio.gather(*queued)
    assert order[0] == "till"  # ahead of the four deliveries that came before it
    assert order[1:] == [f"delivery-{n}" for n in range(4)]  # they keep arrival order
    assert 0.05 < waited < 0.3


async def test_requests_finish_one_after_another_rather_than_all_late() -> None:
    """Four requests of three calls each, one budget per request: earliest deadline first
    lets the first requests finish instead of advancing all four in lock-step."""
    limiter = RateLimiter(20)  # a turn every 0.055 s
    finished: dict[int, float] = {}
    began = time.monotonic()

    async def request(n: int) -> None:
        with deadline_within(2.0):
            for _ in range(3):
                await limiter.acquire()
        finished[n] = (time.monotonic() - began) / limiter.interval

    await asyncio.gather(*(request(n) for n in range(4)))
    assert list(finished) == [0, 1, 2, 3]
    # In turns: the first request is done after its 3 calls, not after 9 (lock-step).
    assert finished[0] < 3.5, finished
    assert finished[1] < 6.5, finished


def test_a_connector_leaves_out_its_own_timer_only_under_a_sooner_enforced_one() -> None:
    assert not cut_off_within(10.0)  # no caller's deadline at all
    with deadline_within(1.0) as deadline:
        assert not cut_off_within(10.0)  # a deadline no timer enforces
        deadline.enforced = True
        assert cut_off_within(10.0)
        assert not cut_off_within(0.5)  # the caller's timer comes later than the bound
        with deadline_within(0.2):
            assert not cut_off_within(10.0)  # the inner one is not enforced
    assert not cut_off_within(10.0)
