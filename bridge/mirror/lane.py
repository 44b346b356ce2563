"""A target's lane: one attempt of claimed deliveries, from the source read to the record.

An attempt follows merges to the survivor, re-reads the source (:mod:`bridge.mirror.reads`),
applies the route's mapping (:mod:`bridge.mirror.prepare`), hands the jobs to the target's
sink (one by one, or as a batch the sink takes), keeps the ids the target gave
(:mod:`bridge.mirror.idmap`), and records every delivery's outcome, classified by
:func:`bridge.retry.decide_retry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge.connector import BatchSink, DeliveryJob, Sink
from bridge.errors import DeliveryError, ErrorClass, StoreError, TransientError
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.mirror.idmap import IdMap
from bridge.mirror.prepare import Preparation, Prepared
from bridge.mirror.reads import SourceReads
from bridge.retry import decide_retry
from bridge.settings import DeliverySettings
from bridge.store.protocol import Store
from bridge.store.records import AttemptOutcome, Claimed, Status

log = get_logger("bridge.lane")

# A slot's work: parts run in turn, each a batch (written together) or deliveries that
# must go alone, one after another.
Parts = list[tuple[list[Claimed], bool]]


@dataclass(frozen=True)
class Crew:
    """What every lane of a dispatcher shares: the store, the reads, the preparation."""

    store: Store
    owner: str
    reads: SourceReads
    preparation: Preparation
    ids: IdMap
    metrics: Metrics | None
    clock: Callable[[], float]
    unit_random: Callable[[], float]
    lease_seconds: float = 60.0


@dataclass
class TargetLane:
    """One target's sink, its limits, its wake-up flag and its attempts in flight."""

    name: str
    sink: Sink
    settings: DeliverySettings
    crew: Crew
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    running: set[asyncio.Task[None]] = field(default_factory=set)
    # How many deliveries one attempt may carry: read once (a runtime Protocol check is
    # slow, and the dispatcher asks at every wake-up, one per stored webhook).
    batch_size: int = field(init=False)

    def __post_init__(self) -> None:
        self.batch_size = self.sink.batch_size if isinstance(self.sink, BatchSink) else 1

    def group(self, claimed: list[Claimed], slots: int) -> list[Parts]:
        """Claimed deliveries as at most ``slots`` tasks. Each task runs its parts in turn:
        a batch (together), or deliveries that must go alone, one after another."""
        sink, size = self.sink, self.batch_size
        if not isinstance(sink, BatchSink):
            return [[([c], True)] for c in claimed]
        together = [c for c in claimed if sink.batchable(job_of(c))]
        alone = [c for c in claimed if c not in together]
        parts = [(together[i : i + size], True) for i in range(0, len(together), size)]
        parts += [(alone[i : i + size], False) for i in range(0, len(alone), size)]
        tasks = [[part] for part in parts[: max(1, slots)]]
        for extra in parts[len(tasks) :]:
            tasks[-1].append(extra)  # never more tasks than free slots
        return tasks

    async def run_parts(self, parts: Parts) -> None:
        """Run a slot's parts in turn while a heartbeat renews the leases of what the slot
        still holds: however long a write waits for its turn of a rate limit shared with
        other instances, no other instance takes over a live holder's deliveries."""
        held = [c for batch, _ in parts for c in batch]
        beat = asyncio.create_task(self._heartbeat(held))
        try:
            for batch, together in parts:
                for group in [batch] if together else [[c] for c in batch]:
                    await self.attempt(group)
                    del held[: len(group)]
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _heartbeat(self, held: list[Claimed]) -> None:
        """Every third of the lease, push the leases of ``held`` (shrinking as attempts
        are recorded) a full lease out. A missed beat (store down) is tried again at the
        next one; two more fit before the lease runs out."""
        crew = self.crew
        while held:
            await asyncio.sleep(crew.lease_seconds / 3)
            if held:
                with contextlib.suppress(StoreError):
                    await crew.store.extend_leases(list(held), crew.owner)

    async def attempt(self, batch: list[Claimed]) -> None:
        """One attempt of ``batch``: read, prepare, deliver, keep ids, record outcomes."""
        crew = self.crew
        jobs = await crew.ids.follow_merges([job_of(claimed) for claimed in batch])
        started = time.monotonic()
        replayed = {c.delivery.id for c in batch if c.delivery.generation}
        jobs, failed = await crew.reads.read_sources(jobs, replayed, self.settings.timeout_seconds)
        prepared = await asyncio.gather(*(self._prepare(job, failed, replayed) for job in jobs))
        ready = [p.job for p in prepared if p.ready]
        refs: dict[str, str] = {}
        delivered: dict[str, DeliveryError | None] = {}
        # The jobs the sink turns down for the batch go one by one after it, each waiting
        # its turn of the target's rate limit; the heartbeat keeps their leases.
        for group in self._regroup(ready):
            results = await self.deliver(group, refs)
            delivered.update(zip([j.delivery_id for j in group], results, strict=True))
        await crew.ids.map_ids(ready, refs)
        duration_ms = (time.monotonic() - started) * 1000
        outcomes = [
            self._outcome(claimed, done, delivered.get(done.job.delivery_id), duration_ms)
            for claimed, done in zip(batch, prepared, strict=True)
        ]
        await self._record(list(zip(batch, outcomes, strict=True)), duration_ms)

    async def _prepare(
        self, job: DeliveryJob, failed: dict[str, DeliveryError], replayed: set[str]
    ) -> Prepared:
        """One job's preparation; the jobs of an attempt are prepared together (distinct
        entities, each a few store reads)."""
        if job.delivery_id in failed:
            return Prepared(job, error=failed[job.delivery_id])
        return await self.crew.preparation.prepare(job, replay=job.delivery_id in replayed)

    def _regroup(self, jobs: list[DeliveryJob]) -> list[list[DeliveryJob]]:
        """The batch again, now that the jobs are mapped: a job the sink turns down for a
        batch only now (its target id became known) goes alone."""
        if len(jobs) < 2 or not isinstance(self.sink, BatchSink):
            return [jobs] if jobs else []
        sink = self.sink
        together = [j for j in jobs if sink.batchable(j)]
        alone = [[j] for j in jobs if not sink.batchable(j)]
        return ([together] if together else []) + alone

    async def deliver(
        self, jobs: list[DeliveryJob], refs: dict[str, str] | None = None
    ) -> list[DeliveryError | None]:
        """Run one attempt (one job, or a batch); an error per job, None where it landed;
        ``refs`` gets the target's id of each job's entity the sink gives."""
        timeout = self.settings.timeout_seconds
        try:
            if len(jobs) > 1 and isinstance(self.sink, BatchSink):
                results = await asyncio.wait_for(self.sink.deliver_batch(jobs), timeout)
                return _batch_errors(jobs, results, refs)
            ref = await asyncio.wait_for(self.sink.deliver(jobs[0]), timeout)
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
                target=self.name,
                deliveries=[j.delivery_id for j in jobs],
                exc_info=True,
            )
            return [error] * len(jobs)

    async def _record(
        self, finished: list[tuple[Claimed, AttemptOutcome]], duration_ms: float
    ) -> None:
        """Record the attempt's outcomes in one store transaction (one commit for a batch of
        50, not 50), each delivery still under its own lease check."""
        crew = self.crew
        if crew.metrics is not None:
            for claimed, outcome in finished:
                target = claimed.delivery.target
                crew.metrics.observe_attempt(target, outcome.status, duration_ms / 1000)
        try:
            held = await crew.store.finish_attempts(finished, crew.owner)
        except StoreError as exc:
            # Not recorded: the leases expire and the deliveries are tried again (at least once).
            for claimed, _outcome in finished:
                d = claimed.delivery
                log.warning("delivery_result_not_recorded", delivery_id=d.id, error=str(exc))
            return
        for (claimed, _outcome), kept in zip(finished, held, strict=True):
            if not kept:
                d = claimed.delivery
                log.warning("delivery_lease_lost", delivery_id=d.id, target=d.target)

    def _outcome(
        self, claimed: Claimed, done: Prepared, delivered: DeliveryError | None, duration_ms: float
    ) -> AttemptOutcome:
        """What the attempt made of a delivery: the preparation's error, else the sink's; a
        preparation's note (done without a write) or the written document's digest."""
        error = done.error if done.error is not None else delivered
        outcome = self._classify(claimed, error, duration_ms)
        if done.note is not None and error is None:
            outcome = dataclasses.replace(outcome, message=done.note)  # done without a write
        elif done.digest is not None and error is None:
            outcome = dataclasses.replace(outcome, written=done.digest)
        return outcome

    def _classify(
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
        retry = self.settings.retry
        decision = decide_retry(claimed.attempt, error, retry, self.crew.unit_random())
        error_class = str(error.error_class)
        if decision.retry:
            log.info(
                "delivery_retry_scheduled",
                error_class=error_class,
                error=str(error),
                delay_s=round(decision.delay, 2),
                **fields,
            )
            retry_at = self.crew.clock() + decision.delay
            return AttemptOutcome(Status.RETRY, retry_at, error_class, str(error), duration_ms)
        message = f"{error} ({decision.reason})"
        log.error("event_dead_lettered", error_class=error_class, error=message, **fields)
        return AttemptOutcome(Status.DEAD, None, error_class, message, duration_ms)


def _batch_errors(
    jobs: list[DeliveryJob], results: list[str | DeliveryError | None], refs: dict[str, str] | None
) -> list[DeliveryError | None]:
    """A batch sink's answer as an error per job; the ids it gave go to ``refs``. An answer
    of the wrong length fails the whole batch (a connector bug, retried)."""
    if len(results) != len(jobs):
        wrong = TransientError(f"the sink gave {len(results)} results for {len(jobs)}")
        wrong.error_class = ErrorClass.UNEXPECTED
        return [wrong] * len(jobs)
    for job, result in zip(jobs, results, strict=True):
        if isinstance(result, str) and refs is not None:
            refs[job.delivery_id] = result
    return [r if isinstance(r, DeliveryError) else None for r in results]


def job_of(claimed: Claimed) -> DeliveryJob:
    """The job a sink sees for a claimed delivery."""
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
        generation=d.generation,
    )
