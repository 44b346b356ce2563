"""Pollers: read each source's change feed and store what they read with the cursor.

The cursor advances only in the transaction that stores the events read with it (PRODUCT
3.3), so a crash between a poll and its commit re-reads the same changes, which the
de-duplication by source key absorbs. A failing source is logged unavailable once and
recovered once, and polled again with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable

from bridge.connector import Source
from bridge.errors import BridgeError
from bridge.logs import get_logger
from bridge.retry import backoff_delay
from bridge.router import Router
from bridge.settings import RetrySettings
from bridge.store.protocol import Store
from bridge.store.records import Cursor

log = get_logger("bridge.poller")

BACKOFF = RetrySettings(base_seconds=1, cap_seconds=60, max_attempts=1000, jitter=0.2)


class Poller:
    """One loop per (source, feed) until stopped; a webhook from a source wakes its loops."""

    def __init__(
        self,
        store: Store,
        sources: dict[str, Source],
        router: Router,
        on_stored: Callable[[set[str]], None],
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._sources = sources
        self._router = router
        self._on_stored = on_stored
        self._random = unit_random
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
        new = self._router.route(name, result.events)
        stored = await self._store.append_polled(new, Cursor(name, feed, result.cursor, 0))
        fresh = [s for s in stored if not s.duplicate]
        if fresh:
            log.info(
                "changes_polled", system=name, feed=feed, count=len(fresh), cursor=result.cursor
            )
            self._on_stored({t for item in new for t in item.targets})
        return result.more

    async def _run(self, name: str, source: Source, feed: str, wakeup: asyncio.Event) -> None:
        failures = 0
        while not self._stopping.is_set():
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wakeup.wait(), delay)
