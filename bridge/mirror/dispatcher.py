"""The dispatcher: claims due deliveries per target and runs attempts, bounded per target.

Per-entity order comes from the store's claim (a delivery is not due while an older one
of the same entity waits or is in flight); coalescing happens at intake. Here we bound
concurrency per target, time each attempt out, classify the outcome with
:func:`bridge.retry.decide_retry`, and record every attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.connector import (
    BatchSink,
    DeliveryJob,
    DocumentMapper,
    EntityReader,
    ReadsEntities,
    Sink,
)
from bridge.errors import DeliveryError, ErrorClass, PermanentError, StoreError, TransientError
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.retry import decide_retry
from bridge.settings import DeliverySettings
from bridge.store.protocol import Store
from bridge.store.records import AttemptOutcome, Claimed, EventRecord, Status

log = get_logger("bridge.dispatcher")

IDLE_POLL_SECONDS = 1.0  # picks up replays made by the CLI in another process
READ_REUSE = 5.0  # seconds a source read may serve another delivery of the entity
LISTED_FRESH = 120.0  # seconds a backfill's listed state may stand in for a read
READ_CACHE_SIZE = 4096
STORE_ERROR_PAUSE = 1.0


@dataclass
class TargetLane:
    """One target's sink, its limits and its wake-up flag."""

    name: str
    sink: Sink
    settings: DeliverySettings
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    running: set[asyncio.Task[None]] = field(default_factory=set)


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
        self._lanes = {name: TargetLane(name, sink, cfg) for name, (sink, cfg) in lanes.items()}
        self.owner = owner
        self._lease_seconds = lease_seconds
        self._metrics = metrics
        self._readers = dict(readers or {})  # by source system
        self._mappers = dict(mappers or {})  # by (source, entity, target)
        # Recent source reads, shared by the lanes: (source, entity, id) -> (read at, state).
        self._reads: dict[
            tuple[str, str, str], tuple[float, asyncio.Future[Mapping[str, Any] | None]]
        ] = {}
        self._clock = clock
        self._random = unit_random
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
            size = lane.sink.batch_size if isinstance(lane.sink, BatchSink) else 1
            claimed: list[Claimed] = []
            try:
                if free > 0:
                    claimed = await self._store.claim_due(lane.name, self.owner, free * size)
                for parts in self._group(lane, claimed, size, free):
                    task = asyncio.create_task(self._run_parts(lane, parts))
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

    @staticmethod
    def _group(
        lane: TargetLane, claimed: list[Claimed], size: int, slots: int
    ) -> list[list[tuple[list[Claimed], bool]]]:
        """Claimed deliveries as at most ``slots`` tasks. Each task runs its parts in turn:
        a batch (together), or deliveries that must go alone, one after another."""
        sink = lane.sink
        if not isinstance(sink, BatchSink):
            return [[([c], True)] for c in claimed]
        together = [c for c in claimed if sink.batchable(_job(c))]
        alone = [c for c in claimed if c not in together]
        parts = [(together[i : i + size], True) for i in range(0, len(together), size)]
        parts += [(alone[i : i + size], False) for i in range(0, len(alone), size)]
        tasks = [[part] for part in parts[: max(1, slots)]]
        for extra in parts[len(tasks) :]:
            tasks[-1].append(extra)  # never more tasks than free slots
        return tasks

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

    async def _run_parts(self, lane: TargetLane, parts: list[tuple[list[Claimed], bool]]) -> None:
        """Run a slot's parts in turn, renewing the leases of what still waits."""
        waiting = [c for batch, _ in parts for c in batch]
        for batch, together in parts:
            for group in [batch] if together else [[c] for c in batch]:
                if len(waiting) > len(group):
                    with contextlib.suppress(StoreError):
                        await self._store.extend_leases(waiting, self.owner)
                await self._attempt(lane, group)
                waiting = waiting[len(group) :]

    async def _attempt(self, lane: TargetLane, batch: list[Claimed]) -> None:
        jobs = await self._follow_merges([_job(claimed) for claimed in batch])
        started = time.monotonic()
        replayed = {c.delivery.id for c in batch if c.delivery.generation}
        jobs, failed = await self._read_sources(lane, jobs, replayed)
        if len(batch) > 1 and any(j.source in self._readers for j in jobs):
            with contextlib.suppress(StoreError):  # reads done in turn used up lease time
                await self._store.extend_leases(batch, self.owner)
        jobs, skipped, digests = await self._map_documents(batch, jobs, failed)
        ready = [j for j in jobs if j.delivery_id not in failed and j.delivery_id not in skipped]
        refs: dict[str, str] = {}
        delivered: dict[str, DeliveryError | None] = {}
        for group in self._regroup(lane, ready):
            results = await self._deliver(lane, group, refs)
            delivered.update(zip([j.delivery_id for j in group], results, strict=True))
        await self._map_ids(ready, refs)
        errors = [failed.get(j.delivery_id, delivered.get(j.delivery_id)) for j in jobs]
        duration_ms = (time.monotonic() - started) * 1000
        for claimed, error in zip(batch, errors, strict=True):
            did = claimed.delivery.id
            await self._record(claimed, error, duration_ms, skipped.get(did), digests.get(did))

    @staticmethod
    def _regroup(lane: TargetLane, jobs: list[DeliveryJob]) -> list[list[DeliveryJob]]:
        """The batch again, now that the jobs are mapped: a job the sink turns down for a
        batch only now (its target id became known) goes alone."""
        if len(jobs) < 2 or not isinstance(lane.sink, BatchSink):
            return [jobs] if jobs else []
        sink = lane.sink
        together = [j for j in jobs if sink.batchable(j)]
        alone = [[j] for j in jobs if not sink.batchable(j)]
        return ([together] if together else []) + alone

    async def _read_sources(
        self, lane: TargetLane, jobs: list[DeliveryJob], replayed: set[str]
    ) -> tuple[list[DeliveryJob], dict[str, DeliveryError]]:
        """Re-read each job's entity at its source, where the source can be read; a source
        that cannot answer fails that job like a target would (retried later). A replay
        always reads afresh: support asks for the state as it is now."""
        out: list[DeliveryJob] = []
        failed: dict[str, DeliveryError] = {}
        for job in jobs:
            reader = self._readers.get(job.source)
            if reader is None:
                out.append(job)
                continue
            listed = await self._listed_state(job)
            if listed is not None:
                out.append(dataclasses.replace(job, state=listed))
                continue
            key = (job.source, job.entity, job.entity_id)
            shared = None if job.delivery_id in replayed else await self._recent_read(key)
            if shared is not None:
                with contextlib.suppress(Exception):  # that read failed: make our own
                    state = await asyncio.wait_for(
                        asyncio.shield(shared), lane.settings.timeout_seconds
                    )
                    out.append(dataclasses.replace(job, state=state))
                    continue
            pending: asyncio.Future[Mapping[str, Any] | None] = (
                asyncio.get_running_loop().create_future()
            )
            self._keep_read(key, self._clock(), pending)
            try:
                state = await asyncio.wait_for(
                    reader.read_entity(job.entity, job.entity_id), lane.settings.timeout_seconds
                )
            except DeliveryError as exc:
                failed[job.delivery_id] = exc
            except TimeoutError:
                failed[job.delivery_id] = TransientError(f"source {job.source} did not answer")
            except Exception as exc:  # a reader bug must not leave the delivery in flight
                error = TransientError(f"reading the source failed: {type(exc).__name__}: {exc}")
                error.error_class = ErrorClass.UNEXPECTED
                log.warning(
                    "source_read_failed",
                    source=job.source,
                    delivery_id=job.delivery_id,
                    exc_info=True,
                )
                failed[job.delivery_id] = error
            else:
                pending.set_result(state)
                out.append(dataclasses.replace(job, state=state))
                continue
            pending.set_exception(TransientError("the shared read failed"))
            pending.exception()  # retrieved: no "never retrieved" warning
            out.append(job)
        return out, failed

    async def _listed_state(self, job: DeliveryJob) -> Mapping[str, Any] | None:
        """The state a backfill listed, when the delivery carries nothing else and no live
        change of the entity was stored since the listing began: then it is as fresh as a
        read, and a backfill costs the source one call per page, not one per entity."""
        listed_at = listed_time(job.events[-1]) if job.events else None
        if listed_at is None or any(listed_time(e) is None for e in job.events):
            return None
        # Only while young, and only on a first attempt: the bridge's own writes into the
        # source are not stored as changes (they are echoes), so an old listing may predate
        # one; a retry or a replay reads afresh.
        if job.attempt > 1 or "-r" in job.operation_key or self._clock() - listed_at > LISTED_FRESH:
            return None
        try:
            live = await self._store.newest_change(job.source, job.entity, job.entity_id, live=True)
        except StoreError:
            return None
        data = job.events[-1].payload["data"]
        return data if live is None or live < listed_at else None

    async def _recent_read(
        self, key: tuple[str, str, str]
    ) -> asyncio.Future[Mapping[str, Any] | None] | None:
        """A read of this entity (done or under way) that another delivery started after
        every change of the entity stored so far, so it holds them all: one source read
        serves every target, and the source's rate limit is usually what bounds mirroring."""
        kept = self._reads.get(key)
        if kept is None or self._clock() - kept[0] >= READ_REUSE:
            return None
        try:
            newest = await self._store.newest_change(*key)
        except StoreError:
            return None
        return kept[1] if newest is not None and kept[0] > newest else None

    def _keep_read(
        self,
        key: tuple[str, str, str],
        read_at: float,
        state: asyncio.Future[Mapping[str, Any] | None],
    ) -> None:
        if len(self._reads) >= READ_CACHE_SIZE:  # drop the stale ones, else the oldest half
            now = self._clock()
            self._reads = {k: v for k, v in self._reads.items() if now - v[0] < READ_REUSE}
            if len(self._reads) >= READ_CACHE_SIZE:
                ordered = sorted(self._reads.items(), key=lambda kv: kv[1][0])
                self._reads = dict(ordered[READ_CACHE_SIZE // 2 :])
        self._reads[key] = (read_at, state)

    async def _map_documents(
        self, batch: list[Claimed], jobs: list[DeliveryJob], failed: dict[str, DeliveryError]
    ) -> tuple[list[DeliveryJob], dict[str, str], dict[str, str]]:
        """Apply each job's route mapping to the entity as the source holds it (or, when the
        source cannot be re-read, to the latest change's data). A change a filter turns
        away is done without a write; one that cannot be mapped is dead (permanent); one
        whose document is what the bridge last wrote there is done without a write too
        (PRODUCT 3.3: several changes that arrived while the target was down end as one
        write of the final state). A replay always writes."""
        out: list[DeliveryJob] = []
        skipped: dict[str, str] = {}
        digests: dict[str, str] = {}
        replayed = {c.delivery.id for c in batch if c.delivery.generation}
        for job in jobs:
            mapper = self._mappers.get((job.source, job.entity, job.target))
            if job.delivery_id in failed:
                out.append(job)
                continue
            if mapper is not None and job.state is None and self._source_reads(job):
                # The source reads this entity and says it has none (deleted, merged away,
                # or never there): a mapping of the change's own fragment could create a
                # copy of something that does not exist, and would let a guard that reads
                # an absent field through.
                skipped[job.delivery_id] = (
                    f"skipped: source entity not found ({job.source} has no"
                    f" {job.entity} {job.entity_id})"
                )
                out.append(job)
                continue
            source = job.state if job.state is not None else _change_data(job)
            if mapper is None:  # the sink writes what the change carried; tell it the id
                known = await self._mapped_id(job, source or {})
                out.append(dataclasses.replace(job, mapped_id=known))
                continue
            if source is None:
                failed[job.delivery_id] = PermanentError(
                    f"{job.source} {job.entity} {job.entity_id}: nothing to map (the"
                    " source cannot be read and the change carried no data)"
                )
                out.append(job)
                continue
            ref = target_ref(job, source)
            known = None if ref is not None else await self._mapped_id(job, source)
            try:
                # Rules marked `when: create` apply only while the target is not known to
                # hold the entity (no id of it there yet).
                mapped = mapper.apply(source, creating=ref is None and known is None)
            except DeliveryError as exc:
                failed[job.delivery_id] = exc
                out.append(job)
                continue
            if mapped.document is None:
                skipped[job.delivery_id] = f"skipped: {mapped.skipped or 'filtered out'}"
            else:
                digest = _digest(mapped.document, ref)
                last = await self._last_written(job)
                # Skip only a delivery whose every change was already in the source when
                # the last write read it (a burst that arrived while the target was down):
                # a change after that write may be a revert of what the target changed
                # since, and must be written even if it equals the last write.
                newest = max((e.received_at for e in job.events), default=float("inf"))
                if (
                    last is not None
                    and last[0] == digest
                    and newest < last[1]
                    and job.delivery_id not in replayed
                ):
                    skipped[job.delivery_id] = "skipped: unchanged since the last write"
                else:
                    digests[job.delivery_id] = digest
            out.append(
                dataclasses.replace(job, document=mapped.document, target_ref=ref, mapped_id=known)
            )
        return out, skipped, digests

    def _source_reads(self, job: DeliveryJob) -> bool:
        """Whether the job's source reads its entity, so that no state means none there."""
        reader = self._readers.get(job.source)
        return isinstance(reader, ReadsEntities) and reader.reads(job.entity)

    async def _mapped_id(self, job: DeliveryJob, source: Mapping[str, Any]) -> str | None:
        """The target's id of the entity from the id map: its own pair with the target, or,
        for an entity that came from a third system (1C reports ``bitrix-7``, Bitrix's deal
        7, on its way to RetailCRM), the pair of the system it came from, so each system
        keeps one copy however many routes it is reached by."""
        try:
            found = await self._store.lookup_id(job.entity, job.source, job.entity_id, job.target)
            for system, own in _origins(job, source):
                if found is not None:
                    break
                found = await self._store.lookup_id(job.entity, system, own, job.target)
            # The target may have merged that one into another since (RetailCRM's combinedTo).
            merged = None
            if found is not None:
                merged = await self._store.resolve_alias(job.entity, job.target, found)
            return merged or found
        except StoreError:
            return None  # the sink falls back to its upsert by external id

    async def _follow_merges(self, jobs: list[DeliveryJob]) -> list[DeliveryJob]:
        """A job of an entity its source merged into another is the survivor's job: the
        survivor is read and written (under its own key), not a copy of the absorbed one."""
        out = []
        for job in jobs:
            try:
                survivor = await self._store.resolve_alias(job.entity, job.source, job.entity_id)
            except StoreError:
                survivor = None  # not known now: the absorbed id is read (and followed there)
            out.append(job if survivor is None else dataclasses.replace(job, entity_id=survivor))
        return out

    async def _last_written(self, job: DeliveryJob) -> tuple[str, float] | None:
        try:
            return await self._store.last_written(job.target, job.source, job.entity, job.entity_id)
        except StoreError:
            return None  # without the guard the write happens: never lost, at worst repeated

    async def _map_ids(self, jobs: list[DeliveryJob], refs: dict[str, str]) -> None:
        """Keep the pairs of ids the targets gave (PRODUCT 3.3: "id map updated"): balance
        look-ups by another system's customer id and write-backs find the entity by them."""
        for job in jobs:
            peer = refs.get(job.delivery_id)
            if peer is None:
                continue
            try:
                await self._store.map_ids(job.entity, job.source, job.entity_id, job.target, peer)
            except StoreError as exc:  # the write landed; the pair is only a convenience
                log.warning("id_map_not_recorded", delivery_id=job.delivery_id, error=str(exc))

    async def _deliver(
        self, lane: TargetLane, jobs: list[DeliveryJob], refs: dict[str, str] | None = None
    ) -> list[DeliveryError | None]:
        """Run one attempt (one job, or a batch); an error per job, None where it landed;
        ``refs`` gets the target's id of each job's entity the sink gives."""
        timeout = lane.settings.timeout_seconds
        try:
            if len(jobs) > 1 and isinstance(lane.sink, BatchSink):
                results = await asyncio.wait_for(lane.sink.deliver_batch(jobs), timeout)
                if len(results) == len(jobs):
                    for job, result in zip(jobs, results, strict=True):
                        if isinstance(result, str) and refs is not None:
                            refs[job.delivery_id] = result
                    return [r if isinstance(r, DeliveryError) else None for r in results]
                wrong = TransientError(f"the sink gave {len(results)} results for {len(jobs)}")
                wrong.error_class = ErrorClass.UNEXPECTED
                return [wrong] * len(jobs)
            ref = await asyncio.wait_for(lane.sink.deliver(jobs[0]), timeout)
            if ref is not None and refs is not None:
                refs[jobs[0].delivery_id] = str(ref)
            return [None]
        except DeliveryError as exc:
            return [exc] * len(jobs)
        except TimeoutError:
            return [TransientError(f"timed out after {timeout:g} s")] * len(jobs)
        except Exception as exc:  # a connector bug must not kill the lane
            error = TransientError(f"unexpected {type(exc).__name__}: {exc}")
            error.error_class = ErrorClass.UNEXPECTED
            log.warning(
                "delivery_unexpected_error",
                target=lane.name,
                deliveries=[j.delivery_id for j in jobs],
                exc_info=True,
            )
            return [error] * len(jobs)

    async def _record(
        self,
        claimed: Claimed,
        error: DeliveryError | None,
        duration_ms: float,
        note: str | None = None,
        digest: str | None = None,
    ) -> None:
        d = claimed.delivery
        outcome = self._outcome(claimed, error, duration_ms)
        if note is not None and error is None:
            outcome = dataclasses.replace(outcome, message=note)  # done without a write
        elif digest is not None and error is None:
            outcome = dataclasses.replace(outcome, written=digest)
        if self._metrics is not None:
            self._metrics.observe_attempt(d.target, outcome.status, duration_ms / 1000)
        try:
            held = await self._store.finish_attempt(claimed, self.owner, outcome)
        except StoreError as exc:
            # Not recorded: the lease expires and the delivery is tried again (at least once).
            log.warning("delivery_result_not_recorded", delivery_id=d.id, error=str(exc))
            return
        if not held:
            log.warning("delivery_lease_lost", delivery_id=d.id, target=d.target)

    def _outcome(
        self, claimed: Claimed, error: DeliveryError | None, duration_ms: float
    ) -> AttemptOutcome:
        d = claimed.delivery
        fields = {
            "delivery_id": d.id,
            "target": d.target,
            "entity": d.entity,
            "entity_id": d.entity_id,
            "attempt": claimed.attempt,
        }
        if error is None:
            log.info("delivery_done", duration_ms=round(duration_ms, 1), **fields)
            return AttemptOutcome(Status.DONE, duration_ms=duration_ms)
        lane = self._lanes[d.target]
        decision = decide_retry(claimed.attempt, error, lane.settings.retry, self._random())
        error_class = str(error.error_class)
        if decision.retry:
            log.info(
                "delivery_retry_scheduled",
                error_class=error_class,
                error=str(error),
                delay_s=round(decision.delay, 2),
                **fields,
            )
            return AttemptOutcome(
                Status.RETRY, self._clock() + decision.delay, error_class, str(error), duration_ms
            )
        message = f"{error} ({decision.reason})"
        log.error("event_dead_lettered", error_class=error_class, error=message, **fields)
        return AttemptOutcome(Status.DEAD, None, error_class, message, duration_ms)

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


def _digest(document: Mapping[str, Any], ref: str | None) -> str:
    """A fingerprint of what a write would put into the target."""
    text = json.dumps([document, ref], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def target_ref(job: DeliveryJob, source: Mapping[str, Any]) -> str | None:
    """The target's own id of an entity that started in the target.

    Every sink keys what the bridge writes by ``<source>-<id>`` (``DeliveryJob.external_id``),
    so an entity known by such a key (as its id, or as the external id its source keeps)
    names the target it came from and its id there: 1C reports an order the bridge saved
    as ``retailcrm-77``; RetailCRM shows an order the bridge created from 1C with
    ``externalId: onec-12``. Writing back then goes to RetailCRM's 77 or 1C's 12, never to
    a second copy.
    """
    prefix = f"{job.target}-"
    if job.entity_id.startswith(prefix) and len(job.entity_id) > len(prefix):
        return job.entity_id[len(prefix) :]
    for key in ("externalId", "external_id"):
        value = source.get(key)
        if isinstance(value, str) and value.startswith(prefix) and len(value) > len(prefix):
            return value[len(prefix) :]
    return None


def _origins(job: DeliveryJob, source: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(system, id) pairs the bridge's ``<system>-<id>`` keys on the entity name: its id,
    or the external id its source keeps (see :func:`target_ref`)."""
    found: list[tuple[str, str]] = []
    for value in (job.entity_id, source.get("externalId"), source.get("external_id")):
        if not isinstance(value, str):
            continue
        system, dash, own = value.partition("-")
        named = dash and own and system.isidentifier()
        if named and system not in (job.source, job.target) and (system, own) not in found:
            found.append((system, own))
    return found


def listed_time(event: EventRecord) -> float | None:
    """When the backfill that listed ``event`` asked the source for it (None: a change the
    source reported)."""
    payload = event.payload
    if event.action != "listed" or not isinstance(payload, Mapping):
        return None
    at, data = payload.get("listed_at"), payload.get("data")
    return float(at) if isinstance(at, int | float) and isinstance(data, Mapping) else None


def _change_data(job: DeliveryJob) -> Mapping[str, Any] | None:
    """The latest change's own data, for a source the bridge cannot read back."""
    payload = job.events[-1].payload if job.events else None
    if not isinstance(payload, Mapping):
        return None
    data = payload.get("data")
    return data if isinstance(data, Mapping) else payload


def _job(claimed: Claimed) -> DeliveryJob:
    d = claimed.delivery
    return DeliveryJob(
        delivery_id=d.id,
        operation_key=d.operation_key,
        target=d.target,
        source=d.source,
        entity=d.entity,
        entity_id=d.entity_id,
        attempt=claimed.attempt,
        events=tuple(claimed.events),
    )
