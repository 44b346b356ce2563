"""The SQLite store on a real file: de-duplication, routing, order, leases, history."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import NotFound, StoreError
from bridge.store import SQLiteStore
from bridge.store.migrate import list_migrations, migrate_sqlite
from bridge.store.records import (
    AttemptOutcome,
    Cursor,
    EventFilter,
    InboundEvent,
    NewEvent,
    Rejected,
    Status,
)


class Clock:
    """A clock tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "s.db", lease_seconds=30, clock=clock)
    await s.open()
    yield s
    await s.close()


def change(key: str, entity_id: str = "1", entity: str = "order", **data: object) -> NewEvent:
    return NewEvent("shop", InboundEvent(key, entity, entity_id, "changed", dict(data)), ("crm",))


async def test_duplicates_are_found_not_stored(store: SQLiteStore) -> None:
    first, again = await store.append_events([change("k1"), change("k1")])
    assert not first.duplicate and again.duplicate
    assert again.event_id == first.event_id
    assert len(await store.list_events(EventFilter())) == 1


async def test_one_delivery_per_target(store: SQLiteStore) -> None:
    event = NewEvent("shop", InboundEvent("k", "order", "1"), ("crm", "erp"))
    (stored,) = await store.append_events([event])
    detail = await store.get_event(stored.event_id)
    assert sorted(d.target for d in detail.deliveries) == ["crm", "erp"]
    assert detail.event.status == Status.PENDING


async def test_waiting_changes_of_one_entity_coalesce(store: SQLiteStore) -> None:
    await store.append_events([change("a", "1", v=1), change("b", "1", v=2), change("c", "2")])
    claimed = await store.claim_due("crm", "me", 10)
    assert [(c.delivery.entity_id, [e.payload for e in c.events]) for c in claimed] == [
        ("1", [{"v": 1}, {"v": 2}]),
        ("2", [{}]),
    ]


async def test_a_change_during_flight_waits_for_the_flight(store: SQLiteStore) -> None:
    await store.append_events([change("a", "1", v=1)])
    (first,) = await store.claim_due("crm", "me", 10)
    await store.append_events([change("b", "1", v=2)])
    assert await store.claim_due("crm", "me", 10) == []  # blocked behind the flight
    await store.finish_attempt(first, "me", AttemptOutcome(Status.DONE))
    (second,) = await store.claim_due("crm", "me", 10)
    assert [e.payload for e in second.events] == [{"v": 2}]


async def test_a_retrying_delivery_blocks_newer_ones_without_absorbing_them(
    store: SQLiteStore, clock: Clock
) -> None:
    await store.append_events([change("a", "1", v=1)])
    (first,) = await store.claim_due("crm", "me", 10)
    await store.finish_attempt(
        first, "me", AttemptOutcome(Status.RETRY, clock.now + 10, "transient", "503")
    )
    await store.append_events([change("b", "1", v=2)])
    assert await store.claim_due("crm", "me", 10) == []
    assert await store.next_due_at("crm", clock.now) == clock.now + 10
    clock.now += 10
    (again,) = await store.claim_due("crm", "me", 10)
    assert again.attempt == 2
    # The first attempt may have landed, so v2 must not ride on the same operation key.
    assert [e.payload for e in again.events] == [{"v": 1}]
    await store.finish_attempt(again, "me", AttemptOutcome(Status.DONE))
    (newer,) = await store.claim_due("crm", "me", 10)
    assert [e.payload for e in newer.events] == [{"v": 2}]
    assert newer.delivery.operation_key != again.delivery.operation_key


async def test_expired_leases_return_to_pending_with_history(
    store: SQLiteStore, clock: Clock
) -> None:
    (stored,) = await store.append_events([change("a")])
    (claimed,) = await store.claim_due("crm", "dead-process", 10)
    assert await store.release_expired_leases() == 0
    clock.now += 31
    assert await store.release_expired_leases() == 1
    detail = await store.get_event(stored.event_id)
    assert detail.deliveries[0].status == Status.PENDING
    assert [h.kind for h in detail.history] == ["lease_expired"]
    # The old holder's late result no longer moves the delivery.
    held = await store.finish_attempt(claimed, "dead-process", AttemptOutcome(Status.DONE))
    assert held is False
    assert (await store.get_event(stored.event_id)).deliveries[0].status == Status.PENDING


async def test_takeover_releases_foreign_leases_only_under_the_lock(
    tmp_path: Path, clock: Clock
) -> None:
    reader = SQLiteStore(tmp_path / "t.db", clock=clock)
    await reader.open()  # like a CLI command: no instance lock
    await reader.append_events([change("a", "1"), change("b", "2")])
    await reader.claim_due("crm", "old", 10)
    assert await reader.recover_leases("new") == 0  # the holder may still be alive
    await reader.close()
    daemon = SQLiteStore(tmp_path / "t.db", clock=clock)
    await daemon.open(serving=True)
    try:
        second = SQLiteStore(tmp_path / "t.db", clock=clock)
        with pytest.raises(StoreError, match="already serving"):
            await second.open(serving=True)
        assert await daemon.recover_leases("new") == 2
    finally:
        await daemon.close()


async def test_replay_requeues_dead_and_appends_history(store: SQLiteStore) -> None:
    (stored,) = await store.append_events([change("a")])
    (claimed,) = await store.claim_due("crm", "me", 1)
    await store.finish_attempt(claimed, "me", AttemptOutcome(Status.DEAD, None, "permanent", "422"))
    dry = await store.replay([], EventFilter(status=Status.DEAD, limit=100), "t", dry_run=True)
    assert dry.requeued == [claimed.delivery.id]
    assert (await store.get_event(stored.event_id)).event.status == Status.DEAD
    done = await store.replay([stored.event_id], None, "cli:ann", dry_run=False)
    assert done.requeued == [claimed.delivery.id]
    detail = await store.get_event(stored.event_id)
    assert detail.event.status == Status.PENDING
    assert [(h.kind, h.actor) for h in detail.history] == [
        ("attempt", "me"),
        ("replayed", "cli:ann"),
    ]
    (replayed,) = await store.claim_due("crm", "me", 1)
    assert replayed.delivery.operation_key == f"bridge-{claimed.delivery.id}-r1"
    assert claimed.delivery.operation_key == f"bridge-{claimed.delivery.id}"
    again = await store.replay([claimed.delivery.id], None, "t", dry_run=False)
    assert again.requeued == [] and "already queued" in again.skipped[claimed.delivery.id]


async def test_replay_explains_what_it_skips(store: SQLiteStore) -> None:
    rejected = await store.append_rejected(Rejected("shop", "sha256:x", "{oops", "bad json"))
    result = await store.replay([rejected.event_id, "evt_999"], None, "t", dry_run=True)
    assert result.requeued == []
    assert "rejected" in result.skipped[rejected.event_id]
    assert result.skipped["evt_999"] == "not found"
    with pytest.raises(NotFound):
        await store.replay(["bogus"], None, "t", dry_run=True)


async def test_history_is_append_only(store: SQLiteStore) -> None:
    await store.append_rejected(Rejected("shop", "sha256:y", "{", "bad"))
    conn = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("UPDATE history SET message = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute("DELETE FROM history")
    finally:
        conn.close()


async def test_cursor_moves_with_the_events_it_read(store: SQLiteStore) -> None:
    cursor = Cursor("shop", "orders", "101", 0)
    await store.append_polled([change("h101")], cursor)
    got = await store.get_cursor("shop", "orders")
    assert got is not None and got.value == "101"
    # A failing batch stores neither its events nor the cursor.
    bad = NewEvent(
        "shop", InboundEvent("h102", "order", "1", payload={"x": float("nan")}), ("crm",)
    )
    with pytest.raises(ValueError, match="JSON"):
        await store.append_polled([change("h102a"), bad], Cursor("shop", "orders", "102", 0))
    got = await store.get_cursor("shop", "orders")
    assert got is not None and got.value == "101"
    assert len(await store.list_events(EventFilter())) == 1


async def test_id_map_both_directions(store: SQLiteStore) -> None:
    await store.map_ids("order", "onec", "17", "retailcrm", "A-17")
    assert await store.lookup_id("order", "onec", "17", "retailcrm") == "A-17"
    assert await store.lookup_id("order", "retailcrm", "A-17", "onec") == "17"
    assert await store.lookup_id("order", "onec", "18", "retailcrm") is None


async def test_list_filters(store: SQLiteStore, clock: Clock) -> None:
    await store.append_events([change("a", "1")])
    clock.now += 100
    await store.append_events([NewEvent("pos", InboundEvent("b", "order", "2"), ())])
    assert [e.source for e in await store.list_events(EventFilter(source="pos"))] == ["pos"]
    assert len(await store.list_events(EventFilter(target="crm"))) == 1
    assert len(await store.list_events(EventFilter(since=clock.now - 50))) == 1
    assert len(await store.list_events(EventFilter(status=Status.DONE))) == 1
    assert len(await store.list_events(EventFilter(limit=1))) == 1


def test_migrations_apply_once(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        shipped = [name for _version, name, _sql in list_migrations("sqlite")]
        assert shipped[:2] == ["0001_initial.sql", "0002_reservations.sql"]
        assert migrate_sqlite(conn) == shipped
        assert migrate_sqlite(conn) == []
    finally:
        conn.close()


def test_two_processes_migrating_a_fresh_file_do_not_collide(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "race.db"
    results: list[object] = []

    def migrate() -> None:
        conn = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            results.append(migrate_sqlite(conn))
        except Exception as exc:
            results.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shipped = [name for _version, name, _sql in list_migrations("sqlite")]
    assert sorted(map(str, results)) == [str(shipped), "[]", "[]", "[]"]


async def test_deliveries_that_go_alone_in_one_slot_keep_their_leases(tmp_path: Path) -> None:
    from collections import Counter

    from bridge.mirror.dispatcher import Dispatcher
    from bridge.settings import DeliverySettings

    class SlowSink:
        batch_size = 50

        def __init__(self) -> None:
            self.calls: Counter[str] = Counter()

        def batchable(self, job: object) -> bool:
            return False

        async def deliver_batch(self, jobs: list[object]) -> list[None]:
            return [None] * len(jobs)

        async def deliver(self, job: Any) -> None:
            self.calls[job.entity_id] += 1
            await asyncio.sleep(0.5)

    store = SQLiteStore(tmp_path / "lease.db", lease_seconds=2.0)
    await store.open(serving=True)
    try:
        await store.append_events(
            [NewEvent("src", InboundEvent(f"k{i}", "order", str(i)), ("crm",)) for i in range(8)]
        )
        sink = SlowSink()
        lanes = {"crm": (sink, DeliverySettings(concurrency=1, timeout_seconds=1.0))}
        dispatcher = Dispatcher(store, lanes, "me", lease_seconds=2.0)  # type: ignore[dict-item]
        await dispatcher.start()
        await asyncio.sleep(5.5)  # 8 deliveries of 0.5 s in turn: 4 s, twice the lease
        await dispatcher.stop()
        assert dict(sink.calls) == {str(i): 1 for i in range(8)}
    finally:
        await store.close()


async def test_forgetting_a_sources_cursors_keeps_the_others(store: SQLiteStore) -> None:
    await store.append_polled([], Cursor("shop", "orders", "7", 0))
    await store.append_polled([], Cursor("shop", "customers", "3", 0))
    await store.append_polled([], Cursor("crm", "orders", "9", 0))
    assert await store.forget_cursors("shop") == 2
    assert [(c.source, c.value) for c in await store.list_cursors()] == [("crm", "9")]
    assert await store.get_cursor("shop", "orders") is None
