"""The RetailCRM limiter's window rule against the emulator's meter (issue 16): a turn comes a
second after the answer of the request ``n`` turns back, so requests that leave late (a
worker thread on a busy host) never crowd a one-second window, and quick answers let the
key run within a few per cent of its ceiling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from connectors.retailcrm.client import RetailcrmClient
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.ratelimit import RateLimiter

RATE = 20  # requests per second for the emulator and the limiter: short runs
KEY = "sandbox-bridge-key-0001"


@pytest.fixture
async def crm() -> AsyncIterator[tuple[RetailcrmEmulator, RetailcrmClient]]:
    async with RetailcrmEmulator(rate_limit=RATE) as emulator:
        client = RetailcrmClient(emulator.url, KEY, timeout=5, pool_size=8)
        yield emulator, client
        client.close()


async def send_all(
    limiter: RateLimiter, client: RetailcrmClient, delays: list[float]
) -> list[float]:
    """One request per delay, each leaving that late after its turn; the turns' times."""
    loop, turns = asyncio.get_running_loop(), list[float]()

    def late(delay: float) -> None:
        time.sleep(delay)  # what a busy host does to a worker thread
        client.api_credentials()

    async def call(delay: float) -> None:
        turn = await limiter.begin()
        turns.append(turn.granted)
        await loop.run_in_executor(pool, turn.around(lambda: late(delay)))

    with ThreadPoolExecutor(max_workers=8) as pool:
        await asyncio.gather(*(call(delay) for delay in delays))
    return turns


async def test_requests_that_leave_late_never_crowd_a_second(
    crm: tuple[RetailcrmEmulator, RetailcrmClient],
) -> None:
    """The first three requests of every other second leave 0.3 s after their turn, three
    times the margin a fixed spacing kept (10 %, which let the next second's first request
    in as the twenty-first of a window: 503): the emulator refuses none."""
    emulator, client = crm
    delays = [0.3 if k % (2 * RATE) < 3 else 0.0 for k in range(3 * RATE)]
    await send_all(RateLimiter(RATE), client, delays)
    assert emulator.stats["requests"] == 3 * RATE
    assert emulator.stats["rateLimited"] == 0


async def test_quick_answers_use_the_budget_nearly_whole(
    crm: tuple[RetailcrmEmulator, RetailcrmClient],
) -> None:
    """Three seconds of turns take at most 5 % longer than the ceiling allows (the fixed
    10 % margin of before took 7 %: 3.15 s for 3 windows of 20)."""
    emulator, client = crm
    turns = await send_all(RateLimiter(RATE), client, [0.0] * (3 * RATE))
    best = (3 * RATE - 1) / RATE  # evenly at the ceiling: 2.95 s
    assert best / (turns[-1] - turns[0]) >= 0.95
    assert emulator.stats["rateLimited"] == 0


async def test_an_unanswered_request_holds_the_window_until_its_answer() -> None:
    """The request ``n`` turns back must be answered a whole window before the next turn."""
    limiter = RateLimiter(5)  # n = 5 per second
    first = await limiter.begin()
    for _ in range(4):
        await limiter.begin()
    began = time.monotonic()
    asyncio.get_running_loop().call_later(0.3, first.end)
    await limiter.acquire()
    assert time.monotonic() - began == pytest.approx(1.3, abs=0.1)
