"""What keeps a bench from hanging: a whole-run deadline, a stall detector, and what the
store says about the deliveries that did not land (for the message a stuck run exits with).

Every bench bounds each of its own waits (an HTTP timeout, ``select`` on a child's pipe,
``--timeout``); the deadline is the backstop for a wait the bench did not foresee (a
blocking client call with no timeout of its own, a child that stops answering). It raises
``SystemExit`` in the main thread, so the bench's ``finally`` blocks still reap the
daemon and the emulators.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from types import FrameType


class Deadline:
    """``SystemExit`` with ``what`` once ``seconds`` have passed (``SIGALRM``)."""

    def __init__(self, seconds: float, what: str) -> None:
        self.seconds, self.what = seconds, what

    def __enter__(self) -> Deadline:
        signal.signal(signal.SIGALRM, self._expired)
        signal.setitimer(signal.ITIMER_REAL, self.seconds)
        return self

    def __exit__(self, *exc: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    def _expired(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(f"{self.what}: no result within {self.seconds:g} s, stopped")


class Stall:
    """Whether a count has stood still for ``seconds``; ``stuck`` is asked at every poll."""

    def __init__(self, seconds: float, what: str, store: Path | None = None) -> None:
        self.seconds, self.what, self.store = seconds, what, store
        self.value: int | None = None
        self.since = time.monotonic()

    def stuck(self, value: int) -> str | None:
        """Note the count now; a message saying what stood still and what the store holds
        once it has not changed for ``seconds``, else None."""
        now = time.monotonic()
        if value != self.value:
            self.value, self.since = value, now
            return None
        if now - self.since <= self.seconds:
            return None
        return self.why(f"{self.what} stuck at {value} for {self.seconds:g} s")

    def why(self, message: str) -> str:
        """``message`` and, when the bench has a store, the deliveries that did not land."""
        return message if self.store is None else f"{message}; {stuck_deliveries(self.store)}"


def stuck_deliveries(db_path: Path) -> str:
    """The deliveries not done, by target, status and last error (read-only, best effort)."""
    query = (
        "SELECT target, status, coalesce(last_error, ''), count(*) FROM deliveries"
        " WHERE status != 'done' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 5"
    )
    try:
        with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=2)) as db:
            rows = db.execute(query).fetchall()
    except sqlite3.Error as exc:
        return f"the store could not be read ({exc})"
    if not rows:
        return "no delivery is waiting in the store"
    return "waiting in the store: " + "; ".join(
        f"{n} x {target} {status}" + (f" ({error[:160]})" if error else "")
        for target, status, error, n in rows
    )
