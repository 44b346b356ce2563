"""One request budget per RetailCRM API key, shared by every caller in the process.

RetailCRM allows 10 requests per second per key and answers 503 above it (retailcrm-api.md
§1.6: "RPS for the single key"); how the server meters that is not documented, and the
emulator counts a sliding one-second window (at most 10 in any 1-s span), the strictest
reading of the figure that still grants it in full. With ``n = floor(rate)`` (below 1/s:
one request per ``1/rate`` seconds, the *window* ``W``; otherwise ``W`` = 1 s), two rules
give a caller its turn:

- **spacing**: turns at least ``W / n`` apart (0.1 s at 10/s), so the key is used evenly,
  never in bursts a server metering like nginx's ``limit_req`` would trip on;
- **window**: turn ``k`` comes at least ``W`` after *every* request up to turn ``k - n``
  was answered. A server counts a request at some moment between our turn and its answer,
  so any ``n + 1`` requests (the first of them ``n`` turns or more before the last) are
  counted at least ``W`` apart, however late each left (a worker thread on a busy host:
  0.1-0.23 s seen) or however long the server queued it: no window holds ``n + 1``.

So the key runs at ``n`` requests per ``W`` plus one answer time: 97-98 % of the ceiling
when an answer takes 20-30 ms, and the margin grows by itself when the host or the server
is slow, where a fixed margin wastes the budget when all is well and is too small when not
(10 % of a second did not cover 0.23 s). The caller reports the answer: ``begin()`` gives a
``Turn`` whose ``end()`` (or ``around(fn)``, in the worker thread) says when it came. A
caller of plain ``acquire()`` reports nothing: its request is taken as answered ``margin``
(10 % of ``W``) after its turn, the fixed margin of before.

Callers go earliest deadline first. A caller under a deadline (``bridge.deadline``: a till's
look-up or reservation has 3 s for all its calls) is ranked by it; any other caller (a
delivery, a poll) by its arrival plus ``PATIENCE`` seconds, so callers without a deadline go
in arrival order and wait behind interactive ones for a few seconds at most. Deadlines
first make several calls of one request finish together: ten reservations of four calls
each at 10/s used to advance in lock-step, all ten past a 3 s budget; now the first ones
finish and the last are refused. A caller whose turn would come after its deadline is
refused at once with ``RateLimited`` instead of queueing past it (issue 12).

The lock is a ``threading.Lock`` never held across an ``await``, so one limiter serves every
event loop and thread of the process (a turn may end in a worker thread); nothing is bound
to a loop.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

from bridge import budgets
from bridge.deadline import Deadline, current_deadline
from bridge.errors import RateLimited

T = TypeVar("T")

# The answer time assumed for a turn whose caller does not report it (plain ``acquire()``),
# as a share of the window: 10 %, the fixed margin the limiter used before answers were
# reported (the 10,000-order bench met a 503 at 5 %, after a ~60 ms stall of the emulator).
DEFAULT_MARGIN = 0.10
# Several instances: a request may leave up to this many seconds after its shared turn
# and no one-second window still holds more than the limit (the acceptance test of three
# instances on two cores saw 0.1-0.23 s; 10 % let an 11th request into a second).
SHARED_MARGIN = 0.30
# How long a caller without a deadline lets callers with one go first (see the docstring).
PATIENCE = 5.0
# A turn still not answered this long after it was given is taken as answered then: every
# client call is bounded by its timeout and ends its turn, so only a lost ``Turn`` gets here,
# and a server meters a request when it arrives, not a minute later.
STALE = 60.0
# Weight of the newest answer time in the running estimate used to predict turns.
SMOOTHING = 0.2


class Turn:
    """One request's turn; ``end()`` once its answer came (thread-safe; the first counts)."""

    __slots__ = ("_clock", "ended", "granted")

    def __init__(self, granted: float, clock: Callable[[], float]) -> None:
        self.granted = granted
        self.ended: float | None = None
        self._clock = clock

    def end(self) -> None:
        """The answer came now (or the call failed or was given up)."""
        if self.ended is None:
            self.ended = self._clock()

    def around(self, fn: Callable[[], T]) -> Callable[[], T]:
        """``fn`` ending this turn as it returns or raises (to run in a worker thread, where
        the answer arrives, not after the hand-off back to the event loop)."""

        def timed() -> T:
            try:
                return fn()
            finally:
                self.end()

        return timed


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
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin: must be a fraction >= 0, not {margin}")
        self.name = name
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: list[tuple[float, int]] = []  # (rank, arrival number), sorted
        self._arrivals = 0
        self._recent: deque[Turn] = deque()  # turns not yet settled, oldest first
        self._settled = -math.inf  # the latest answer of the settled turns
        self._last = -math.inf  # when the last caller was let through
        self._paused_until = -math.inf
        self._set_rate(rate)
        self._latency = margin * self.window  # running estimate of the answer time

    def __repr__(self) -> str:
        return f"RateLimiter(key={self.name or '?'}, rate={self.rate:g}/s)"

    @property
    def interval(self) -> float:
        """The expected spacing of turns under a backlog: ``(W + answer time) / n``."""
        return (self.window + self._latency) / self._n

    async def acquire(self) -> None:
        """Wait for this caller's turn; on return it may start one request, taken as
        answered ``margin`` after the turn (``begin()`` for a caller that reports it)."""
        turn = await self.begin()
        turn.ended = turn.granted + self._margin * self.window

    async def begin(self) -> Turn:
        """Wait for this caller's turn; end the returned ``Turn`` when the answer came.

        Under a deadline (``bridge.deadline``) a turn that would come after it is refused
        at once with ``RateLimited`` rather than waited for only to be cut off; the time
        waited is added to the deadline's ``waited``. Where several instances share the
        store, the turn is then taken from their shared schedule too (``bridge.budgets``),
        so together they keep the key's limit.
        """
        deadline = current_deadline()
        turn = await self._local_turn(deadline)
        shared = budgets.shared()
        if shared is None:
            return turn
        try:
            wait = await shared.turn(self.name, self._shared_interval())
            if deadline is not None:
                self._refuse_past(deadline, wait)  # the turn is left unused: a gap, no overrun
                deadline.waited += wait
            if wait > 0:
                await asyncio.sleep(wait)
        except BaseException:
            turn.end()  # nothing was sent
            raise
        return turn

    async def _local_turn(self, deadline: Deadline | None) -> Turn:
        """This process's turn: callers in deadline order, under the spacing and window."""
        with self._lock:
            now = started = self._clock()
            rank = now + (deadline.remaining() if deadline is not None else PATIENCE)
            place = (rank, self._arrivals)
            self._arrivals += 1
            bisect.insort(self._waiting, place)
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    ahead = bisect.bisect_left(self._waiting, place)
                    free = self._free_at(now)
                    if ahead == 0 and free is not None and now >= free:
                        del self._waiting[0]
                        return self._grant(now, started, deadline)
                    # An unanswered request blocks the window: expect its answer now.
                    due = max(free if free is not None else now + self.window, now)
                    due += ahead * self.interval
                if deadline is not None:
                    self._refuse_past(deadline, due - now)
                # Wake at least every spacing: a caller ahead may leave or one may come in
                # before this one, and an answer may come: the expected turn moves.
                await asyncio.sleep(min(due - now, self.spacing))
        except BaseException:  # cancelled or past the deadline: give the place up
            with self._lock:
                index = bisect.bisect_left(self._waiting, place)
                if index < len(self._waiting) and self._waiting[index] == place:
                    del self._waiting[index]
            raise

    def _free_at(self, now: float) -> float | None:
        """When the next turn may come (under the lock); None while a request that would
        fall ``n`` turns back is unanswered."""
        free = max(self._last + self.spacing, self._paused_until)
        back = len(self._recent) - self._n + 1  # turns that would be n or more back
        latest = self._settled
        for turn in list(self._recent)[: max(0, back)]:
            if turn.ended is None and now - turn.granted > STALE:
                turn.ended = turn.granted + STALE
            if turn.ended is None:
                return None
            latest = max(latest, turn.ended)
        return max(free, latest + self.window)

    def _grant(self, now: float, started: float, deadline: Deadline | None) -> Turn:
        """Let the caller through at ``now`` (under the lock) and settle answered turns."""
        # Spacing counts from when the turn was due, not from a wake-up a few ms late (on a
        # loaded loop 1-3 ms a turn, 1-3 % of the budget); a turn much later than due (an
        # idle key) starts the schedule afresh. The window rule keeps the actual time.
        due = self._last + self.spacing
        self._last = due if due <= now < due + self.spacing / 2 else now
        if deadline is not None:
            deadline.waited += now - started
        turn = Turn(now, self._clock)
        self._recent.append(turn)
        while len(self._recent) > self._n and self._recent[0].ended is not None:
            old = self._recent.popleft()
            ended = old.ended if old.ended is not None else now
            self._settled = max(self._settled, ended)
            if ended > old.granted:  # reported (or assumed) answer time, for predictions
                self._latency += SMOOTHING * (ended - old.granted - self._latency)
        return turn

    def _refuse_past(self, deadline: Deadline, wait: float) -> None:
        """RateLimited if a turn ``wait`` seconds away comes after the caller's deadline."""
        if wait > deadline.remaining():
            raise RateLimited(f"no turn within the caller's deadline at {self!r}", wait)

    def hold(self, seconds: float) -> None:
        """Let no caller start for ``seconds`` from now (after a 503 or 429); keep the order."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
        budgets.hold_shared(self.name, seconds)  # and no other instance either

    async def pause(self, seconds: float) -> None:
        """Make every caller back off for ``seconds``; return when the pause is over."""
        self.hold(seconds)
        await asyncio.sleep(max(0.0, self._paused_until - self._clock()))

    def slow_to(self, rate: float) -> None:
        """Lower the rate (never raise it): the queue keeps its order at the new spacing."""
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate: must be a positive number of requests per second, not {rate}")
        with self._lock:
            if rate < self.rate:
                self._set_rate(rate)

    def _set_rate(self, rate: float) -> None:
        """``n`` requests per window ``W``: floor(rate) per second, or one per 1/rate s."""
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate: must be a positive number of requests per second, not {rate}")
        self.rate = rate
        self._n = math.floor(rate) if rate >= 1 else 1
        self.window = 1.0 if rate >= 1 else 1.0 / rate
        self.spacing = self.window / self._n

    def _shared_interval(self) -> float:
        """The spacing of the turns several instances share: wider than one process's,
        since a turn is granted by the database and the request leaves later, after a
        thread hand-off on a busy host (up to 0.23 s seen with three instances and
        PostgreSQL on two cores); SHARED_MARGIN absorbs that much lateness (the window
        rule above sees only this process's answers)."""
        return (1.0 + SHARED_MARGIN) * self.spacing


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
