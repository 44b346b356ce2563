"""How long the caller of a master call is still prepared to wait, carried down the call
to whoever might make it wait longer (issue 12: a till's time budget under load).

A till's look-up or reservation has one budget (``bonus.timeout_seconds``) for all its
master calls. A rate limiter deep in a connector (RetailCRM: 10 requests/s per key) used to
queue a call past that budget, only for the call to be cut off when its turn came: ten
reservations at once answered 503 after 3.5-5.4 s. With a :class:`Deadline` in the context
the limiter refuses at once (``RateLimited``) when the caller's turn would come after the
deadline, and notes how long it made the caller wait (a wait is not the master's fault).

The deadline is a ``contextvars`` value: it follows the call through ``await`` in the same
task without being passed through every signature in between (the ``Ledger`` protocol, the
connectors' own helpers).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Deadline:
    """An instant on ``time.monotonic()``'s clock, and the time spent waiting for turns."""

    at: float
    waited: float = 0.0  # seconds a rate limiter held the caller back
    enforced: bool = False  # a timer cancels the call at ``at`` (BonusService.call_master)

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.at - time.monotonic()


_current: ContextVar[Deadline | None] = ContextVar("bridge_deadline", default=None)


def current_deadline() -> Deadline | None:
    """The innermost deadline of the running call, if any."""
    return _current.get()


def cut_off_within(seconds: float) -> bool:
    """Whether an enclosing timer cancels the running call within ``seconds`` from now, so
    a bound of that length of its own (one more timer on the loop per call) is moot."""
    deadline = _current.get()
    return deadline is not None and deadline.enforced and deadline.remaining() <= seconds


@contextmanager
def deadline_within(seconds: float) -> Iterator[Deadline]:
    """A deadline ``seconds`` from now, or the enclosing one if that comes sooner."""
    at = time.monotonic() + max(0.0, seconds)
    outer = _current.get()
    if outer is not None:
        at = min(at, outer.at)
    deadline = Deadline(at)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)
        if outer is not None:
            outer.waited += deadline.waited
