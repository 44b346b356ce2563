"""Several instances on one PostgreSQL database: what only a shared store must guarantee.

Two ``PostgresStore`` objects on the run's database stand for two ``bridge serve``: each
has its own pool, so their transactions really run side by side on the server. Changes of
a few orders pour in through both while four workers (two per instance) claim, work and
finish; an entity's deliveries never run at once and never out of order, and every event
is delivered once. A reservation sent to both at once with one Idempotency-Key is one.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator

import pytest

from bridge.store.postgres import PostgresStore
from bridge.store.records import AttemptOutcome, Status
from bridge.store.reservations import OrderTaken, Reservation
from tests.contract.store.conftest import LEASE, change
from tests.contract.store.test_reservations import CREATED, reservation
from tests.support.clock import Clock

ORDERS = 6
CHANGES = 240


@pytest.fixture
async def instances(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    clock = Clock()
    first = PostgresStore(postgres_url, lease_seconds=LEASE, clock=clock)
    second = PostgresStore(postgres_url, lease_seconds=LEASE, clock=clock)
    await asyncio.gather(first.open(serving=True), second.open(serving=True))  # one migrates
    yield first, second
    await asyncio.gather(first.close(), second.close())


async def test_entity_order_holds_across_instances(
    instances: tuple[PostgresStore, PostgresStore],
) -> None:
    rng = random.Random(15)
    running: dict[str, str] = {}  # entity -> the worker on it
    delivered: dict[str, list[int]] = defaultdict(list)
    appended: list[str] = []
    intake_done = asyncio.Event()

    async def intake(store: PostgresStore, keys: list[int]) -> None:
        for start in range(0, len(keys), 4):
            batch = [change(f"k{n}", str(n % ORDERS), n=n) for n in keys[start : start + 4]]
            appended.extend(s.event_id for s in await store.append_events(batch))
            await asyncio.sleep(0)

    async def worker(store: PostgresStore, name: str) -> None:
        while True:
            claimed = await store.claim_due("crm", name, 3)
            if not claimed and intake_done.is_set():
                return
            for item in claimed:
                entity = item.delivery.entity_id
                assert entity not in running, f"{name} and {running[entity]} on order {entity}"
                running[entity] = name
                await asyncio.sleep(rng.random() / 500)
                delivered[entity].extend(int(e.id.removeprefix("evt_")) for e in item.events)
                del running[entity]
                assert await store.finish_attempt(item, name, AttemptOutcome(Status.DONE))
            await asyncio.sleep(0)

    numbers = list(range(CHANGES))
    rng.shuffle(numbers)
    first, second = instances
    intakes = asyncio.gather(intake(first, numbers[::2]), intake(second, numbers[1::2]))
    workers = [
        worker(s, f"{name}{i}") for s, name in zip(instances, "ab", strict=True) for i in (1, 2)
    ]
    pending = asyncio.gather(*workers)
    await intakes
    intake_done.set()
    await pending
    for entity, events in delivered.items():
        assert events == sorted(events), f"order {entity} out of order: {events}"
    every = sorted(n for events in delivered.values() for n in events)
    assert every == sorted(int(e.removeprefix("evt_")) for e in appended)  # each once
    assert len(every) == CHANGES
    assert await first.count_events() == {Status.DONE: CHANGES}


async def test_one_idempotency_key_sent_to_two_instances_makes_one_reservation(
    instances: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = instances
    now = 1_800_000_000.0
    for number in range(1, 11):
        one = reservation(number, now)
        other = reservation(100 + number, now, idempotency_key=f"key-{number}")
        made = await asyncio.gather(
            first.create_reservation(one, CREATED), second.create_reservation(other, CREATED)
        )
        assert made[0].id == made[1].id
    assert await first.count_reservations() == {"creating": 10}


async def test_one_order_gets_one_reservation_across_instances(
    instances: tuple[PostgresStore, PostgresStore],
) -> None:
    first, second = instances
    now = 1_800_000_000.0
    one = reservation(1, now)
    other = reservation(2, now, order_id="A-1", master_order_id="A-1")
    made = await asyncio.gather(
        first.create_reservation(one, CREATED),
        second.create_reservation(other, CREATED),
        return_exceptions=True,
    )
    kept = [r for r in made if isinstance(r, Reservation)]
    refused = [r for r in made if isinstance(r, OrderTaken)]
    assert (len(kept), len(refused)) == (1, 1)
    assert refused[0].args[0] == kept[0].id
