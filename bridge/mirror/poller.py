"""Pollers: read each source's change feed and store what they read with the cursor.

The cursor advances only in the transaction that stores the events read with it (PRODUCT
3.3), so a crash between a poll and its commit re-reads the same changes, which the
de-duplication by source key absorbs. A failing source is logged unavailable once and
recovered once, and polled again with backoff.

A feed polled for the first time starts at "now": before the daemon reports ready,
``fix_start_positions`` stores each new feed's start position (the system asked within a
time budget, or, when it does not answer, a position naming the start time), so a change
made after ready is never taken for old history.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from datetime import UTC, datetime

from bridge.connector import MERGED_ACTION, MERGED_INTO, Source, StartPositions
from bridge.errors import BridgeError
from bridge.logs import get_logger
from bridge.mirror.intake import Intake
from bridge.retry import backoff_delay
from bridge.settings import RetrySettings
from bridge.store.leases import LEASE_SECONDS, LOOK_SECONDS, Leases, leases_of
from bridge.store.protocol import Store
from bridge.store.records import Cursor

log = get_logger("bridge.poller")

BACKOFF = RetrySettings(base_seconds=1, cap_seconds=60, max_attempts=1000, jitter=0.2)
# One instance polls each feed (issue 15): it holds the feed's lease and renews it while it
# waits; another instance looks every LOOK_SECONDS and takes a lease its holder let lapse,
# so a killed holder's feeds are polled again within LEASE_SECONDS + LOOK_SECONDS (< 30 s).
# How long start-up may wait for the systems to say where their feeds end now, in all.
START_BUDGET = 10.0
START_RETRY = RetrySettings(base_seconds=0.5, cap_seconds=2, max_attempts=1000, jitter=0.2)


class Poller:
    """One loop per (source, feed) until stopped; a webhook from a source wakes its loops."""

    def __init__(
        self,
        store: Store,
        sources: dict[str, Source],
        intake: Intake,
        unit_random: Callable[[], float] = random.random,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        owner: str = "this-process",
        leases: Leases | None = None,
        lease_seconds: float = LEASE_SECONDS,
        look_seconds: float = LOOK_SECONDS,
    ) -> None:
        self._store = store
        self._sources = sources
        self._intake = intake
        self._random = unit_random
        self._clock = clock
        self._owner = owner
        self._leases = leases if leases is not None else leases_of(store)
        self._lease_seconds = lease_seconds
        self._look_seconds = look_seconds
        self._stopping = asyncio.Event()
        self._wakeups: dict[str, list[asyncio.Event]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start polling every feed of every source."""
        for name, source in self._sources.items():
            for feed in source.feeds:
                wakeup = asyncio.Event()
                self._wakeups.setdefault(name, []).append(wakeup)
                task = asyncio.create_task(
                    self._run(name, source, feed, wakeup), name=f"poll-{name}-{feed}"
                )
                self._tasks.append(task)

    async def fix_start_positions(self, budget: float = START_BUDGET) -> None:
        """Store a start position for every feed with no cursor yet, all within ``budget``
        seconds; a system that does not answer in time gets a position naming this moment
        (its changes from now on are read once it answers), so start-up never waits long."""
        moment = self._clock()
        deadline = asyncio.get_running_loop().time() + budget
        fixes = [
            self._fix_start(name, source, feed, moment, deadline)
            for name, source in self._sources.items()
            if isinstance(source, StartPositions)
            for feed in source.feeds
            if await self._store.get_cursor(name, feed) is None
        ]
        await asyncio.gather(*fixes)

    async def _fix_start(
        self, name: str, source: StartPositions, feed: str, moment: datetime, deadline: float
    ) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        position: str | None = None
        error: BaseException | None = None
        while position is None and loop.time() < deadline:
            try:
                position = await asyncio.wait_for(
                    source.start_position(feed), deadline - loop.time()
                )
            except Exception as exc:  # BridgeError or a timeout; a bug is logged all the same
                error, failures = exc, failures + 1
                delay = backoff_delay(failures, START_RETRY, self._random())
                await asyncio.sleep(max(0.0, min(delay, deadline - loop.time())))
        if position is None:
            position = source.start_position_at(feed, moment)
            log.warning(
                "start_position_deferred",
                system=name,
                feed=feed,
                cursor=position,
                error=str(error or "no answer within the start-up budget"),
                exc_info=error is not None and not isinstance(error, BridgeError | TimeoutError),
            )
        else:
            log.info("start_position_fixed", system=name, feed=feed, cursor=position)
        await self._store.append_polled([], Cursor(name, feed, position, 0))

    def wake(self, name: str) -> None:
        """Poll ``name`` now (a trigger said something changed there)."""
        for wakeup in self._wakeups.get(name, []):
            wakeup.set()

    async def stop(self) -> None:
        """Stop after the current poll."""
        self._stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def poll_once(self, name: str, source: Source, feed: str) -> bool:
        """One poll: store the changes and the new cursor together; True if more wait."""
        cursor = await self._store.get_cursor(name, feed)
        result = await source.poll(feed, cursor.value if cursor else None)
        for event in result.events:
            survivor = event.payload.get(MERGED_INTO) if event.action == MERGED_ACTION else None
            if survivor is not None:  # before the event is stored: a crash re-reads it
                await self._store.alias_id(event.entity, name, event.entity_id, str(survivor))
                log.info(
                    "entity_merged",
                    system=name,
                    entity=event.entity,
                    id=event.entity_id,
                    into=str(survivor),
                )
        cursor_after = Cursor(name, feed, result.cursor, 0)
        received = await self._intake.receive_polled(name, result.events, cursor_after)
        if fresh := received.fresh:
            log.info(
                "changes_polled", system=name, feed=feed, count=len(fresh), cursor=result.cursor
            )
        return result.more

    async def _run(self, name: str, source: Source, feed: str, wakeup: asyncio.Event) -> None:
        lease = f"poll:{name}:{feed}"
        try:
            await self._lead(lease, name, source, feed, wakeup)
        finally:
            # A clean stop hands the feed over at once; a kill lets the lease lapse.
            with contextlib.suppress(Exception):
                await self._leases.let_go(lease, self._owner)

    async def _lead(
        self, lease: str, name: str, source: Source, feed: str, wakeup: asyncio.Event
    ) -> None:
        failures = 0
        holding = False
        while not self._stopping.is_set():
            if not await self._hold(lease):
                if holding:
                    log.warning("poller_lease_lost", system=name, feed=feed)
                holding = False
                wakeup.clear()  # a trigger here is for the holder: it polls on its own
                await self._nap(wakeup, self._look_seconds)  # another instance polls it
                continue
            if not holding:
                log.info("poller_lease_taken", system=name, feed=feed, owner=self._owner)
            holding = True
            wakeup.clear()
            more = False
            try:
                more = await self.poll_once(name, source, feed)
            except Exception as exc:  # BridgeError is expected; anything else is a bug, logged
                failures += 1
                if failures == 1:
                    log.warning(
                        "system_unavailable",
                        system=name,
                        feed=feed,
                        error=str(exc),
                        exc_info=not isinstance(exc, BridgeError),
                    )
                delay = backoff_delay(failures, BACKOFF, self._random())
            else:
                if failures:
                    log.info("system_recovered", system=name, feed=feed, after_failures=failures)
                failures = 0
                delay = 0.0 if more else source.poll_interval
            await self._wait_holding(lease, wakeup, delay)

    async def _hold(self, lease: str) -> bool:
        try:
            return await self._leases.hold(lease, self._owner, self._lease_seconds)
        except Exception as exc:  # the store is briefly unreachable: poll nothing, look again
            log.warning("poller_lease_unavailable", lease=lease, error=str(exc))
            return False

    async def _wait_holding(self, lease: str, wakeup: asyncio.Event, delay: float) -> None:
        """Wait ``delay`` (or until woken), renewing the lease at least every look, so a
        long poll interval never lets another instance take a feed this one still polls."""
        loop = asyncio.get_running_loop()
        until = loop.time() + delay
        while (left := until - loop.time()) > 0:
            if await self._nap(wakeup, min(left, self._look_seconds)):
                return
            if not await self._hold(lease):
                return  # lost: the loop says so and stands by

    @staticmethod
    async def _nap(wakeup: asyncio.Event, seconds: float) -> bool:
        """Sleep ``seconds`` or until woken; True when woken."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wakeup.wait(), seconds)
            return True
        return False
