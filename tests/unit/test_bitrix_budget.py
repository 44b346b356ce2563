"""The bridge's Bitrix bucket at its defaults against the portal's (issue 16): requests that
reach the portal up to 0.9 s after their turn are never refused, and a backlog of 200
requests uses at least 97 % of the portal's ceiling.

Our bucket counts a request at its turn, the portal when it arrives; a request that arrives
late while the portal's bucket is empty drains less there, so the portal's fill can run
ahead of ours by the lateness times the rate: the 2 requests of depth we keep back cover
1 s of it (bitrix.md §1.6: 50 deep, 2 per second). The clock is faked (and ``sleep``
advances it), the portal's meter is the emulator's own ``PortalBucket``.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from connectors.bitrix.client import LeakyBucket
from connectors.bitrix.emulator.limits import PortalBucket
from connectors.bitrix.options import RateOptions
from tests.support.clock import Clock

REQUESTS = 200  # the bench's backlog: 10,000 writes in batches of 50


async def turns(capacity: float, rate: float, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The times a backlog of REQUESTS gets its turns from our bucket, on a fake clock."""
    clock = Clock(0.0)

    async def sleep(seconds: float) -> None:
        clock.now += max(0.0, seconds) + 1e-6  # a sleep never returns in no time at all

    monkeypatch.setattr(asyncio, "sleep", sleep)  # the bucket's waits move the fake clock
    bucket, out = LeakyBucket(capacity, rate, clock=clock), []
    for _ in range(REQUESTS):
        await bucket.acquire()
        out.append(clock.now)
    return out


def refused_by_portal(sent: list[float], late: list[float]) -> int:
    """How many requests the portal (50 deep, 2/s) refuses when each arrives ``late`` s
    after its turn, in the order they arrive."""
    clock = Clock(0.0)
    portal, refused = PortalBucket(50, 2.0, clock), 0
    for arrival in sorted(t + d for t, d in zip(sent, late, strict=True)):
        clock.now = arrival
        refused += not portal.admit("bridge")
    return refused


def lateness() -> list[float]:
    """The first requests (an idle bucket filling up) 0.9 s late, the rest at random."""
    pick = random.Random(16)
    return [0.9 if n < 5 else pick.uniform(0.0, 0.9) for n in range(REQUESTS)]


async def test_defaults_survive_late_arrivals_and_use_the_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rate = RateOptions()
    sent = await turns(rate.burst, rate.per_second, monkeypatch)
    assert refused_by_portal(sent, lateness()) == 0
    # From an empty bucket the portal admits 50 + 2 T requests in T seconds (§1.6).
    span = sent[-1] - sent[0]
    assert REQUESTS / (50 + 2.0 * span) >= 0.97


async def test_the_portals_own_figures_would_be_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why we keep depth back: a bucket as deep as the portal's trips it on late arrivals."""
    sent = await turns(50, 2.0, monkeypatch)
    assert refused_by_portal(sent, lateness()) > 0
