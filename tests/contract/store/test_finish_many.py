"""Recording several attempts at once (a lane's batch) is recording each in turn."""

from __future__ import annotations

from typing import Any

from bridge.store import Store
from bridge.store.records import AttemptOutcome, Status
from tests.contract.store.conftest import LEASE, change
from tests.support.clock import Clock


def outcomes(clock: Clock) -> list[AttemptOutcome]:
    """Done with a write, a retry whose lease is lost meanwhile, dead, done without one."""
    return [
        AttemptOutcome(Status.DONE, duration_ms=5.0, written="sha:first"),
        AttemptOutcome(Status.RETRY, clock.now + 60, "transient", "503", 6.0, written="sha:x"),
        AttemptOutcome(Status.DEAD, None, "permanent", "422 bad", 7.0),
        AttemptOutcome(Status.DONE, message="skipped: unchanged since the last write"),
    ]


async def seen(store: Store, event_id: str) -> tuple[Any, ...]:
    """What a finish leaves of one delivery: its row, its event, its history, its write."""
    detail = await store.get_event(event_id)
    (d,) = detail.deliveries
    history = [
        (h.at, h.kind, h.attempt, h.outcome, h.error_class, h.message, h.duration_ms, h.actor)
        for h in detail.history
    ]
    written = await store.last_written(d.target, d.source, d.entity, d.entity_id)
    row = (d.status, d.attempts, d.due_at, d.last_error_class, d.last_error, d.updated_at)
    return row, detail.event.status, history, written


async def test_finishing_a_batch_equals_finishing_each_with_a_lost_lease_between(
    store: Store, clock: Clock
) -> None:
    ids = [f"one-{i}" for i in range(4)] + [f"many-{i}" for i in range(4)]
    stored = await store.append_events(
        [change(f"k{n}", entity_id) for n, entity_id in enumerate(ids)]
    )
    claimed = await store.claim_due("crm", "me", 8)
    assert [c.delivery.entity_id for c in claimed] == ids
    # The second of each four loses its lease: the others are renewed, it runs out.
    lost = {1, 5}
    clock.now += LEASE - 1
    await store.extend_leases([c for i, c in enumerate(claimed) if i not in lost], "me")
    clock.now += 2
    assert await store.release_expired_leases() == 2
    clock.now += 1

    pairs = list(zip(claimed, outcomes(clock) * 2, strict=True))
    singly = [await store.finish_attempt(c, "me", o) for c, o in pairs[:4]]
    together = await store.finish_attempts(pairs[4:], "me")

    assert singly == together == [True, False, True, True]
    for i in range(4):
        alone = await seen(store, stored[i].event_id)
        batched = await seen(store, stored[4 + i].event_id)
        assert alone == batched
    # The lost one is back to pending, untouched by the late result, which history notes.
    row, _status, history, written = await seen(store, stored[5].event_id)
    assert row[0] == Status.PENDING and written is None
    assert history[-1][1:4] == ("attempt", 1, "retry")
    assert "lease lost" in str(history[-1][5])
    assert await store.last_written("crm", "shop", "order", "many-0") == ("sha:first", clock.now)


async def test_a_batch_is_checked_lease_by_lease_and_owner_by_owner(store: Store) -> None:
    await store.append_events([change("a", "1"), change("b", "2")])
    mine = await store.claim_due("crm", "me", 2)
    done = AttemptOutcome(Status.DONE)
    assert await store.finish_attempts([(mine[0], done)], "someone-else") == [False]
    assert await store.finish_attempts([(c, done) for c in mine], "me") == [True, True]
    # Recorded once: the same results again find no lease.
    assert await store.finish_attempts([(c, done) for c in mine], "me") == [False, False]
    assert await store.finish_attempts([], "me") == []
    assert await store.claim_due("crm", "me", 2) == []
