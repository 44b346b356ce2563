"""Preparation (``bridge.mirror.prepare``): each decision about a job, one test each."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge.connector import DeliveryJob
from bridge.errors import PermanentError
from bridge.mirror.idmap import IdMap
from bridge.mirror.prepare import Preparation, Prepared
from bridge.mirror.reads import SourceReads
from bridge.store import Store
from bridge.store.memory import MemoryStore
from bridge.store.records import AttemptOutcome, EventRecord, InboundEvent, NewEvent, Status

NOW = 1_800_000_000.0


@dataclass(frozen=True)
class Result:
    document: dict[str, Any] | None
    skipped: str | None = None


@dataclass
class Mapper:
    """A compiled mapping's stand-in: ``skip`` is a filter, ``bad`` a value no rule maps."""

    creating: list[bool] = field(default_factory=list)

    def apply(self, source: Mapping[str, Any], /, *, creating: bool = True) -> Result:
        self.creating.append(creating)
        if source.get("bad"):
            raise PermanentError("status: no rule maps 'bad'")
        if source.get("skip"):
            return Result(None, "status is draft")
        return Result({"name": source.get("name")})


class Reader:
    """A source that reads its orders (and holds none)."""

    def reads(self, entity: str) -> bool:
        return entity == "order"

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        return None


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    # No sockets, no file: the memory store passes the same contract suite as SQLite's.
    opened = MemoryStore(lease_seconds=30, clock=lambda: NOW)
    await opened.open()
    yield opened
    await opened.close()


def job(state: Mapping[str, Any] | None, *, data: Any = None, entity_id: str = "7") -> DeliveryJob:
    events: tuple[EventRecord, ...] = ()
    if data is not None:
        event = EventRecord(
            "ev_1", "shop", "k1", "order", entity_id, "changed", Status.PENDING, None,
            {"data": data}, NOW - 60, NOW - 60,
        )  # fmt: skip
        events = (event,)
    return DeliveryJob("dl_1", "op_1", "crm", "shop", "order", entity_id, 1, events, state)


def preparation(store: Store, mapper: Mapper | None, *, reads: bool = False) -> Preparation:
    readers = {"shop": Reader()} if reads else {}
    mappers = {("shop", "order", "crm"): mapper} if mapper is not None else {}
    return Preparation(store, mappers, SourceReads(store, readers), IdMap(store))


async def test_without_a_mapping_the_sink_gets_the_id_the_target_gave_before(
    store: Store,
) -> None:
    await store.map_ids("order", "shop", "7", "crm", "900")
    done = await preparation(store, None).prepare(job(None, data={"a": 1}), replay=False)
    assert done.ready and done.job.mapped_id == "900" and done.digest is None


async def test_a_source_that_reads_the_entity_and_has_none_is_not_written(store: Store) -> None:
    prep = preparation(store, Mapper(), reads=True)
    done = await prep.prepare(job(None, data={"name": "Ivan"}), replay=False)
    assert done.note == "skipped: source entity not found (shop has no order 7)"


async def test_nothing_to_map_fails_for_good(store: Store) -> None:
    done = await preparation(store, Mapper()).prepare(job(None), replay=False)
    assert isinstance(done.error, PermanentError) and not done.ready


async def test_a_filtered_change_is_done_without_a_write(store: Store) -> None:
    done = await preparation(store, Mapper()).prepare(job({"skip": True}), replay=False)
    assert done.note == "skipped: status is draft"


async def test_a_document_that_cannot_be_mapped_fails_the_delivery(store: Store) -> None:
    done = await preparation(store, Mapper()).prepare(job({"bad": True}), replay=False)
    assert isinstance(done.error, PermanentError)


async def test_create_rules_apply_only_while_the_target_holds_no_copy(store: Store) -> None:
    mapper = Mapper()
    prep = preparation(store, mapper)
    fresh = await prep.prepare(job({"name": "Ivan"}), replay=False)
    await store.map_ids("order", "shop", "7", "crm", "900")
    known = await prep.prepare(job({"name": "Ivan"}), replay=False)
    own = await prep.prepare(job({"externalId": "crm-77"}, entity_id="8"), replay=False)
    assert mapper.creating == [True, False, False]
    assert (fresh.job.mapped_id, known.job.mapped_id) == (None, "900")
    assert own.job.target_ref == "77" and own.job.mapped_id is None
    assert fresh.digest is not None and fresh.job.document == {"name": "Ivan"}


async def test_the_last_written_document_is_not_written_again_unless_replayed(
    store: Store,
) -> None:
    prep = preparation(store, Mapper())
    first = await prep.prepare(job({"name": "Ivan"}, data={}), replay=False)
    await written(store, first)
    again = await prep.prepare(job({"name": "Ivan"}, data={}), replay=False)
    replayed = await prep.prepare(job({"name": "Ivan"}, data={}), replay=True)
    changed = await prep.prepare(job({"name": "Oleg"}, data={}), replay=False)
    assert again.note == "skipped: unchanged since the last write"
    assert replayed.digest == first.digest and changed.ready and changed.digest != first.digest


async def written(store: Store, prepared: Prepared) -> None:
    """Store the job's delivery and record it done with the prepared document written."""
    await store.append_events([NewEvent("shop", InboundEvent("k1", "order", "7"), ("crm",))])
    [claimed] = await store.claim_due("crm", "me", 1)
    outcome = AttemptOutcome(Status.DONE, written=prepared.digest)
    assert await store.finish_attempt(claimed, "me", outcome)
