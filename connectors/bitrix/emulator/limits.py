"""Injected faults and the cloud's leaky bucket, for the Bitrix24 emulator.

bitrix.md §1.6: every HTTP request adds 1 to a bucket per portal and source IP that drains
Y per second; above X the request gets 503 `QUERY_LIMIT_EXCEEDED` (X=50, Y=2 outside
Enterprise). The per-method CPU budget (429 `OPERATION_TIME_LIMIT`) is not simulated: no
method costs CPU here, so it is offered as an injected fault instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from connectors._emulator.faults import EmulatorFaults, check
from connectors.bitrix.emulator.wire import SYSTEM_ERRORS, Clock


@dataclass
class BitrixFaults(EmulatorFaults):
    """The shared faults, and a §1.7 system error answered as JSON, all narrowed to `methods`.

    `methods` narrows them to calls of those REST methods (`oauth.token` is the token
    endpoint); an `error` whose `methods` names a method also fails that method's commands
    inside a `batch` (`result_error`), as the cloud's per-method 429 does (§1.6).
    """

    error: str | None = None  # a §1.7 system error code, answered as JSON with its status
    methods: list[str] = field(default_factory=list)

    SELECTORS: ClassVar[tuple[str, ...]] = ("count", "methods")

    def check_extra(self, values: dict[str, Any]) -> dict[str, Any]:
        """`error` one of the §1.7 codes, `methods` a list of REST method names."""
        error, methods = values["error"], values["methods"]
        check(
            error is None or error in SYSTEM_ERRORS,
            f"error must be null or one of {', '.join(sorted(SYSTEM_ERRORS))}",
        )
        names_ok = isinstance(methods, list | tuple) and all(isinstance(m, str) for m in methods)
        check(names_ok, "methods must be a list of REST method names")
        return values | {"methods": [m.lower() for m in methods]}

    def applies(self, share: Self, **request: Any) -> Self | None:
        """Faults for a request of `method` (or, `inner`, one batch command of it)."""
        method, inner = str(request["method"]).lower(), bool(request.get("inner"))
        if self.methods and method not in self.methods:
            return None
        if inner and (not self.methods or self.error is None):
            return None  # transport faults hit the HTTP request, not a command
        return share


class PortalBucket:
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

        The documentation (b24-rest-docs limits.md) says that once the counter *exceeds* X
        the next request is blocked, and that the counter goes down by Y once a second; read
        literally, a 51st request may still pass and the drain comes in steps. Here the
        request that would take the fill past X is refused (one request stricter) and the
        drain is continuous (just before a step it is up to Y ahead of a stepped one). The
        bridge's own bucket keeps 2 of depth back, which covers either reading.
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
