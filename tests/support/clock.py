"""The one thing the tests fake besides randomness: a clock moved by hand."""

from __future__ import annotations

T0 = 1_800_000_000.0  # 2027-01-15, a moment no test reaches by sleeping


class Clock:
    """A clock tests move by hand (``clock.now = T0 + 31``); callable like ``time.time``."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
