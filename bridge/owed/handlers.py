"""What runs an owed call: one handler per operation kind, registered by name.

A handler makes the call (with the call's operation id, so a retry is applied once) and
says what the outcome means for what it belongs to; the sweeper decides when to try
again, with the shared retry policy (``bridge.retry``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.errors import BridgeError, DeliveryError
from bridge.owed.calls import OwedCall
from bridge.retry import RetryDecision
from bridge.settings import RetrySettings


class OwedHandler(Protocol):
    """Runs the calls of one operation kind."""

    async def run(self, call: OwedCall) -> str | None:
        """Make the call; return a note for the record (None: plainly done). Raise a
        DeliveryError to say how it failed (transient: retried; permanent: dead)."""

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        """Record what the failure means where the call came from (a retry scheduled in
        ``decision.delay`` seconds, or given up)."""


@dataclass(frozen=True)
class Registered:
    """A handler and the retry policy of its calls."""

    handler: OwedHandler
    policy: RetrySettings


class UnknownOperation(BridgeError):
    """An owed call names an operation no handler is registered for (a newer version owed
    it, or a configuration lost the system): it waits, dead, for a replay."""


class Handlers:
    """The registry: operation kind → handler and policy."""

    def __init__(self) -> None:
        self._by_operation: dict[str, Registered] = {}

    def register(self, operation: str, handler: OwedHandler, policy: RetrySettings) -> None:
        """Run calls of ``operation`` with ``handler``, retried by ``policy``."""
        if operation in self._by_operation:
            raise BridgeError(f"owed operation {operation!r} is registered twice")
        self._by_operation[operation] = Registered(handler, policy)

    def find(self, operation: str) -> Registered:
        """The handler of ``operation``; UnknownOperation when none is registered."""
        try:
            return self._by_operation[operation]
        except KeyError:
            raise UnknownOperation(f"no handler for owed operation {operation!r}") from None

    def operations(self) -> list[str]:
        """Registered operation kinds, sorted."""
        return sorted(self._by_operation)
