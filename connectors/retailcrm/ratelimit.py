"""One request budget per RetailCRM API key, shared by every caller in the process.

RetailCRM allows 10 requests per second per key and answers 503 above it (retailcrm-api.md
§1.6); the emulator counts a sliding one-second window. ``RateLimiter`` is an evenly spaced
scheduler, not a token bucket of capacity ``rate``: such a bucket lets a full burst start
at the end of one second and another at the start of the next, which a sliding window sees
as up to twice the rate. Spacing also suits a server that meters like nginx's ``limit_req``
(a leaky bucket with no burst), which a burst would trip at once.

The guarantee: two callers are let through at least ``interval = (1 + margin) / n``
seconds apart, ``n = floor(rate)`` (below 1/s, ``interval = (1 + margin) / rate``), as
measured on the limiter's clock when each is let through (checked and recorded under one
lock, so a late wake-up cannot squeeze the next caller in). ``n + 1`` starts then span at
least ``n * interval = 1 + margin`` seconds, so no one-second window, sliding or fixed,
open or closed, holds more than ``n``. ``margin`` (10 % by default) is the slack for the
network: request ``k + n`` reaches the server at least ``margin`` seconds after request
``k`` unless their delays differ by more than that; at 10/s it costs 10 % of the ceiling.
Callers go in arrival order (tickets); one pushed back (a late wake-up, ``hold`` after a
503) pushes everyone behind it.

The lock is a ``threading.Lock`` never held across an ``await``, so one limiter serves every
event loop and thread of the process; nothing is bound to a loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import threading
import time
from collections.abc import Callable

# 10 %: the 10,000-order bench met one 503 at 5 %, when the emulator's loop stalled ~60 ms
# and two of our requests, 105 ms apart when sent, were counted closer together.
DEFAULT_MARGIN = 0.10


class RateLimiter:
    """Lets callers start at most ``floor(rate)`` requests in any one-second window, in order."""

    def __init__(
        self,
        rate: float,
        *,
        margin: float = DEFAULT_MARGIN,
        name: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate: must be a positive number of requests per second, not {rate}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin: must be a fraction >= 0, not {margin}")
        self.name = name
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._issued = 0  # tickets handed out
        self._done = 0  # tickets let through or abandoned
        self._base = -math.inf  # ticket k may start at _base + k * interval, not before
        self._last = -math.inf  # when the last caller was let through
        self._paused_until = -math.inf
        self.rate = rate
        self.interval = self._interval_for(rate)

    def __repr__(self) -> str:
        return f"RateLimiter(key={self.name or '?'}, rate={self.rate:g}/s)"

    async def acquire(self) -> None:
        """Wait for this caller's turn; on return it may start one request."""
        with self._lock:
            ticket = self._issued
            self._issued += 1
            now = self._clock()
            if self._base + ticket * self.interval < now:
                self._base = now - ticket * self.interval  # idle until now: go at once
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    due = max(
                        self._base + ticket * self.interval,
                        self._last + self.interval,
                        self._paused_until,
                    )
                    if now >= due:
                        self._last = now
                        self._done += 1
                        return
                    # Pushed back (a late predecessor, a pause): push everyone behind alike,
                    # which keeps both the spacing and the order.
                    self._base = max(self._base, due - ticket * self.interval)
                await asyncio.sleep(due - now)
        except BaseException:  # cancelled while waiting: give the turn up
            with self._lock:
                if ticket == self._issued - 1:
                    self._issued -= 1  # the last in line: the next caller takes its place
                else:
                    self._done += 1  # mid-queue: its slot passes unused
            raise

    def hold(self, seconds: float) -> None:
        """Let no caller start for ``seconds`` from now (after a 503 or 429); keep the order."""
        with self._lock:
            until = self._clock() + max(0.0, seconds)
            if until <= self._paused_until:
                return
            self._paused_until = until
            # The next waiting ticket (about _done) starts at `until`, the rest spaced after it.
            self._base = max(self._base, until - self._done * self.interval)

    async def pause(self, seconds: float) -> None:
        """Make every caller back off for ``seconds``; return when the pause is over."""
        self.hold(seconds)
        await asyncio.sleep(max(0.0, self._paused_until - self._clock()))

    def slow_to(self, rate: float) -> None:
        """Lower the rate (never raise it): the queue keeps its order at the new spacing."""
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate: must be a positive number of requests per second, not {rate}")
        with self._lock:
            if rate >= self.rate:
                return
            interval = self._interval_for(rate)
            anchor = self._base + self._done * self.interval  # when the next ticket may go
            self._base = anchor - self._done * interval
            self.rate, self.interval = rate, interval

    def _interval_for(self, rate: float) -> float:
        per_second = math.floor(rate) if rate >= 1 else rate
        return (1.0 + self._margin) / per_second


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def key_id(api_key: str) -> str:
    """A short stable name for an API key that reveals nothing of it (for logs and reprs)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


def limiter_for(api_key: str, rate: float, *, margin: float = DEFAULT_MARGIN) -> RateLimiter:
    """The process-wide limiter of ``api_key``; asked again with a lower rate, it slows down."""
    name = key_id(api_key)
    with _limiters_lock:
        limiter = _limiters.get(name)
        if limiter is None:
            limiter = _limiters[name] = RateLimiter(rate, margin=margin, name=name)
        else:
            # Two systems sharing a key share its budget: the stricter setting wins.
            limiter.slow_to(rate)
        return limiter
