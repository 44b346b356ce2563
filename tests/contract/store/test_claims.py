"""Deliveries out: per-entity order, coalescing, attempts, leases and what was written."""

from __future__ import annotations

from bridge.store import Store
from bridge.store.records import AttemptOutcome, InboundEvent, NewEvent, QueueDepth, Status
from tests.contract.store.conftest import LEASE, change
from tests.support.clock import Clock


async def test_waiting_changes_of_one_entity_coalesce(store: Store) -> None:
    await store.append_events([change("a", "1", v=1), change("b", "1", v=2), change("c", "2")])
    claimed = await store.claim_due("crm", "me", 10)
    assert [(c.delivery.entity_id, [e.payload for e in c.events]) for c in claimed] == [
        ("1", [{"v": 1}, {"v": 2}]),
        ("2", [{}]),
    ]
    first = claimed[0]
    assert first.attempt == 1 and first.delivery.attempts == 1
    assert first.delivery.status == Status.IN_FLIGHT
    assert first.delivery.event_ids == tuple(e.id for e in first.events)
    assert first.delivery.operation_key == f"bridge-{first.delivery.id}"


async def test_a_claim_takes_only_its_target_and_limit(store: Store) -> None:
    await store.append_events([change(f"k{i}", str(i)) for i in range(3)])
    assert await store.claim_due("erp", "me", 10) == []
    assert len(await store.claim_due("crm", "me", 2)) == 2
    assert len(await store.claim_due("crm", "me", 2)) == 1
    assert await store.claim_due("crm", "me", 2) == []


async def test_a_change_during_flight_waits_for_the_flight(store: Store) -> None:
    (stored,) = await store.append_events([change("a", "1", v=1)])
    (first,) = await store.claim_due("crm", "me", 10)
    assert (await store.get_event(stored.event_id)).event.status == Status.IN_FLIGHT
    await store.append_events([change("b", "1", v=2)])
    assert await store.claim_due("crm", "me", 10) == []  # blocked behind the flight
    assert await store.finish_attempt(first, "me", AttemptOutcome(Status.DONE)) is True
    assert (await store.get_event(stored.event_id)).event.status == Status.DONE
    (second,) = await store.claim_due("crm", "me", 10)
    assert [e.payload for e in second.events] == [{"v": 2}]


async def test_a_retrying_delivery_blocks_newer_ones_without_absorbing_them(
    store: Store, clock: Clock
) -> None:
    (stored,) = await store.append_events([change("a", "1", v=1)])
    (first,) = await store.claim_due("crm", "me", 10)
    await store.finish_attempt(
        first, "me", AttemptOutcome(Status.RETRY, clock.now + 10, "transient", "503")
    )
    detail = await store.get_event(stored.event_id)
    assert detail.event.status == Status.RETRY
    (delivery,) = detail.deliveries
    assert (delivery.last_error_class, delivery.last_error, delivery.due_at) == (
        "transient",
        "503",
        clock.now + 10,
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


async def test_next_due_at_counts_waiting_deliveries_after_a_moment(
    store: Store, clock: Clock
) -> None:
    assert await store.next_due_at("crm", clock.now) is None
    await store.append_events([change("a", "1")])
    assert await store.next_due_at("crm", clock.now - 1) == clock.now
    assert await store.next_due_at("crm", clock.now) is None  # due now, not after
    assert await store.next_due_at("erp", clock.now - 1) is None


async def test_attempts_go_into_history(store: Store, clock: Clock) -> None:
    (stored,) = await store.append_events([change("a")])
    (claimed,) = await store.claim_due("crm", "me", 1)
    clock.now += 1
    outcome = AttemptOutcome(Status.DEAD, None, "permanent", "422 bad", duration_ms=12.5)
    assert await store.finish_attempt(claimed, "me", outcome) is True
    detail = await store.get_event(stored.event_id)
    assert detail.event.status == Status.DEAD
    (entry,) = detail.history
    assert (entry.at, entry.kind, entry.delivery_id, entry.attempt, entry.outcome) == (
        clock.now,
        "attempt",
        claimed.delivery.id,
        1,
        "dead",
    )
    assert (entry.error_class, entry.message, entry.duration_ms, entry.actor) == (
        "permanent",
        "422 bad",
        12.5,
        "me",
    )


async def test_expired_leases_return_to_pending_with_history(store: Store, clock: Clock) -> None:
    (stored,) = await store.append_events([change("a")])
    (claimed,) = await store.claim_due("crm", "dead-process", 10)
    assert await store.release_expired_leases() == 0
    clock.now += LEASE + 1
    assert await store.release_expired_leases() == 1
    detail = await store.get_event(stored.event_id)
    assert detail.deliveries[0].status == Status.PENDING
    assert [(h.kind, h.outcome, h.attempt) for h in detail.history] == [
        ("lease_expired", "pending", 1)
    ]
    assert "dead-process" in str(detail.history[0].message)
    # The old holder's late result no longer moves the delivery.
    held = await store.finish_attempt(claimed, "dead-process", AttemptOutcome(Status.DONE))
    assert held is False
    detail = await store.get_event(stored.event_id)
    assert detail.deliveries[0].status == Status.PENDING
    assert "lease lost" in str(detail.history[-1].message)


async def test_a_later_claim_by_the_same_owner_is_another_attempt(
    store: Store, clock: Clock
) -> None:
    await store.append_events([change("a")])
    (old,) = await store.claim_due("crm", "me", 1)
    clock.now += LEASE + 1
    await store.release_expired_leases()
    (new,) = await store.claim_due("crm", "me", 1)
    assert new.attempt == 2
    assert await store.finish_attempt(old, "me", AttemptOutcome(Status.DONE)) is False
    assert await store.finish_attempt(new, "me", AttemptOutcome(Status.DONE)) is True


async def test_extended_leases_outlive_the_first_period(store: Store, clock: Clock) -> None:
    await store.append_events([change("a", "1"), change("b", "2")])
    mine, theirs = await store.claim_due("crm", "me", 10)
    clock.now += LEASE - 1
    await store.extend_leases([mine], "me")
    await store.extend_leases([theirs], "someone-else")  # not theirs to extend
    clock.now += 2
    assert await store.release_expired_leases() == 1
    assert await store.finish_attempt(mine, "me", AttemptOutcome(Status.DONE)) is True
    await store.extend_leases([], "me")


async def test_recovery_takes_foreign_leases_only_when_serving(
    unopened: Store, clock: Clock, shared: bool
) -> None:
    await unopened.open()  # like a CLI command: the holder may still be alive
    try:
        await unopened.append_events([change("a", "1"), change("b", "2")])
        await unopened.claim_due("crm", "old", 10)
        assert await unopened.recover_leases("new") == 0
    finally:
        await unopened.close()
    await unopened.open(serving=True)  # the one instance: any other holder is gone
    try:
        if shared:  # another instance may be serving too: only a lease that ran out returns
            assert await unopened.recover_leases("new") == 0
            clock.now += LEASE + 1
        assert await unopened.recover_leases("new") == 2
        assert len(await unopened.claim_due("crm", "new", 10)) == 2
        assert await unopened.recover_leases("new") == 0  # its own leases stay
    finally:
        await unopened.close()


async def test_live_changes_go_before_backfilled_ones(store: Store) -> None:
    listed = [
        NewEvent("shop", InboundEvent(f"bf{i}", "order", str(i)), ("crm",), backfill=1)
        for i in (1, 2)
    ]
    await store.append_events(listed)
    await store.append_events([change("live3", "3"), change("live2", "2")])
    claimed = await store.claim_due("crm", "me", 10)
    # Order 2's live change joins its backfilled delivery and lifts it ahead of order 1.
    assert [c.delivery.entity_id for c in claimed] == ["2", "3", "1"]
    assert [len(c.events) for c in claimed] == [2, 1, 1]


async def test_queue_depth_and_what_was_written(store: Store, clock: Clock) -> None:
    created = clock.now
    await store.append_events([change("a", "1"), change("b", "2"), change("c", "3")])
    one, two = await store.claim_due("crm", "me", 2)
    await store.finish_attempt(one, "me", AttemptOutcome(Status.DONE, written="sha:1"))
    clock.now += 1
    await store.finish_attempt(two, "me", AttemptOutcome(Status.DEAD, None, "permanent", "x"))
    assert await store.queue_depth() == [
        QueueDepth("crm", Status.DEAD, 1, None),
        QueueDepth("crm", Status.PENDING, 1, created),
    ]
    assert await store.last_written("crm", "shop", "order", "1") == ("sha:1", created)
    assert await store.last_written("crm", "shop", "order", "2") is None
    assert await store.last_written("erp", "shop", "order", "1") is None
