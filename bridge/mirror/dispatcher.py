"""The dispatcher: claims due deliveries per target and runs them in the target's lane.

Per-entity order comes from the store's claim (a delivery is not due while an older one
of the same entity waits or is in flight); coalescing happens at intake. Here we bound
concurrency per target, renew and sweep leases, and hand what was claimed to the lane
(:mod:`bridge.mirror.lane`), which reads, prepares, delivers and records each attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import random
import time
from collections.abc import Callable, Mapping

from bridge.connector import DocumentMapper, EntityReader, Sink
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.mirror.idmap import IdMap
from bridge.mirror.lane import Crew, TargetLane
from bridge.mirror.prepare import Preparation
from bridge.mirror.reads import SourceReads
from bridge.settings import DeliverySettings
from bridge.store.protocol import Store
from bridge.store.records import Claimed

log = get_logger("bridge.dispatcher")

IDLE_POLL_SECONDS = 1.0  # picks up replays made by the CLI in another process
STORE_ERROR_PAUSE = 1.0


class Dispatcher:
    """Runs one lane per target until stopped."""

    def __init__(
        self,
        store: Store,
        lanes: dict[str, tuple[Sink, DeliverySettings]],
        owner: str,
        *,
        lease_seconds: float,
        metrics: Metrics | None = None,
        readers: Mapping[str, EntityReader] | None = None,
        mappers: Mapping[tuple[str, str, str], DocumentMapper] | None = None,
        clock: Callable[[], float] = time.time,
        unit_random: Callable[[], float] = random.random,
        shutdown_grace: float = 10.0,
    ) -> None:
        self._store = store
        self.owner = owner
        self._lease_seconds = lease_seconds
        reads = SourceReads(store, readers or {}, clock)  # one read cache for every lane
        ids = IdMap(store)
        preparation = Preparation(store, mappers or {}, reads, ids)
        crew = Crew(
            store, owner, reads, preparation, ids, metrics, clock, unit_random, lease_seconds
        )
        self._lanes = {
            name: TargetLane(name, sink, cfg, crew) for name, (sink, cfg) in lanes.items()
        }
        self._clock = clock
        self._grace = shutdown_grace
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self, target: str) -> None:
        """Tell a lane that new work may be due (called after intake commits)."""
        lane = self._lanes.get(target)
        if lane is not None:
            lane.wakeup.set()

    async def start(self) -> None:
        """Take over leases of a previous process, then start one loop per target."""
        released = await self._store.recover_leases(self.owner)
        if released:
            log.warning("deliveries_recovered", count=released)
        for lane in self._lanes.values():
            self._tasks.append(asyncio.create_task(self._run_lane(lane), name=f"lane-{lane.name}"))
        self._tasks.append(asyncio.create_task(self._sweep_leases(), name="lease-sweeper"))

    async def stop(self) -> None:
        """Stop claiming, let attempts in flight finish within the grace period."""
        self._stopping.set()
        for lane in self._lanes.values():
            lane.wakeup.set()
        running = [t for lane in self._lanes.values() for t in lane.running]
        if running:
            _done, pending = await asyncio.wait(running, timeout=self._grace)
            for task in pending:  # left in_flight; the next start takes the lease over
                task.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run_lane(self, lane: TargetLane) -> None:
        while not self._stopping.is_set():
            lane.wakeup.clear()
            free = lane.settings.concurrency - len(lane.running)
            size = lane.batch_size
            claimed: list[Claimed] = []
            try:
                if free > 0:
                    claimed = await self._store.claim_due(lane.name, self.owner, free * size)
                for parts in lane.group(claimed, free):
                    task = asyncio.create_task(lane.run_parts(parts))
                    lane.running.add(task)
                    task.add_done_callback(functools.partial(self._finished, lane))
                if claimed and len(claimed) == free * size:
                    continue  # there may be more due work; claim again once a slot frees
                timeout = await self._idle_timeout(lane)
            except StoreError as exc:
                log.warning("store_unavailable", target=lane.name, error=str(exc))
                timeout = STORE_ERROR_PAUSE
            except Exception:  # a bug must not stop deliveries to this target for good
                log.exception("dispatcher_lane_failed", target=lane.name)
                timeout = STORE_ERROR_PAUSE
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lane.wakeup.wait(), timeout)

    def _finished(self, lane: TargetLane, task: asyncio.Task[None]) -> None:
        lane.running.discard(task)
        lane.wakeup.set()

    async def _idle_timeout(self, lane: TargetLane) -> float:
        if len(lane.running) >= lane.settings.concurrency:
            return IDLE_POLL_SECONDS  # a finishing attempt wakes us sooner
        now = self._clock()
        due = await self._store.next_due_at(lane.name, now)
        if due is None:
            return IDLE_POLL_SECONDS
        return max(0.0, min(IDLE_POLL_SECONDS, due - now))

    async def _sweep_leases(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._lease_seconds / 2)
            if self._stopping.is_set():
                return
            try:
                released = await self._store.release_expired_leases()
            except StoreError as exc:
                log.warning("store_unavailable", error=str(exc))
                continue
            if released:
                log.warning("deliveries_recovered", count=released, reason="lease_expired")
            for lane in self._lanes.values():
                lane.wakeup.set()
