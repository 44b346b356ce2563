"""Backfills: a source's existing entities listed into the event log, page by page.

``bridge backfill`` stores what to list; the daemon's :class:`Backfiller` lists it. Each page
is stored with the cursor after it in one transaction (like a poll, PRODUCT 3.3), so a
backfill interrupted anywhere, even by ``kill -9``, resumes at the first page not stored and
lists nothing twice that it stored. The listed entities then travel the ordinary pipeline:
one delivery per target and entity, the route's mapping, the target's upsert by external id
(so an entity written before the interruption is not written again as a second copy).

Live traffic goes first: a backfilled delivery is claimed only after the due live ones
(priority in the store), and a page is listed only while few of the backfill's deliveries
wait, so the store never holds more of a backfill than the targets are taking.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

from bridge.connector import EntityLister, ListedEntity
from bridge.errors import BridgeError, StoreError
from bridge.logs import get_logger
from bridge.mirror.intake import Intake
from bridge.mirror.router import Router
from bridge.retry import backoff_delay
from bridge.settings import RetrySettings
from bridge.store.backfills import Backfill, BackfillSpec, BackfillStatus, listed_key
from bridge.store.protocol import Store
from bridge.store.records import InboundEvent, NewEvent

log = get_logger("bridge.backfill")

BACKLOG = 500  # listed deliveries of one backfill that may wait before the next page
IDLE_SECONDS = 1.0  # picks up backfills the CLI stores from another process
OPEN_IDLE_SECONDS = 0.25  # while one runs: how soon a drained backlog gets its next page
LIST_TIMEOUT = 60.0
BACKOFF = RetrySettings(base_seconds=1, cap_seconds=60, max_attempts=1000, jitter=0.2)

ENTITIES = {"orders": "order", "customers": "customer"}  # the CLI's words → entity names


def backfill_problems(
    spec: BackfillSpec, router: Router, listers: Mapping[str, EntityLister], systems: set[str]
) -> list[str]:
    """Why ``spec`` cannot run here (empty: it can), each naming what to change."""
    problems = []
    if spec.source not in systems:
        problems.append(f"--from {spec.source}: no such system in config.yaml")
    else:
        lister = listers.get(spec.source)
        if lister is None or not lister.lists(spec.entity):
            problems.append(
                f"--from {spec.source}: this system cannot list its {spec.entity}s"
                " (its connector, or the 1C contract it publishes, has no list operation)"
            )
    routed = router.targets(spec.source, spec.entity)
    for target in spec.targets:
        if target not in systems:
            problems.append(f"--to {target}: no such system in config.yaml")
        elif target == spec.source:
            problems.append(f"--to {target}: the source itself")
        elif target not in routed:
            problems.append(
                f"--to {target}: no route in mirror.routes sends {spec.entity}s from"
                f" {spec.source} to {target} (a backfill uses the route's mapping)"
            )
    return problems


class Backfiller:
    """Runs the open backfills of the store until stopped."""

    def __init__(
        self,
        store: Store,
        listers: Mapping[str, EntityLister],
        router: Router,
        systems: set[str],
        intake: Intake,
        *,
        backlog: int = BACKLOG,
        clock: Callable[[], float] = time.time,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._listers = dict(listers)
        self._router = router
        self._systems = systems
        self._intake = intake
        self._backlog = backlog
        self._clock = clock
        self._random = unit_random
        self._failures: dict[str, tuple[int, float]] = {}  # backfill -> (failures, retry at)
        self._wakeup = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the loop."""
        self._task = asyncio.create_task(self._run(), name="backfill")

    def wake(self) -> None:
        """Look again now (deliveries finished, or a backfill was stored)."""
        self._wakeup.set()

    async def stop(self) -> None:
        """Stop after the current page (a page not stored is listed again on resume)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wakeup.clear()
            busy, idle = False, IDLE_SECONDS
            try:
                for backfill in await self._store.list_backfills(open_only=True):
                    idle = OPEN_IDLE_SECONDS
                    busy = await self._step_safely(backfill) or busy
            except StoreError as exc:
                log.warning("store_unavailable", error=str(exc))
            except Exception:  # a bug must not stop every backfill for good
                log.exception("backfill_loop_failed")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), idle)

    async def _step_safely(self, backfill: Backfill) -> bool:
        """``step``, with a bug in one backfill (or its connector) kept from the others:
        logged, recorded on the backfill, retried with backoff."""
        try:
            return await self.step(backfill)
        except StoreError:
            raise
        except Exception as exc:
            failures, _ = self._failures.get(backfill.id, (0, 0.0))
            failures += 1
            delay = backoff_delay(failures, BACKOFF, self._random())
            self._failures[backfill.id] = (failures, self._clock() + delay)
            if failures == 1:
                log.exception("backfill_step_failed", backfill=backfill.id)
            error = f"unexpected {type(exc).__name__}: {exc}"
            with contextlib.suppress(StoreError):
                await self._store.set_backfill_status(backfill.id, backfill.status, error)
            return False

    async def step(self, backfill: Backfill) -> bool:
        """Move one backfill on by at most one page; True when a page was stored."""
        spec = backfill.spec
        problems = backfill_problems(spec, self._router, self._listers, self._systems)
        if problems:
            if await self._store.set_backfill_status(
                backfill.id, BackfillStatus.FAILED, "; ".join(problems)
            ):
                log.error("backfill_failed", backfill=backfill.id, problems=problems)
            return False
        if backfill.status is BackfillStatus.DELIVERING:
            if backfill.waiting == 0 and await self._store.set_backfill_status(
                backfill.id, BackfillStatus.DONE
            ):
                counts = {str(k): v for k, v in backfill.events.items()}
                log.info("backfill_done", backfill=backfill.id, events=counts)
            return False
        failures, retry_at = self._failures.get(backfill.id, (0, 0.0))
        if backfill.waiting >= self._backlog or self._clock() < retry_at:
            return False
        return await self._list_page(backfill, failures)

    async def _list_page(self, backfill: Backfill, failures: int) -> bool:
        spec = backfill.spec
        lister = self._listers[spec.source]
        began = self._clock()
        try:
            page = await asyncio.wait_for(
                lister.list_entities(spec.entity, spec.since, backfill.cursor), LIST_TIMEOUT
            )
        except (BridgeError, TimeoutError) as exc:
            error = str(exc) if isinstance(exc, BridgeError) else "the source did not answer"
            failures += 1
            delay = backoff_delay(failures, BACKOFF, self._random())
            self._failures[backfill.id] = (failures, self._clock() + delay)
            if failures == 1:  # once, not every retry; the backfill shows the last error
                log.warning("backfill_listing_failed", backfill=backfill.id, error=error)
            await self._store.set_backfill_status(backfill.id, backfill.status, error)
            return False
        self._failures.pop(backfill.id, None)
        events = [self._event(backfill, item, began) for item in page.entities]
        received = await self._intake.receive_listed(
            spec.source, backfill.id, events, page.cursor, page.total
        )
        log.info(
            "backfill_page_stored",
            backfill=backfill.id,
            count=len(events),
            new=len(received.fresh),
            last=page.cursor is None,
        )
        return True

    def _event(self, backfill: Backfill, item: ListedEntity, listed_at: float) -> NewEvent:
        spec = backfill.spec
        payload: dict[str, Any] = {"data": item.state, "listed_at": listed_at}
        event = InboundEvent(
            source_key=listed_key(backfill.id, item.entity_id),
            entity=spec.entity,
            entity_id=item.entity_id,
            action="listed",
            payload=payload,
        )
        number = int(backfill.id.removeprefix("bf_"))
        return NewEvent(spec.source, event, tuple(spec.targets), backfill=number)
