"""Injected faults and the cloud's leaky bucket, for the Bitrix24 emulator.

bitrix.md §1.6: every HTTP request adds 1 to a bucket per portal and source IP that drains
Y per second; above X the request gets 503 `QUERY_LIMIT_EXCEEDED` (X=50, Y=2 outside
Enterprise). The per-method CPU budget (429 `OPERATION_TIME_LIMIT`) is not simulated: no
method costs CPU here, so it is offered as an injected fault instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from connectors.bitrix.emulator_wire import SYSTEM_ERRORS, Clock


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass
class EmulatorFaults:
    """Failures to inject; the next `count` requests they apply to get them (-1: all).

    `methods` narrows them to calls of those REST methods (`oauth.token` is the token
    endpoint); an `error` whose `methods` names a method also fails that method's commands
    inside a `batch` (`result_error`), as the cloud's per-method 429 does (§1.6).
    """

    latency: float = 0.0  # seconds added before every answer
    http_status: int | None = None  # answered by the "nginx" in front, with an HTML page
    hang: float = 0.0  # seconds of silence before answering, for client timeouts
    outage: bool = False  # close the connection without an answer
    error: str | None = None  # a §1.7 system error code, answered as JSON with its status
    methods: list[str] = field(default_factory=list)
    count: int = -1

    def set(
        self,
        latency: float = 0.0,
        http_status: int | None = None,
        hang: float = 0.0,
        outage: bool = False,
        error: str | None = None,
        methods: Sequence[str] = (),
        count: int = -1,
    ) -> None:
        """Replace every setting at once (what is left out is cleared); ValueError if bad."""
        # Checked here rather than by type hints alone: the admin endpoint passes JSON values.
        for name, value in (("latency", latency), ("hang", hang)):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            _check(number and value >= 0, f"{name} must be a number of seconds >= 0")
        status_ok = http_status is None or (type(http_status) is int and 400 <= http_status <= 599)
        _check(status_ok, "http_status must be an integer 400..599 or null")
        _check(isinstance(outage, bool), "outage must be true or false")
        _check(
            error is None or error in SYSTEM_ERRORS,
            f"error must be null or one of {', '.join(sorted(SYSTEM_ERRORS))}",
        )
        names_ok = isinstance(methods, list | tuple) and all(isinstance(m, str) for m in methods)
        _check(names_ok, "methods must be a list of REST method names")
        _check(type(count) is int and count >= -1, "count must be an integer >= -1")
        self.latency, self.http_status, self.hang = float(latency), http_status, float(hang)
        self.outage, self.error, self.count = outage, error, count
        self.methods = [m.lower() for m in methods]

    def clear(self) -> None:
        """Behave again."""
        self.set()

    def snapshot(self) -> dict[str, object]:
        """The settings as JSON."""
        return asdict(self)

    def take(self, method: str, *, inner: bool = False) -> EmulatorFaults:
        """The faults for one request (or, `inner`, one batch command), counted."""
        idle = EmulatorFaults(count=self.count, methods=self.methods)
        if self.count == 0 or self == idle:
            return EmulatorFaults()
        if self.methods and method.lower() not in self.methods:
            return EmulatorFaults()
        if inner and (not self.methods or self.error is None):
            return EmulatorFaults()  # transport faults hit the HTTP request, not a command
        share = EmulatorFaults(**asdict(self))
        if self.count > 0:
            self.count -= 1
            if self.count == 0:
                self.clear()
        return share


class LeakyBucket:
    """§1.6: +1 per HTTP request, draining `rate` per second; above `burst` → refuse."""

    def __init__(self, burst: int, rate: float, clock: Clock) -> None:
        if burst < 0 or rate < 0:
            raise ValueError("burst and rate must be >= 0 (0 turns the limit off)")
        self.burst, self.rate, self._clock = burst, rate, clock
        self._levels: dict[str, tuple[float, float]] = {}

    @property
    def enabled(self) -> bool:
        """Whether the limit is on."""
        return self.burst > 0 and self.rate > 0

    def admit(self, key: str) -> bool:
        """Count one request from `key` (a source IP); False when the bucket is full.

        Decision: a refused request adds nothing, so a client that backs off recovers at
        the drain rate (the reference does not say whether refused hits count).
        """
        if not self.enabled:
            return True
        now = self._clock()
        level, then = self._levels.get(key, (0.0, now))
        level = max(0.0, level - max(0.0, now - then) * self.rate)
        if level + 1 > self.burst:
            self._levels[key] = (level, now)
            return False
        self._levels[key] = (level + 1, now)
        return True

    def level(self, key: str) -> float:
        """The bucket's current fill for `key`."""
        level, then = self._levels.get(key, (0.0, self._clock()))
        return max(0.0, level - max(0.0, self._clock() - then) * self.rate)
