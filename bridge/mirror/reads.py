"""Source reads: each delivery writes the entity as its source holds it now.

A delivery re-reads its entity at the source where the source can be read, so the target
gets the final state, not a replay of the changes. Three things keep that cheap: a
backfill's listed state stands in for a read while it is young, one read serves every
target's delivery of the entity (the source's rate limit is usually what bounds
mirroring), and a source that says it reads an entity but has none makes the delivery
"source entity not found" rather than a copy of something that is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.connector import DeliveryJob, EntityReader, ReadsEntities
from bridge.errors import DeliveryError, ErrorClass, StoreError, TransientError
from bridge.logs import get_logger
from bridge.store.protocol import Store
from bridge.store.records import EventRecord

log = get_logger("bridge.reads")

READ_REUSE = 5.0  # seconds a source read may serve another delivery of the entity
LISTED_FRESH = 120.0  # seconds a backfill's listed state may stand in for a read
READ_CACHE_SIZE = 4096
# Reads of one source under way at once, for every lane together. 1C's wire keeps a pool
# of delivery.concurrency connections (4 by default, connectors/onec/wire.py) that balance
# look-ups share; RetailCRM's and Bitrix's readers wait their turn of the key's limiter
# anyway, so more at once would only queue there with their timeouts running.
READS_AT_ONCE = 4

State = Mapping[str, Any] | None
Key = tuple[str, str, str]  # (source, entity, id)


class SourceReads:
    """The readers of the source systems and the recent reads the lanes share."""

    def __init__(
        self,
        store: Store,
        readers: Mapping[str, EntityReader],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._readers = dict(readers)  # by source system
        self._clock = clock
        # Recent source reads, shared by the lanes, and the reads waiting for their turn.
        self._reads: dict[Key, KeptRead] = {}
        self._turns: dict[str, asyncio.Semaphore] = {}  # by source: READS_AT_ONCE each

    def can_read(self, source: str) -> bool:
        """Whether deliveries from ``source`` re-read their entity there."""
        return source in self._readers

    def reads_entity(self, job: DeliveryJob) -> bool:
        """Whether the job's source reads its entity, so that no state means none there."""
        reader = self._readers.get(job.source)
        return isinstance(reader, ReadsEntities) and reader.reads(job.entity)

    async def read_sources(
        self, jobs: list[DeliveryJob], replayed: set[str], seconds: float
    ) -> tuple[list[DeliveryJob], dict[str, DeliveryError]]:
        """Re-read each job's entity at its source, where the source can be read; a source
        that cannot answer within ``seconds`` (the lane's timeout) fails that job like a
        target would (retried later). A replay always reads afresh: support asks for the
        state as it is now.

        The jobs are read together, at most :data:`READS_AT_ONCE` per source: a batch of 50
        read one after another kept the target's key idle. The jobs of one attempt are
        distinct entities (a claim never takes a delivery while an older one of its entity
        waits or flies), so no order among them is lost."""
        answers = await asyncio.gather(
            *(self._read_one(job, job.delivery_id in replayed, seconds) for job in jobs)
        )
        out = [read for read, _error in answers]
        failed = {job.delivery_id: error for job, error in answers if error is not None}
        return out, failed

    async def _read_one(
        self, job: DeliveryJob, replay: bool, seconds: float
    ) -> tuple[DeliveryJob, DeliveryError | None]:
        reader = self._readers.get(job.source)
        if reader is None:
            return job, None
        listed = await self._listed_state(job)
        if listed is not None:
            return dataclasses.replace(job, state=listed), None
        key = (job.source, job.entity, job.entity_id)
        shared = None if replay else await self._recent_read(key)
        if shared is not None:
            with contextlib.suppress(Exception):  # that read failed: make our own
                state = await asyncio.wait_for(asyncio.shield(shared), seconds)
                return dataclasses.replace(job, state=state), None
        return await self._read_afresh(reader, job, key, seconds)

    async def _read_afresh(
        self, reader: EntityReader, job: DeliveryJob, key: Key, seconds: float
    ) -> tuple[DeliveryJob, DeliveryError | None]:
        """Read the entity, and let deliveries of it to other targets wait for this read."""
        pending: asyncio.Future[State] = asyncio.get_running_loop().create_future()
        kept = self._keep_read(key, self._clock(), pending)
        turn = self._turns.setdefault(job.source, asyncio.Semaphore(READS_AT_ONCE))
        try:
            async with turn:  # the timeout starts with the turn: a queue here is no slow source
                kept.at = self._clock()  # it holds what was stored until now
                read = reader.read_entity(job.entity, job.entity_id)
                state = await asyncio.wait_for(read, seconds)
        except Exception as exc:  # a reader bug must not leave the delivery in flight either
            return job, _read_error(job, exc)
        else:
            pending.set_result(state)
            return dataclasses.replace(job, state=state), None
        finally:  # failed or cancelled (the lane stopping): the sharers read for themselves
            if not pending.done():
                pending.set_exception(TransientError("the shared read failed"))
                pending.exception()  # retrieved: no "never retrieved" warning

    async def _listed_state(self, job: DeliveryJob) -> State:
        """The state a backfill listed, when the delivery carries nothing else and no live
        change of the entity was stored since the listing began: then it is as fresh as a
        read, and a backfill costs the source one call per page, not one per entity."""
        listed_at = listed_time(job.events[-1]) if job.events else None
        if listed_at is None or any(listed_time(e) is None for e in job.events):
            return None
        # Only while young, and only on a first attempt: the bridge's own writes into the
        # source are not stored as changes (they are echoes), so an old listing may predate
        # one; a retry or a replay reads afresh.
        if job.may_have_landed or self._clock() - listed_at > LISTED_FRESH:
            return None
        try:
            live = await self._store.newest_change(job.source, job.entity, job.entity_id, live=True)
        except StoreError:
            return None
        data = job.events[-1].payload["data"]
        return data if live is None or live < listed_at else None

    async def _recent_read(self, key: Key) -> asyncio.Future[State] | None:
        """A read of this entity (done or under way) that another delivery started after
        every change of the entity stored so far, so it holds them all: one source read
        serves every target, and the source's rate limit is usually what bounds mirroring."""
        kept = self._reads.get(key)
        if kept is None or kept.aged(self._clock()):
            return None
        try:
            newest = await self._store.newest_change(*key)
        except StoreError:
            return None
        return kept.state if newest is not None and kept.at > newest else None

    def _keep_read(self, key: Key, at: float, state: asyncio.Future[State]) -> KeptRead:
        if len(self._reads) >= READ_CACHE_SIZE:  # drop the stale ones, else the oldest half
            now = self._clock()
            self._reads = {k: v for k, v in self._reads.items() if not v.aged(now)}
            if len(self._reads) >= READ_CACHE_SIZE:
                ordered = sorted(self._reads.items(), key=lambda kv: kv[1].at)
                self._reads = dict(ordered[READ_CACHE_SIZE // 2 :])
        kept = self._reads[key] = KeptRead(at, state)
        return kept


@dataclass(slots=True)
class KeptRead:
    """A source read other deliveries of the entity may share: ``at`` is when it was asked
    for, then when it began (its turn came); its state once it is done."""

    at: float
    state: asyncio.Future[State]

    def aged(self, now: float) -> bool:
        """Too old to serve another delivery. A read still waiting for its turn or under way
        is not: it begins (began) after ``at``, and the deliveries of the other targets wait
        for it rather than queue a read of their own behind a busy lane's batch (then every
        lane of a source read at its rate limit would read each entity again)."""
        return self.state.done() and now - self.at >= READ_REUSE


def _read_error(job: DeliveryJob, exc: Exception) -> DeliveryError:
    """What a failed read makes of the delivery: the source's own error, a timeout, or a
    reader bug (logged, and retried like a source that did not answer). Called while
    ``exc`` is handled, so the log line carries its traceback."""
    if isinstance(exc, DeliveryError):
        return exc
    if isinstance(exc, TimeoutError):
        return TransientError(f"source {job.source} did not answer")
    error = TransientError(f"reading the source failed: {type(exc).__name__}: {exc}")
    error.error_class = ErrorClass.UNEXPECTED
    log.warning("source_read_failed", source=job.source, delivery_id=job.delivery_id, exc_info=True)
    return error


def listed_time(event: EventRecord) -> float | None:
    """When the backfill that listed ``event`` asked the source for it (None: a change the
    source reported)."""
    payload = event.payload
    if event.action != "listed" or not isinstance(payload, Mapping):
        return None
    at, data = payload.get("listed_at"), payload.get("data")
    return float(at) if isinstance(at, int | float) and isinstance(data, Mapping) else None
