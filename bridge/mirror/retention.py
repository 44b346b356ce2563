"""Retention: done events pruned from the log in small batches, beside intake.

One loop per process (``store.retention``). Each batch is one short transaction of a few
hundred events with everything that hangs off them (the store's ``prune_events``); while
the log is behind, batches follow each other with a pause between them, so intake's writes
always find the writer free within one batch. Caught up, the loop looks again every
``every_seconds``. Only ``done`` events expire: ``dead`` and ``rejected`` ones wait for
support (a replay, or ``bridge purge`` by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from bridge.errors import BridgeError
from bridge.logs import get_logger
from bridge.settings import RetentionSettings
from bridge.store.leases import LEASE_SECONDS, Leases
from bridge.store.protocol import Store
from bridge.store.records import Status

PRUNER_LEASE = "retention"
log = get_logger("bridge.retention")

LOG_EVERY = 50_000  # events pruned between two progress lines of a long catch-up


async def prune_all(
    store: Store, status: Status, before: float, batch: int, pause: float = 0.0
) -> int:
    """Prune every event of ``status`` last changed before ``before``, ``batch`` at a time
    with ``pause`` seconds between batches; how many went."""
    total = 0
    while True:
        pruned = await store.prune_events(status, before, batch)
        total += pruned
        if pruned < batch:
            return total
        if pause:
            await asyncio.sleep(pause)


class Pruner:
    """Prunes done events older than ``done_after`` while the daemon runs."""

    def __init__(
        self,
        store: Store,
        settings: RetentionSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.settings = settings
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # "retention_failed" is logged once, "recovered" once
        # Several instances on one store: one prunes (the lease), the others stand by.
        self.leases: Leases | None = None
        self.owner = "this-process"

    @property
    def enabled(self) -> bool:
        """Whether done events expire at all (``done_after: off`` keeps them)."""
        return self.settings.done_after is not None

    def start(self) -> None:
        """Prune in the background (nothing when retention is off)."""
        if self.enabled:
            self._task = asyncio.create_task(self._prune_forever(), name="retention")

    async def stop(self) -> None:
        """Stop pruning; a batch under way commits whole or not at all."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await self.leases.let_go(PRUNER_LEASE, self.owner)

    async def prune_once(self) -> int:
        """Catch up: every done event past ``done_after``, batch after batch; how many.
        ``events_pruned`` is logged at the end, and every LOG_EVERY events on the way (a
        first catch-up of a large log takes a while)."""
        done_after = self.settings.done_after
        if done_after is None:
            return 0
        before = self._clock() - done_after
        batch, total, unlogged = self.settings.batch, 0, 0
        while True:
            pruned = await self.store.prune_events(Status.DONE, before, batch)
            total += pruned
            unlogged += pruned
            if pruned < batch:
                break
            if unlogged >= LOG_EVERY:
                log.info("events_pruned", count=unlogged, status=str(Status.DONE), more=True)
                unlogged = 0
            await asyncio.sleep(self.settings.pause_seconds)
        if unlogged:
            log.info("events_pruned", count=unlogged, status=str(Status.DONE))
        return total

    async def _prune_forever(self) -> None:
        while True:
            try:
                if await self._leading():
                    await self.prune_once()
            except BridgeError as exc:  # the store is away for a moment: look again later
                if not self._failing:
                    log.warning("retention_failed", error=str(exc))
                self._failing = True
            else:
                if self._failing:
                    log.info("retention_recovered")
                self._failing = False
            await asyncio.sleep(self.settings.every_seconds)

    async def _leading(self) -> bool:
        """Whether this instance prunes: it holds the lease for a round's length (or no
        leases are shared: this process alone)."""
        if self.leases is None:
            return True
        seconds = self.settings.every_seconds + LEASE_SECONDS
        try:
            return await self.leases.hold(PRUNER_LEASE, self.owner, seconds)
        except Exception as exc:  # the database is away for a moment: prune next round
            log.warning("retention_lease_unavailable", error=str(exc))
            return False
