"""Named leases: one holder at a time for work only one instance may do (a source's poller).

A store that several ``bridge serve`` processes share (PostgreSQL) keeps its leases in the
database and exposes them as ``store.leases``. A store only one process serves (SQLite,
held by its file lock; the memory store) needs no such table: ``LocalLeases`` in that one
process is exact. A lease not renewed within its seconds is free for another holder: a
killed instance's work is taken over within that time (issue 15: within 30 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

# A holder renews its lease at least every LOOK_SECONDS; a standby looks as often and takes
# a lease left to lapse for LEASE_SECONDS: a killed holder is replaced within 25 s.
LEASE_SECONDS = 20.0
LOOK_SECONDS = 5.0


@runtime_checkable
class Leases(Protocol):
    """Take, renew and give back named leases."""

    async def hold(self, name: str, holder: str, seconds: float) -> bool:
        """Take ``name`` for ``seconds`` if it is free or expired, or renew it if ``holder``
        has it; False while another holder's lease runs."""
        ...

    async def let_go(self, name: str, holder: str) -> None:
        """Give ``name`` back, if ``holder`` has it (a clean stop: no wait for the expiry)."""
        ...

    async def close(self) -> None:
        """Give back whatever the leases hold open (connections)."""
        ...


@runtime_checkable
class SharesLeases(Protocol):
    """A store that keeps leases every instance sharing it sees."""

    @property
    def leases(self) -> Leases:
        """The store's leases."""
        ...


class LocalLeases:
    """Leases in this process: exact where only this process serves the store."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}

    async def hold(self, name: str, holder: str, seconds: float) -> bool:
        """Take or renew ``name`` (see ``Leases.hold``)."""
        now = self._clock()
        current = self._held.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._held[name] = (holder, now + seconds)
        return True

    async def let_go(self, name: str, holder: str) -> None:
        """Give ``name`` back if ``holder`` has it."""
        current = self._held.get(name)
        if current is not None and current[0] == holder:
            del self._held[name]

    async def close(self) -> None:
        """Nothing to close."""


def leases_of(store: object) -> Leases:
    """The store's shared leases, or leases local to this process for a store only this
    process serves."""
    return store.leases if isinstance(store, SharesLeases) else LocalLeases()
