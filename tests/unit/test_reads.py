"""Source reads (``bridge.mirror.reads``): a batch is read together, a few at a time per
source, in the batch's order, one read still serving every target of an entity."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.connector import DeliveryJob
from bridge.errors import TransientError
from bridge.mirror.reads import READ_REUSE, READS_AT_ONCE, SourceReads
from bridge.store import Store
from bridge.store.memory import MemoryStore
from bridge.store.records import InboundEvent, NewEvent

NOW = 1_800_000_000.0


class Reader:
    """A source whose reads take ``seconds`` each; it counts reads and the most at once."""

    def __init__(self, seconds: float = 0.01, failing: frozenset[str] = frozenset()) -> None:
        self.seconds, self.failing = seconds, failing
        self.reads: list[str] = []
        self.now = self.most = 0

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        self.reads.append(entity_id)
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.seconds)
        finally:
            self.now -= 1
        if entity_id in self.failing:
            raise TransientError(f"503 for {entity_id}")
        return {"id": entity_id}


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    opened = MemoryStore(lease_seconds=30, clock=lambda: NOW)
    await opened.open()
    yield opened
    await opened.close()


def job(entity_id: str, *, source: str = "shop", target: str = "crm") -> DeliveryJob:
    did = f"dl_{source}_{target}_{entity_id}"
    return DeliveryJob(did, f"op_{did}", target, source, "order", entity_id, 1, ())


async def test_a_batch_is_read_together_a_few_at_a_time_per_source_in_its_order(
    store: Store,
) -> None:
    shop, erp = Reader(), Reader(failing=frozenset({"e3"}))
    reads = SourceReads(store, {"shop": shop, "erp": erp}, clock=lambda: NOW)
    jobs = [job(f"s{i}") for i in range(12)] + [job(f"e{i}", source="erp") for i in range(6)]
    out, failed = await reads.read_sources(jobs, set(), 5.0)
    assert [j.state for j in out] == [
        {"id": j.entity_id} if j.entity_id != "e3" else None for j in jobs
    ]
    assert list(failed) == ["dl_erp_crm_e3"] and "503 for e3" in str(failed["dl_erp_crm_e3"])
    assert sorted(shop.reads) == sorted(j.entity_id for j in jobs[:12])
    assert shop.most == erp.most == READS_AT_ONCE  # one after another before: 1


async def test_the_bound_is_shared_by_every_lane_reading_the_source(store: Store) -> None:
    shop = Reader()
    reads = SourceReads(store, {"shop": shop}, clock=lambda: NOW)
    lanes = [[job(f"{t}{i}", target=t) for i in range(4)] for t in ("crm", "erp", "web")]
    await asyncio.gather(*(reads.read_sources(batch, set(), 5.0) for batch in lanes))
    assert len(shop.reads) == 12 and shop.most == READS_AT_ONCE


async def test_the_timeout_starts_with_the_turn(store: Store) -> None:
    # Five turns of 0.05 s each; each read alone is well within 0.15 s, the batch is not.
    shop = Reader(seconds=0.05)
    reads = SourceReads(store, {"shop": shop}, clock=lambda: NOW)
    jobs = [job(str(i)) for i in range(5 * READS_AT_ONCE)]
    started = time.monotonic()
    _out, failed = await reads.read_sources(jobs, set(), 0.15)
    assert failed == {} and time.monotonic() - started >= 0.25


async def test_one_read_serves_every_target_of_the_entity(store: Store) -> None:
    await store.append_events([NewEvent("shop", InboundEvent("k1", "order", "7"), ("crm",))])
    shop = Reader(seconds=0.05)
    reads = SourceReads(store, {"shop": shop}, clock=lambda: NOW + 1)  # after the change
    crm, erp = await asyncio.gather(
        reads.read_sources([job("7"), job("8")], set(), 5.0),
        reads.read_sources([job("7", target="erp")], set(), 5.0),
    )
    assert [j.state for j in crm[0] + erp[0]] == [{"id": "7"}, {"id": "8"}, {"id": "7"}]
    assert sorted(shop.reads) == ["7", "8"]
    # A replay reads afresh.
    await reads.read_sources([job("7", target="web")], {"dl_shop_web_7"}, 5.0)
    assert sorted(shop.reads) == ["7", "7", "8"]


class Gate(Reader):
    """A source whose reads wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        self.reads.append(entity_id)
        await self.gate.wait()
        return {"id": entity_id}


async def test_a_read_waiting_for_its_turn_or_under_way_does_not_age(store: Store) -> None:
    ids = [str(i) for i in range(READS_AT_ONCE + 1)]
    await store.append_events(
        [NewEvent("shop", InboundEvent(f"k{i}", "order", i), ("crm", "erp")) for i in ids]
    )
    now = [NOW + 1]  # after the changes
    shop = Gate()
    reads = SourceReads(store, {"shop": shop}, clock=lambda: now[0])
    crm = asyncio.create_task(reads.read_sources([job(i) for i in ids], set(), 60.0))
    while len(shop.reads) < READS_AT_ONCE:
        await asyncio.sleep(0)  # four under way, the fifth waits for its turn
    now[0] += 10 * READ_REUSE  # a lane's whole batch queued before this one: still shared
    erp = asyncio.create_task(
        reads.read_sources([job("0", target="erp"), job(ids[-1], target="erp")], set(), 60.0)
    )
    await asyncio.sleep(0.05)
    shop.gate.set()
    await crm
    out, failed = await erp
    assert failed == {} and [j.state for j in out] == [{"id": "0"}, {"id": ids[-1]}]
    assert sorted(shop.reads) == ids  # each read once
    now[0] += READ_REUSE  # done reads age from when they began
    await reads.read_sources([job("0", target="web")], set(), 60.0)
    assert sorted(shop.reads) == sorted([*ids, "0"])
