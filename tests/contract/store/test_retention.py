"""Retention: the log's size, and finished events pruned in batches with all that hangs off
them; nothing still waiting is ever taken."""

from __future__ import annotations

import pytest

from bridge.errors import NotFound
from bridge.store import Store
from bridge.store.records import (
    AttemptOutcome,
    EventFilter,
    InboundEvent,
    NewEvent,
    Rejected,
    Status,
)
from tests.contract.store.conftest import change
from tests.support.clock import T0, Clock

DAY = 86_400.0


async def deliver(store: Store, outcome: Status = Status.DONE, due_at: float | None = None) -> None:
    """Claim what is due at ``crm`` and finish every attempt with ``outcome``."""
    for claimed in await store.claim_due("crm", "me", 10):
        await store.finish_attempt(claimed, "me", AttemptOutcome(outcome, due_at, "x", "because"))


async def test_prune_takes_old_done_events_oldest_first_in_batches(
    store: Store, clock: Clock
) -> None:
    old = [
        s.event_id for s in await store.append_events([change(f"o{i}", str(i)) for i in range(3)])
    ]
    await deliver(store)
    clock.now = T0 + DAY
    (new,) = await store.append_events([change("n", "9")])
    await deliver(store)
    clock.now = T0 + 2 * DAY

    dry = await store.count_prunable(Status.DONE, T0 + DAY / 2)
    assert (dry.status, dry.count, dry.oldest_at, dry.newest_at) == (Status.DONE, 3, T0, T0)
    assert await store.prune_events(Status.DONE, T0 + DAY / 2, 2) == 2
    assert await store.prune_events(Status.DONE, T0 + DAY / 2, 2) == 1
    assert await store.prune_events(Status.DONE, T0 + DAY / 2, 2) == 0
    for event_id in old:
        with pytest.raises(NotFound):
            await store.get_event(event_id)
    kept = await store.get_event(new.event_id)
    assert kept.event.status == Status.DONE
    assert [h.kind for h in kept.history] == ["attempt"]
    stats = await store.log_stats()
    assert stats.events == {Status.DONE: 1}
    assert (stats.deliveries, stats.oldest_at, stats.newest_at) == (1, T0 + DAY, T0 + DAY)
    assert (await store.count_prunable(Status.DONE, T0 + DAY / 2)).count == 0


async def test_prune_never_takes_an_event_still_waiting_leased_or_dead(
    store: Store, clock: Clock
) -> None:
    await store.append_events([change("dead", "1")])
    await deliver(store, Status.DEAD)
    await store.append_events([change("retry", "2")])
    await deliver(store, Status.RETRY, due_at=T0 + 100 * DAY)
    # A second target of one event: done at crm, still waiting at erp.
    await store.append_events([NewEvent("shop", InboundEvent("two", "order", "5"), ("crm", "erp"))])
    await deliver(store)
    await store.append_events([change("flying", "3")])
    assert len(await store.claim_due("crm", "me", 10)) == 1
    await store.append_events([change("waiting", "4")])
    clock.now = T0 + 30 * DAY

    for status in (Status.DONE, Status.REJECTED):
        assert (await store.count_prunable(status, clock.now)).count == 0
        assert await store.prune_events(status, clock.now, 100) == 0
    stats = await store.log_stats()
    assert sum(stats.events.values()) == 5
    assert stats.deliveries == 6


async def test_a_delivery_stays_while_it_carries_an_event_kept(store: Store, clock: Clock) -> None:
    first, second = await store.append_events([change("a"), change("b")])  # coalesced
    await deliver(store)
    clock.now = T0 + DAY

    assert await store.prune_events(Status.DONE, clock.now, 1) == 1
    (listed,) = await store.list_events(EventFilter(limit=100))
    kept_id = listed.id
    assert kept_id in (first.event_id, second.event_id)
    kept = await store.get_event(kept_id)
    (delivery,) = kept.deliveries
    assert delivery.event_ids == (kept_id,)
    assert [h.kind for h in kept.history] == ["attempt"]
    assert (await store.log_stats()).deliveries == 1
    assert await store.prune_events(Status.DONE, clock.now, 1) == 1
    stats = await store.log_stats()
    assert (stats.events, stats.deliveries, stats.oldest_at) == ({}, 0, None)


async def test_coalesced_events_go_together_in_one_batch(store: Store, clock: Clock) -> None:
    await store.append_events([change("a"), change("b"), change("c")])  # one delivery
    await deliver(store)
    clock.now = T0 + DAY

    assert await store.prune_events(Status.DONE, clock.now, 3) == 3
    stats = await store.log_stats()
    assert (stats.events, stats.deliveries) == ({}, 0)


async def test_dead_and_rejected_go_only_when_asked_by_name(store: Store, clock: Clock) -> None:
    (dead,) = await store.append_events([change("d")])
    await deliver(store, Status.DEAD)
    rejected = await store.append_rejected(Rejected("shop", "sha256:x", "{oops", "bad json"))
    (unrouted,) = await store.append_events([NewEvent("pos", InboundEvent("k", "order", "1"), ())])
    clock.now = T0 + DAY

    assert await store.prune_events(Status.DONE, clock.now, 100) == 1  # the unrouted one
    assert (await store.count_prunable(Status.DEAD, clock.now)).count == 1
    assert await store.prune_events(Status.DEAD, clock.now, 100) == 1
    assert await store.prune_events(Status.REJECTED, clock.now, 100) == 1
    for event_id in (dead.event_id, rejected.event_id, unrouted.event_id):
        with pytest.raises(NotFound):
            await store.get_event(event_id)
    stats = await store.log_stats()
    assert (stats.events, stats.deliveries) == ({}, 0)
    assert await store.queue_depth() == []


async def test_a_replayed_event_counts_from_its_new_finish(store: Store, clock: Clock) -> None:
    (stored,) = await store.append_events([change("a")])
    await deliver(store, Status.DEAD)
    clock.now = T0 + 10 * DAY
    await store.replay([stored.event_id], None, "cli:ann", dry_run=False)
    await deliver(store)

    assert await store.prune_events(Status.DONE, T0 + DAY, 100) == 0
    assert await store.prune_events(Status.DONE, clock.now + 1, 100) == 1


async def test_after_a_prune_the_log_goes_on(store: Store, clock: Clock) -> None:
    await store.append_events([change("a"), change("b", "2")])
    await deliver(store)
    clock.now = T0 + DAY
    assert await store.prune_events(Status.DONE, clock.now, 100) == 2

    # A pruned event's key is forgotten: the same change again is stored anew, and the
    # entity's next delivery is claimed as if its history had never been.
    (again,) = await store.append_events([change("a")])
    assert not again.duplicate
    (claimed,) = await store.claim_due("crm", "me", 10)
    assert claimed.delivery.entity_id == "1"
    assert [e.id for e in claimed.events] == [again.event_id]


async def test_only_finished_statuses_and_positive_limits_are_taken(store: Store) -> None:
    for status in (Status.PENDING, Status.IN_FLIGHT, Status.RETRY):
        with pytest.raises(ValueError, match="finished"):
            await store.prune_events(status, T0, 10)
        with pytest.raises(ValueError, match="finished"):
            await store.count_prunable(status, T0)
    with pytest.raises(ValueError, match="at least one"):
        await store.prune_events(Status.DONE, T0, 0)


async def test_log_stats_of_an_empty_and_a_filled_log(store: Store, clock: Clock) -> None:
    empty = await store.log_stats()
    assert (empty.events, empty.deliveries, empty.oldest_at, empty.newest_at) == ({}, 0, None, None)
    await store.append_events([change("a")])
    clock.now = T0 + 60
    await store.append_rejected(Rejected("shop", "sha256:x", "{oops", "bad json"))
    stats = await store.log_stats()
    assert stats.events == {Status.PENDING: 1, Status.REJECTED: 1}
    assert (stats.deliveries, stats.oldest_at, stats.newest_at) == (1, T0, T0 + 60)
    assert stats.size_bytes is None or stats.size_bytes > 0
