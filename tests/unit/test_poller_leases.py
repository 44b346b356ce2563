"""One instance polls each feed, one sweeps owed calls, one prunes the log (issue 15): a
lease decides which; a holder that stops renewing is replaced within the lease time, a clean
stop hands over at once."""

from __future__ import annotations

import asyncio

from bridge.connector import PollResult
from bridge.mirror.intake import Intake
from bridge.mirror.poller import Poller
from bridge.mirror.retention import Pruner
from bridge.mirror.router import Router
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.settings import RetentionSettings, Settings
from bridge.store.leases import LocalLeases
from bridge.store.memory import MemoryStore
from bridge.store.memory.owed import MemoryOwedStore
from bridge.store.records import InboundEvent

LEASE = 1.0


async def polled_by(feed: Feed, name: str, since: int, within: float) -> float:
    """Seconds until ``name`` polls the feed after entry ``since``; fails after ``within``."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while name not in feed.polled_by[since:]:
        assert loop.time() - started < within, feed.polled_by[since:]
        await asyncio.sleep(0.01)
    return loop.time() - started


class Feed:
    """A change feed: a numbered change per poll, and who asked for it."""

    poll_interval: float = 0.01
    feeds: tuple[str, ...] = ("changes",)

    def __init__(self) -> None:
        self.polled_by: list[str] = []
        self.asking = ""

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        self.polled_by.append(self.asking)
        number = int(cursor or 0) + 1
        change = InboundEvent(f"msg-{number}", "order", str(number), "changed", {})
        return PollResult([change], str(number))


class Instance:
    """What one ``bridge serve`` runs of the poller, against the shared store and leases."""

    def __init__(self, name: str, store: MemoryStore, leases: LocalLeases, feed: Feed) -> None:
        self.name = name
        intake = Intake(store, Router(Settings()), lambda _targets: None)
        self.poller = Poller(
            store,
            {"crm": _Asking(feed, name)},
            intake,
            owner=name,
            leases=leases,
            lease_seconds=LEASE,
            look_seconds=0.05,
        )


class _Asking:
    """The feed, as seen from one instance (so the feed knows who polled)."""

    poll_interval: float = Feed.poll_interval
    feeds: tuple[str, ...] = Feed.feeds

    def __init__(self, feed: Feed, name: str) -> None:
        self._feed, self._name = feed, name

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        self._feed.asking = self._name
        return await self._feed.poll(feed, cursor)


async def test_one_instance_polls_a_feed_and_a_silent_one_is_replaced_within_the_lease() -> None:
    store = MemoryStore()
    await store.open()
    leases, feed = LocalLeases(), Feed()
    a, b = Instance("a", store, leases, feed), Instance("b", store, leases, feed)
    a.poller.start()
    await asyncio.sleep(0.1)
    b.poller.start()
    await asyncio.sleep(0.3)
    assert feed.polled_by and set(feed.polled_by) == {"a"}  # b stands by
    # a dies without a word: its tasks stop, its lease is not given back.
    for task in a.poller._tasks:
        task.cancel()
    await asyncio.gather(*a.poller._tasks, return_exceptions=True)
    await leases.hold("poll:crm:changes", "a", LEASE)  # as if a's last renewal just happened
    died = len(feed.polled_by)
    waited = await polled_by(feed, "b", died, within=LEASE + 2)
    assert waited >= LEASE * 0.9  # nobody polled while a's lease ran
    assert set(feed.polled_by[died:]) == {"b"}  # then b took over
    # Every change read once: the cursor moved on from where a left it.
    cursor = await store.get_cursor("crm", "changes")
    assert cursor is not None
    assert int(cursor.value) == len(feed.polled_by)
    await b.poller.stop()
    await store.close()


async def test_a_clean_stop_hands_the_feed_over_at_once() -> None:
    store = MemoryStore()
    await store.open()
    leases, feed = LocalLeases(), Feed()
    a, b = Instance("a", store, leases, feed), Instance("b", store, leases, feed)
    a.poller.start()
    await asyncio.sleep(0.05)
    b.poller.start()
    await asyncio.sleep(0.05)
    await a.poller.stop()
    stopped = len(feed.polled_by)
    # Well within the lease: only a clean hand-over explains it.
    await polled_by(feed, "b", stopped, within=LEASE * 0.8)
    assert set(feed.polled_by[stopped:]) == {"b"}
    await b.poller.stop()
    await store.close()


async def test_one_instance_sweeps_owed_calls_and_a_stopped_one_hands_over() -> None:
    store, leases = MemoryOwedStore(), LocalLeases()
    first = OwedSweeper(store, Handlers(), "a")
    second = OwedSweeper(store, Handlers(), "b")
    first.leases = second.leases = leases
    assert await first._leading()
    assert not await second._leading()  # a sweeps; b stands by
    await first.stop()  # a clean stop gives the sweeper's lease back
    assert await second._leading()
    assert not await first._leading()


async def test_one_instance_prunes_the_log() -> None:
    store, leases = MemoryStore(), LocalLeases()
    first = Pruner(store, RetentionSettings())
    second = Pruner(store, RetentionSettings())
    first.leases = second.leases = leases
    first.owner, second.owner = "a", "b"
    assert await first._leading()
    assert not await second._leading()
    await first.stop()
    assert await second._leading()
