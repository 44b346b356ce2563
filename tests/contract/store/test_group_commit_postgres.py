"""PostgreSQL's group commit of intake (``bridge.store.postgres.group``): the appends that
queue up while one transaction commits share the next, and one that fails fails alone."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from bridge.errors import StoreError
from bridge.store.postgres import PostgresStore
from bridge.store.records import EventFilter, InboundEvent, NewEvent, Stored
from tests.contract.store.conftest import LEASE, change
from tests.support.clock import Clock


async def _burst(store: PostgresStore, events: list[NewEvent]) -> list[Stored | BaseException]:
    results = await asyncio.gather(
        *(store.append_events([e]) for e in events), return_exceptions=True
    )
    return [r[0] if isinstance(r, list) else r for r in results]


async def test_a_burst_of_appends_shares_few_transactions(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, lease_seconds=LEASE, clock=Clock())
    await store.open()
    try:
        events = [change(f"k{i}", str(i % 7)) for i in range(60)]
        stored = await _burst(store, events)
        assert all(isinstance(s, Stored) and not s.duplicate for s in stored)
        assert len(await store.list_events(EventFilter(limit=100))) == 60
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        # Rows one transaction inserted share its id (xmin): 60 appends, a few commits.
        row = conn.execute("SELECT count(DISTINCT xmin::text) FROM events").fetchone()
        links = conn.execute("SELECT count(*) FROM delivery_events").fetchone()
    assert row is not None and row[0] <= 3
    assert links == (60,)


async def test_a_failing_append_fails_alone(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, lease_seconds=LEASE, clock=Clock())
    await store.open()
    try:
        events = [change(f"k{i}", str(i)) for i in range(20)]
        # PostgreSQL's TEXT holds no NUL: this one event's append fails.
        events[7] = NewEvent("shop", InboundEvent("bad", "order", "x\x00y"), ("crm",))
        stored = await _burst(store, events)
        assert isinstance(stored[7], StoreError)
        good = [s for i, s in enumerate(stored) if i != 7]
        assert all(isinstance(s, Stored) and not s.duplicate for s in good)
        listed = await store.list_events(EventFilter(limit=100))
        assert len(listed) == 19
        # The group is still of a few transactions, and the store keeps taking events.
        (later,) = await store.append_events([change("k-after")])
        assert not later.duplicate
    finally:
        await store.close()


async def test_an_append_after_close_is_refused(postgres_url: str) -> None:
    store = PostgresStore(postgres_url, lease_seconds=LEASE, clock=Clock())
    await store.open()
    await store.append_events([change("k1")])
    await store.close()
    with pytest.raises(StoreError):
        await asyncio.wait_for(store.append_events([change("k2")]), 10)


async def test_an_append_reads_no_backlog(postgres_url: str) -> None:
    """The lift of an entity's backfilled deliveries reads that entity's only, however
    many deliveries wait (its generic plan is the one a PL/pgSQL function runs)."""
    store = PostgresStore(postgres_url, lease_seconds=LEASE, clock=Clock())
    await store.open()
    await store.close()
    with psycopg.connect(postgres_url) as conn:
        conn.execute(
            "INSERT INTO deliveries (target, source, entity, entity_id, entity_key, status,"
            " due_at, created_at, updated_at) SELECT 'crm', 'shop', 'order', i::text,"
            " 'shop/order/' || i, 'pending', 1, 1, 1 FROM generate_series(1, 5000) AS i"
        )
        conn.execute("ANALYZE deliveries")
        conn.execute("SET plan_cache_mode = force_generic_plan")
        conn.execute(
            "PREPARE lift(text, text) AS UPDATE deliveries SET priority = 0 WHERE target = $1"
            " AND entity_key = $2 AND priority > 0 AND status IN ('pending', 'retry')"
        )
        cur = conn.execute("EXPLAIN EXECUTE lift('crm', 'shop/order/7')")
        plan = "\n".join(str(row[0]) for row in cur.fetchall())
    assert "deliveries_backfilled_waiting" in plan, plan
