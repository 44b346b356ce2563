"""Retention: done events pruned from the log in small batches, beside intake, and the
records that grow beside it (final reservations, owed calls, SMS sends, sandbox messages).

One loop per process (``store.retention``), and one process of several on a shared store
(the ``retention`` lease). Each batch is one short transaction of a few hundred events
with everything that hangs off them (the store's ``prune_events``), or of records of one
kind (``prune_records``); while the store is behind, batches follow each other with a
pause between them, so intake's and reservations' writes always find the writer free
within one batch. Caught up, the loop looks again every ``every_seconds``. Only ``done``
events expire: ``dead`` and ``rejected`` ones wait for support (a replay, or ``bridge
purge`` by hand), as do dead owed calls and the reservations that wait on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from functools import partial

from bridge.errors import BridgeError
from bridge.logs import get_logger
from bridge.settings import RetentionSettings
from bridge.store.leases import LEASE_SECONDS, Leases
from bridge.store.protocol import Store
from bridge.store.records import Status
from bridge.store.retention import Records

PRUNER_LEASE = "retention"
log = get_logger("bridge.retention")

LOG_EVERY = 50_000  # events pruned between two progress lines of a long catch-up
# The records store.retention.reservations_after ages out, and those sms_after does.
AGED_WITH_RESERVATIONS = (Records.RESERVATIONS, Records.OWED_DONE)
SMS = (Records.SMS_SENDS, Records.SANDBOX_MESSAGES)

Batch = Callable[[], Awaitable[int]]  # one prune transaction: how many records went


async def prune_all(
    store: Store, status: Status, before: float, batch: int, pause: float = 0.0
) -> int:
    """Prune every event of ``status`` last changed before ``before``, ``batch`` at a time
    with ``pause`` seconds between batches; how many went."""
    return await _drain(lambda: store.prune_events(status, before, batch), batch, pause)


async def prune_all_records(
    store: Store, kind: Records, before: float, batch: int, pause: float = 0.0
) -> int:
    """Prune every record of ``kind`` older than ``before``, as :func:`prune_all`."""
    return await _drain(lambda: store.prune_records(kind, before, batch), batch, pause)


async def _drain(prune: Batch, batch: int, pause: float) -> int:
    total = 0
    while True:
        pruned = await prune()
        total += pruned
        if pruned < batch:
            return total
        if pause:
            await asyncio.sleep(pause)


class Pruner:
    """Prunes done events and finished records past their limits while the daemon runs."""

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
        """Whether anything expires at all (every ``*_after: off`` keeps everything)."""
        s = self.settings
        return any(a is not None for a in (s.done_after, s.reservations_after, s.sms_after))

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
        """Catch up: every done event past ``done_after``, then each kind of record past
        its limit (final reservations before the done owed calls of none), batch after
        batch; how many went in all. ``events_pruned`` (``records_pruned``, with the
        kind) is logged at the end of each, and every LOG_EVERY on the way (a first
        catch-up of a large store takes a while)."""
        s, now, total = self.settings, self._clock(), 0
        if s.done_after is not None:
            prune = partial(self.store.prune_events, Status.DONE, now - s.done_after, s.batch)
            total += await self._catch_up(prune, "events_pruned", status=str(Status.DONE))
        for after, kinds in ((s.reservations_after, AGED_WITH_RESERVATIONS), (s.sms_after, SMS)):
            if after is None:
                continue
            for kind in kinds:
                prune = partial(self.store.prune_records, kind, now - after, s.batch)
                total += await self._catch_up(prune, "records_pruned", kind=str(kind))
        return total

    async def _catch_up(self, prune: Batch, event: str, **named: str) -> int:
        """Batches of ``prune`` until one is short, a pause between them; how many went."""
        batch, total, unlogged = self.settings.batch, 0, 0
        while True:
            pruned = await prune()
            total += pruned
            unlogged += pruned
            if pruned < batch:
                break
            if unlogged >= LOG_EVERY:
                log.info(event, count=unlogged, more=True, **named)
                unlogged = 0
            await asyncio.sleep(self.settings.pause_seconds)
        if unlogged:
            log.info(event, count=unlogged, **named)
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
