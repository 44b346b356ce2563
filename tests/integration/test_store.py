"""What only the SQLite store does: its file lock, its triggers, its migrations, the file
set aside for a fresh sandbox. The behaviour every store shares is in tests/contract/store/."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import StoreError
from bridge.store import SQLiteStore
from bridge.store.migrate import list_migrations, migrate_sqlite
from bridge.store.records import (
    EventFilter,
    InboundEvent,
    NewEvent,
    Rejected,
)
from tests.support.clock import Clock


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
        dispatcher = Dispatcher(store, lanes, "me", lease_seconds=2.0)  # type: ignore[arg-type]
        await dispatcher.start()
        await asyncio.sleep(5.5)  # 8 deliveries of 0.5 s in turn: 4 s, twice the lease
        await dispatcher.stop()
        assert dict(sink.calls) == {str(i): 1 for i in range(8)}
    finally:
        await store.close()


async def test_a_live_holder_keeps_an_attempt_longer_than_its_lease(tmp_path: Path) -> None:
    """A write may outlast the lease (waiting for its turn of a shared rate limit): the
    holder's heartbeat keeps the lease, so another instance sweeping expired leases does
    not take the delivery over and write it a second time."""
    from collections import Counter

    from bridge.mirror.dispatcher import Dispatcher
    from bridge.settings import DeliverySettings

    class SlowSink:
        def __init__(self) -> None:
            self.calls: Counter[str] = Counter()

        async def deliver(self, job: Any) -> None:
            self.calls[job.entity_id] += 1
            await asyncio.sleep(2.5)  # two and a half leases, within the timeout

    store = SQLiteStore(tmp_path / "heartbeat.db", lease_seconds=1.0)
    await store.open(serving=True)
    try:
        await store.append_events([NewEvent("src", InboundEvent("k", "order", "1"), ("crm",))])
        sink = SlowSink()
        settings = DeliverySettings(concurrency=1, timeout_seconds=5.0)
        mine = Dispatcher(store, {"crm": (sink, settings)}, "a", lease_seconds=1.0)
        other = Dispatcher(store, {"crm": (sink, settings)}, "b", lease_seconds=1.0)
        await other.start()  # before "a": at start-up, a SQLite store takes every lease over
        await mine.start()
        await asyncio.sleep(3.5)
        await mine.stop()
        await other.stop()
        assert dict(sink.calls) == {"1": 1}
        (event,) = await store.list_events(EventFilter())
        detail = await store.get_event(event.id)
        assert [d.status for d in detail.deliveries] == ["done"]
        assert "lease_expired" not in [h.kind for h in detail.history]
    finally:
        await store.close()


async def test_a_fresh_sandbox_sets_the_old_file_aside_readable(
    tmp_path: Path, clock: Clock
) -> None:
    path = tmp_path / "sandbox.db"
    first = SQLiteStore(path, clock=clock)
    await first.open(serving=True)
    await first.append_events([change("a")])
    await first.close()
    again = SQLiteStore(path, clock=clock)
    await again.open(serving=True, fresh=True)
    try:
        assert await again.list_events(EventFilter()) == []
    finally:
        await again.close()
    previous = SQLiteStore(Path(f"{path}.previous"), clock=clock)
    await previous.open()
    try:
        assert len(await previous.list_events(EventFilter())) == 1
    finally:
        await previous.close()


def test_the_unused_idempotency_table_is_dropped(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "m.db", isolation_level=None)
    try:
        migrate_sqlite(conn)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert "idempotency" not in tables and "events" in tables
    finally:
        conn.close()
