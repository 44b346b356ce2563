"""Request budgets shared by every instance of the bridge (issue 15).

A system's rate limit is per API key or per portal, not per process: RetailCRM allows 10
requests per second per key (retailcrm-api.md §1.6), a Bitrix24 portal drains its bucket at
2 requests per second (bitrix.md §1.6). Several ``bridge serve`` on one PostgreSQL take
their turns from one schedule kept in the database, so together they stay under the limit.

The schedule is the generic cell rate algorithm (GCRA): one row per budget holds the
theoretical arrival time ``tat``; a request asks for a turn, which moves ``tat`` on by the
emission interval ``T`` and tells the caller how long to wait. With no burst allowed the
turns are evenly spaced ``T`` apart (RetailCRM's limiter); with a burst of ``b`` requests,
up to ``b`` go at once and the rest drain at ``1/T`` (Bitrix's leaky bucket). One statement
per request, atomic under the row's lock, timed by the database's clock so instances with
skewed clocks agree.

The in-process limiters still order their own callers and honour deadlines; the shared
schedule is asked last, just before the request goes. A turn taken and then not used (the
caller's deadline passed) leaves a gap: the budget is never overrun, only under-used.
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

_SHARED: SharedBudgets | None = None


@runtime_checkable
class SharedBudgets(Protocol):
    """Turns from a schedule every instance shares."""

    async def turn(self, key: str, interval: float, burst: int = 1) -> float:
        """Take the next turn of budget ``key`` (one request every ``interval`` seconds,
        ``burst`` at once at most); the seconds to wait before sending, 0 to send now."""
        ...

    async def hold(self, key: str, seconds: float) -> None:
        """Give no turn of ``key`` for ``seconds`` from now (the system said 503 or 429)."""
        ...

    async def close(self) -> None:
        """Give the connections back."""
        ...


def install(budgets: SharedBudgets | None) -> None:
    """Use ``budgets`` for every limiter of this process (None: each process on its own)."""
    global _SHARED  # noqa: PLW0603 - one schedule per process, as the limiters are
    _SHARED = budgets


def shared() -> SharedBudgets | None:
    """The shared schedule, when the store is one several instances share."""
    return _SHARED


async def take_turn(key: str, interval: float, burst: int = 1) -> float:
    """Wait for a turn of the shared schedule, if there is one; the seconds waited."""
    budgets = _SHARED
    if budgets is None:
        return 0.0
    wait = await budgets.turn(key, interval, burst)
    if wait > 0:
        await asyncio.sleep(wait)
    return wait


def hold_shared(key: str, seconds: float) -> None:
    """Tell the shared schedule to hold ``key`` (from a limiter's synchronous ``hold``)."""
    budgets = _SHARED
    if budgets is None:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return  # no loop: nothing is sending now either
    task = loop.create_task(budgets.hold(key, seconds))
    _PENDING.add(task)
    task.add_done_callback(_PENDING.discard)


_PENDING: set[asyncio.Task[None]] = set()  # holds in flight (a task needs a reference)
