"""A circuit breaker per master: repeat failures make the next calls fail at once, and
trial calls find out within seconds when the master is back.

closed ──N failures in a row──► open ──probe interval──► half_open: one trial call
  ▲                               ▲                          │
  └────────── success ────────────┼──────────────────────────┤
                                  └── failure: next interval ┘

While open, callers get ``BreakerOpen`` without waiting on the master (PRODUCT 3.1: never
let a till wait; repeat failures are instant). Once a probe interval has passed, the next
caller is let through as the one trial call; the others still fail at once. The trial's
success closes the breaker; its failure opens it for a longer interval: ``PROBE_FIRST``
seconds, doubled after each failed trial up to ``PROBE_MAX`` (or ``reset_seconds`` if that
is shorter). A fixed 30 s wait kept look-ups failing up to 30 s after the master was back
(issue 12); with these intervals they recover at most ``PROBE_MAX`` seconds after it, and a
master that stays down sees one call every few seconds.

A call that ends with no verdict on the master — it waited for a rate limit's turn, it was
cancelled — is ``released``: neither a failure nor a success, and a trial's slot is free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from bridge.errors import TransientError

PROBE_FIRST = 0.5  # seconds from opening to the first trial call
PROBE_MAX = 4.0  # the longest interval between trial calls


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


def probe_interval(failed_trials: int, reset_seconds: float) -> float:
    """Seconds from (re)opening to the next trial call: 0.5, 1, 2, 4, 4 … s by default."""
    longest = min(PROBE_MAX, reset_seconds)
    return min(longest, PROBE_FIRST * 2.0 ** min(failed_trials, 16))


class Breaker:
    """Counts consecutive failures of one system's calls; probes while open."""

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
        self._failed_trials = 0
        self._opened_at: float | None = None  # when it last opened (or a trial failed)
        self._trial = False  # a trial call is under way

    @property
    def state(self) -> BreakerState:
        """Closed, open, or half-open (a trial call is due or under way)."""
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._trial or self.retry_after() <= 0:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_after(self) -> float:
        """Seconds until the next trial call may start (0 if closed or due)."""
        if self._opened_at is None:
            return 0.0
        due = self._opened_at + probe_interval(self._failed_trials, self._reset)
        return max(0.0, due - self._clock())

    def before_call(self) -> bool:
        """Raise BreakerOpen unless a call may go to the master now; True if this call is
        the trial call (pass it back to ``failed`` or ``released``)."""
        if self._opened_at is None:
            return False
        wait = self.retry_after()
        if wait > 0 or self._trial:
            # Another trial under way: it ends within the call budget.
            raise BreakerOpen(self.system, max(1.0, wait))
        self._trial = True
        return True

    def succeeded(self) -> bool:
        """Record a success; True if this closed an open breaker (log "recovered" once)."""
        was_open = self._opened_at is not None
        self._failures, self._failed_trials, self._opened_at, self._trial = 0, 0, None, False
        return was_open

    def failed(self, trial: bool = False) -> bool:
        """Record a failure; True if this opened the breaker (log "unavailable" once)."""
        self._failures += 1
        if self._opened_at is not None:
            if trial:  # the master is still down: wait longer before the next trial
                self._failed_trials += 1
                self._opened_at, self._trial = self._clock(), False
            # else: a call made before the breaker opened, failing late; nothing new.
            return False
        if self._failures >= self._threshold:
            self._opened_at, self._failed_trials = self._clock(), 0
            return True
        return False

    def released(self, trial: bool) -> None:
        """A call ended with no verdict on the master; a trial's slot is free again."""
        if trial:
            self._trial = False
