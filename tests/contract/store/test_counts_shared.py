"""Counts kept exact while several instances write one PostgreSQL database (issue 16).

Two ``PostgresStore`` objects stand for two ``bridge serve``. Changes pour in through both
while workers on both claim and finish them (done, retry or dead); meanwhile a reader
checks, in one snapshot at a time, that the kept counts equal what the tables hold. The
rows of sessions that are gone are folded when a new one counts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest

from bridge.store.postgres import PostgresStore
from bridge.store.records import AttemptOutcome, Status
from tests.contract.store.conftest import LEASE, change
from tests.support.clock import Clock

CHANGES = 600
ORDERS = 40

# What the tables hold, beside what the counts say, in one snapshot.
COUNTED = """
SELECT tally, target, status, sum(n) FROM log_counts
GROUP BY 1, 2, 3 HAVING sum(n) != 0 ORDER BY 1, 2, 3
"""
HELD = """
SELECT 'deliveries', target, status, count(*) FROM deliveries GROUP BY 2, 3
UNION ALL SELECT 'events', '', status, count(*) FROM events GROUP BY 3
ORDER BY 1, 2, 3
"""
LEFT_BEHIND = """
SELECT count(*) FROM log_counts
WHERE backend != 0 AND backend NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
"""

STILL_THERE = """
SELECT count(*) FROM log_counts
WHERE backend != 0 AND backend IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
"""


@pytest.fixture
async def instances(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    clock = Clock()
    first = PostgresStore(postgres_url, lease_seconds=LEASE, clock=clock)
    second = PostgresStore(postgres_url, lease_seconds=LEASE, clock=clock)
    await asyncio.gather(first.open(serving=True), second.open(serving=True))
    yield first, second
    await asyncio.gather(first.close(), second.close())


async def gone(url: str) -> None:
    """Wait (up to 10 s) until the closed sessions have left pg_stat_activity: a backend
    ends a moment after its client closed, and one still listed is not folded."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        for _ in range(100):
            row = await (await conn.execute(STILL_THERE)).fetchone()
            if row == (0,):
                break
            await asyncio.sleep(0.1)


async def snapshot(conn: psycopg.AsyncConnection[Any]) -> tuple[list[Any], list[Any]]:
    """The kept counts and the tables' own, read in one snapshot."""
    async with conn.transaction():
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        counted = await (await conn.execute(COUNTED)).fetchall()
        held = await (await conn.execute(HELD)).fetchall()
    return counted, held


async def test_counts_stay_exact_while_two_instances_write(
    instances: tuple[PostgresStore, PostgresStore], postgres_url: str
) -> None:
    rng = random.Random(16)
    done = asyncio.Event()

    async def intake(store: PostgresStore, keys: list[int]) -> None:
        for start in range(0, len(keys), 5):
            batch = [change(f"k{n}", str(n % ORDERS)) for n in keys[start : start + 5]]
            await store.append_events(batch)

    async def worker(store: PostgresStore, name: str) -> None:
        while True:
            claimed = await store.claim_due("crm", name, 4)
            if not claimed and done.is_set():
                return
            for item in claimed:
                outcome = rng.choice([Status.DONE, Status.DONE, Status.DEAD, Status.RETRY])
                due = 0.0 if outcome is Status.RETRY else None  # due again at once
                await store.finish_attempt(item, name, AttemptOutcome(outcome, due, "x", "y"))
            await asyncio.sleep(0)

    checks = 0

    async def reader() -> None:
        nonlocal checks
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            while not done.is_set() or checks == 0:
                counted, held = await snapshot(conn)
                assert counted == held
                checks += 1
                await asyncio.sleep(0.01)

    numbers = list(range(CHANGES))
    rng.shuffle(numbers)
    first, second = instances
    workers = asyncio.gather(
        *(worker(s, f"{n}{i}") for s, n in zip(instances, "ab", strict=True) for i in (1, 2))
    )
    checking = asyncio.ensure_future(reader())
    await asyncio.gather(intake(first, numbers[::2]), intake(second, numbers[1::2]))
    done.set()
    await workers
    await checking
    assert checks > 1

    events = await first.count_events()
    assert sum(events.values()) == CHANGES

    # Sessions that are gone leave their rows; the next session that counts folds them.
    await asyncio.gather(first.close(), second.close())
    await gone(postgres_url)
    third = PostgresStore(postgres_url, lease_seconds=LEASE, clock=Clock())
    await third.open()
    try:
        await third.append_events([change("after", "1")])
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            counted, held = await snapshot(conn)
            left = await (await conn.execute(LEFT_BEHIND)).fetchone()
    finally:
        await third.close()
    assert counted == held
    assert left == (0,)
