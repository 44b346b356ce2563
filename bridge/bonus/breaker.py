"""A circuit breaker per master: repeat failures make the next calls fail at once.

closed ──N failures in a row──► open ──reset_seconds──► half_open ──success──► closed
                                  ▲                         │
                                  └──────── failure ────────┘

While open, callers get ``BreakerOpen`` without waiting on the master (PRODUCT 3.1: never
let a till wait; repeat failures are instant). Half-open lets one trial call through.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from bridge.errors import TransientError


class BreakerState(StrEnum):
    """Where a breaker is."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerOpen(TransientError):
    """The master failed repeatedly; calls are refused until ``retry_after`` passes."""

    def __init__(self, system: str, retry_after: float) -> None:
        super().__init__(f"{system} is unavailable (circuit open)")
        self.retry_after = retry_after


class Breaker:
    """Counts consecutive failures of one system's calls."""

    def __init__(
        self,
        system: str,
        *,
        failures: int = 5,
        reset_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.system = system
        self._threshold = failures
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> BreakerState:
        """Closed, open, or half-open (the reset time has passed)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._clock() - self._opened_at >= self._reset:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def before_call(self) -> None:
        """Raise BreakerOpen unless a call may go to the master now."""
        state = self.state
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN and self._trial):
            assert self._opened_at is not None
            wait = max(1.0, self._reset - (self._clock() - self._opened_at))
            raise BreakerOpen(self.system, wait)
        if state is BreakerState.HALF_OPEN:
            self._trial = True  # one trial call at a time

    def succeeded(self) -> bool:
        """Record a success; True if this closed an open breaker (log "recovered" once)."""
        was_open = self._opened_at is not None
        self._failures, self._opened_at, self._trial = 0, None, False
        return was_open

    def failed(self) -> bool:
        """Record a failure; True if this opened the breaker (log "unavailable" once)."""
        self._failures += 1
        if self._opened_at is not None:  # a failed trial: open again for a full period
            self._opened_at, self._trial = self._clock(), False
            return False
        if self._failures >= self._threshold:
            self._opened_at = self._clock()
            return True
        return False
