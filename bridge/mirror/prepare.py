"""Preparation: the document a delivery writes, made from the entity by the route's mapping.

Each job's route mapping is applied to the entity as the source holds it (or, when the
source cannot be re-read, to the latest change's data). A change a filter turns away is
done without a write; one that cannot be mapped is dead (permanent); one whose document is
what the bridge last wrote there is done without a write too (PRODUCT 3.3: several changes
that arrived while the target was down end as one write of the final state). A replay
always writes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge.connector import DeliveryJob, DocumentMapper
from bridge.errors import DeliveryError, PermanentError, StoreError
from bridge.mirror.idmap import IdMap, target_ref
from bridge.mirror.reads import SourceReads
from bridge.store.protocol import Store


@dataclass(frozen=True)
class Prepared:
    """A job made ready for its sink, or why it is not written: at most one of ``error``
    (the attempt fails) and ``note`` (done without a write) is set."""

    job: DeliveryJob
    error: DeliveryError | None = None
    note: str | None = None
    digest: str | None = None  # of the document to write, kept as the last written once done

    @property
    def ready(self) -> bool:
        """Whether the job goes to the sink."""
        return self.error is None and self.note is None


class Preparation:
    """Applies each route's mapping and decides whether a write is needed at all."""

    def __init__(
        self,
        store: Store,
        mappers: Mapping[tuple[str, str, str], DocumentMapper],
        reads: SourceReads,
        ids: IdMap,
    ) -> None:
        self._store = store
        self._mappers = dict(mappers)  # by (source, entity, target)
        self._reads = reads
        self._ids = ids

    async def prepare(self, job: DeliveryJob, *, replay: bool) -> Prepared:
        """The job with its document (or its id in the target), or why it is not written."""
        mapper = self._mappers.get((job.source, job.entity, job.target))
        if mapper is None:
            return await self._unmapped(job)
        if job.state is None and self._reads.reads_entity(job):
            # The source reads this entity and says it has none (deleted, merged away, or
            # never there): a mapping of the change's own fragment could create a copy of
            # something that does not exist, and would let a guard that reads an absent
            # field through.
            return Prepared(job, note=_not_found(job))
        source = _source_data(job)
        if source is None:
            return Prepared(job, error=_nothing_to_map(job))
        return await self._mapped(job, mapper, source, replay=replay)

    async def _unmapped(self, job: DeliveryJob) -> Prepared:
        """No mapping: the sink writes what the change carried; tell it the id."""
        known = await self._ids.mapped_id(job, _source_data(job) or {})
        return Prepared(dataclasses.replace(job, mapped_id=known))

    async def _mapped(
        self, job: DeliveryJob, mapper: DocumentMapper, source: Mapping[str, Any], *, replay: bool
    ) -> Prepared:
        ref = target_ref(job, source)
        known = None if ref is not None else await self._ids.mapped_id(job, source)
        try:
            # Rules marked `when: create` apply only while the target is not known to hold
            # the entity (no id of it there yet).
            mapped = mapper.apply(source, creating=ref is None and known is None)
        except DeliveryError as exc:
            return Prepared(job, error=exc)
        job = dataclasses.replace(job, document=mapped.document, target_ref=ref, mapped_id=known)
        if mapped.document is None:
            return Prepared(job, note=f"skipped: {mapped.skipped or 'filtered out'}")
        digest = _digest(mapped.document, ref)
        if not replay and await self._unchanged(job, digest):
            return Prepared(job, note="skipped: unchanged since the last write")
        return Prepared(job, digest=digest)

    async def _unchanged(self, job: DeliveryJob, digest: str) -> bool:
        """Whether the bridge last wrote this very document there, and every change of the
        delivery was already in the source when that write read it (a burst that arrived
        while the target was down). A change after that write may be a revert of what the
        target changed since, and is written even if it equals the last write."""
        try:
            last = await self._store.last_written(job.target, job.source, job.entity, job.entity_id)
        except StoreError:
            return False  # without the guard the write happens: never lost, at worst repeated
        newest = max((e.received_at for e in job.events), default=float("inf"))
        return last is not None and last[0] == digest and newest < last[1]


def _digest(document: Mapping[str, Any], ref: str | None) -> str:
    """A fingerprint of what a write would put into the target."""
    text = json.dumps([document, ref], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _source_data(job: DeliveryJob) -> Mapping[str, Any] | None:
    """The entity as read at its source, else the latest change's own data (for a source
    the bridge cannot read back)."""
    if job.state is not None:
        return job.state
    payload = job.events[-1].payload if job.events else None
    if not isinstance(payload, Mapping):
        return None
    data = payload.get("data")
    return data if isinstance(data, Mapping) else payload


def _not_found(job: DeliveryJob) -> str:
    return f"skipped: source entity not found ({job.source} has no {job.entity} {job.entity_id})"


def _nothing_to_map(job: DeliveryJob) -> PermanentError:
    return PermanentError(
        f"{job.source} {job.entity} {job.entity_id}: nothing to map (the source cannot be"
        " read and the change carried no data)"
    )
