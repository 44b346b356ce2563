"""Replay: dead (or, by id, done) deliveries requeued with a new operation key."""

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
from tests.support.clock import Clock


async def test_replay_requeues_dead_and_appends_history(store: Store) -> None:
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
    (delivery,) = detail.deliveries
    assert (delivery.attempts, delivery.generation, delivery.last_error) == (0, 1, None)
    assert [(h.kind, h.actor) for h in detail.history] == [
        ("attempt", "me"),
        ("replayed", "cli:ann"),
    ]
    (replayed,) = await store.claim_due("crm", "me", 1)
    assert replayed.attempt == 1
    assert replayed.delivery.operation_key == f"bridge-{claimed.delivery.id}-r1"
    assert claimed.delivery.operation_key == f"bridge-{claimed.delivery.id}"
    again = await store.replay([claimed.delivery.id], None, "t", dry_run=False)
    assert again.requeued == [] and "already queued" in again.skipped[claimed.delivery.id]
    assert again.skipped[claimed.delivery.id] == "is in_flight: already queued"


async def test_replay_explains_what_it_skips(store: Store) -> None:
    rejected = await store.append_rejected(Rejected("shop", "sha256:x", "{oops", "bad json"))
    (unrouted,) = await store.append_events([NewEvent("pos", InboundEvent("k", "order", "1"), ())])
    (waiting,) = await store.append_events([change("w")])
    ids = [rejected.event_id, "evt_999", "dlv_999", unrouted.event_id, waiting.event_id]
    result = await store.replay(ids, None, "t", dry_run=True)
    assert result.requeued == []
    assert "rejected" in result.skipped[rejected.event_id]
    assert result.skipped["evt_999"] == "not found"
    assert result.skipped["dlv_999"] == "not found"
    assert result.skipped[unrouted.event_id] == "has no deliveries (no route matched it)"
    assert result.skipped[waiting.event_id] == "its deliveries are already queued"
    with pytest.raises(NotFound):
        await store.replay(["bogus"], None, "t", dry_run=True)


async def test_an_event_replays_its_dead_deliveries_or_else_its_done_ones(store: Store) -> None:
    event = NewEvent("shop", InboundEvent("k", "order", "1"), ("crm", "erp"))
    (stored,) = await store.append_events([event])
    (crm,) = await store.claim_due("crm", "me", 1)
    (erp,) = await store.claim_due("erp", "me", 1)
    await store.finish_attempt(crm, "me", AttemptOutcome(Status.DONE))
    await store.finish_attempt(erp, "me", AttemptOutcome(Status.DEAD, None, "permanent", "x"))
    assert (await store.replay([stored.event_id], None, "t", True)).requeued == [erp.delivery.id]
    await store.replay([stored.event_id], None, "t", dry_run=False)
    (again,) = await store.claim_due("erp", "me", 1)
    await store.finish_attempt(again, "me", AttemptOutcome(Status.DONE))
    everything = await store.replay([stored.event_id], None, "t", dry_run=True)
    assert everything.requeued == [crm.delivery.id, again.delivery.id]
    by_id = await store.replay([crm.delivery.id], None, "t", dry_run=False)
    assert by_id.requeued == [crm.delivery.id] and by_id.skipped == {}


async def test_replay_by_filter(store: Store, clock: Clock) -> None:
    await store.append_events([change("a", "1"), change("b", "2", source="pos")])
    first = clock.now
    clock.now += 100
    await store.append_events([change("c", "3")])
    for claimed in await store.claim_due("crm", "me", 10):
        await store.finish_attempt(claimed, "me", AttemptOutcome(Status.DEAD, None, "p", "x"))

    async def chosen(flt: EventFilter) -> list[str]:
        return (await store.replay([], flt, "t", dry_run=True)).requeued

    everything = await chosen(EventFilter())
    assert len(everything) == 3 and everything == sorted(everything, key=lambda d: int(d[4:]))
    assert len(await chosen(EventFilter(source="pos"))) == 1
    assert len(await chosen(EventFilter(target="erp"))) == 0
    assert len(await chosen(EventFilter(since=first + 50))) == 1
    assert len(await chosen(EventFilter(until=first + 50))) == 2
    assert len(await chosen(EventFilter(limit=2))) == 2
    assert await chosen(EventFilter(status=Status.DONE)) == []
    done = await store.replay([], EventFilter(source="pos"), "t", dry_run=False)
    assert await chosen(EventFilter()) == [d for d in everything if d not in done.requeued]
