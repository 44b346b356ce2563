"""Events in: de-duplication, routes, rejected bodies, cursors, listings and counts."""

from __future__ import annotations

import pytest

from bridge.errors import NotFound, StoreError
from bridge.store import Store
from bridge.store.records import Cursor, EventFilter, InboundEvent, NewEvent, Rejected, Status
from tests.contract.store.conftest import change
from tests.support.clock import Clock


async def test_duplicates_are_found_not_stored(store: Store) -> None:
    first, again = await store.append_events([change("k1"), change("k1")])
    assert not first.duplicate and again.duplicate
    assert again.event_id == first.event_id
    assert len(await store.list_events(EventFilter())) == 1
    (later,) = await store.append_events([change("k1", v=2)])
    assert later == again


async def test_one_delivery_per_target(store: Store) -> None:
    event = NewEvent("shop", InboundEvent("k", "order", "1"), ("crm", "erp"))
    (stored,) = await store.append_events([event])
    detail = await store.get_event(stored.event_id)
    assert sorted(d.target for d in detail.deliveries) == ["crm", "erp"]
    assert detail.event.status == Status.PENDING
    assert detail.event.targets == ("crm", "erp")
    assert all(d.event_ids == (stored.event_id,) for d in detail.deliveries)
    assert [d.status for d in detail.deliveries] == [Status.PENDING, Status.PENDING]


async def test_an_event_without_a_route_is_done(store: Store) -> None:
    (stored,) = await store.append_events([NewEvent("pos", InboundEvent("k", "order", "2"), ())])
    detail = await store.get_event(stored.event_id)
    assert (detail.event.status, detail.event.reason) == (Status.DONE, "no route")
    assert detail.deliveries == [] and detail.history == []


async def test_get_event_has_the_payload_and_ids_are_checked(store: Store) -> None:
    (stored,) = await store.append_events([change("k", "7", v={"ä": [1, 2]})])
    detail = await store.get_event(stored.event_id)
    assert detail.event.payload == {"v": {"ä": [1, 2]}}
    assert (detail.event.entity, detail.event.entity_id, detail.event.action) == (
        "order",
        "7",
        "changed",
    )
    (listed,) = await store.list_events(EventFilter())
    assert listed.payload is None and listed.targets == ("crm",)
    with pytest.raises(NotFound):
        await store.get_event("evt_999")
    with pytest.raises(NotFound):
        await store.get_event("bogus")


async def test_rejected_bodies_are_kept_once_with_their_reason(store: Store) -> None:
    rejected = Rejected("shop", "sha256:x", "{oops", "bad json")
    first = await store.append_rejected(rejected)
    assert (await store.append_rejected(rejected)) == type(first)(first.event_id, True)
    detail = await store.get_event(first.event_id)
    assert detail.event.status == Status.REJECTED and detail.event.reason == "bad json"
    assert detail.event.payload == "{oops" and detail.deliveries == []
    assert [(h.kind, h.outcome, h.error_class, h.event_id) for h in detail.history] == [
        ("rejected", "rejected", "parse", first.event_id)
    ]
    assert await store.count_events() == {Status.REJECTED: 1}


async def test_a_batch_with_a_bad_payload_stores_nothing(store: Store) -> None:
    bad = NewEvent("shop", InboundEvent("h2", "order", "1", payload={"x": float("nan")}), ("crm",))
    with pytest.raises(ValueError, match="JSON"):
        await store.append_events([change("h1"), bad])
    assert await store.list_events(EventFilter()) == []
    assert await store.claim_due("crm", "me", 10) == []


async def test_cursor_moves_with_the_events_it_read(store: Store, clock: Clock) -> None:
    await store.append_polled([change("h101")], Cursor("shop", "orders", "101", 0))
    got = await store.get_cursor("shop", "orders")
    assert got == Cursor("shop", "orders", "101", clock.now)  # the store's time, not ours
    # A failing batch stores neither its events nor the cursor.
    bad = NewEvent(
        "shop", InboundEvent("h102", "order", "1", payload={"x": float("nan")}), ("crm",)
    )
    with pytest.raises(ValueError, match="JSON"):
        await store.append_polled([change("h102a"), bad], Cursor("shop", "orders", "102", 0))
    got = await store.get_cursor("shop", "orders")
    assert got is not None and got.value == "101"
    assert len(await store.list_events(EventFilter())) == 1
    clock.now += 5
    await store.append_polled([], Cursor("shop", "orders", "103", 0))
    assert await store.get_cursor("shop", "orders") == Cursor("shop", "orders", "103", clock.now)


async def test_forgetting_a_sources_cursors_keeps_the_others(store: Store) -> None:
    await store.append_polled([], Cursor("shop", "orders", "7", 0))
    await store.append_polled([], Cursor("shop", "customers", "3", 0))
    await store.append_polled([], Cursor("crm", "orders", "9", 0))
    assert [(c.source, c.name) for c in await store.list_cursors()] == [
        ("crm", "orders"),
        ("shop", "customers"),
        ("shop", "orders"),
    ]
    assert await store.forget_cursors("shop") == 2
    assert [(c.source, c.value) for c in await store.list_cursors()] == [("crm", "9")]
    assert await store.get_cursor("shop", "orders") is None
    assert await store.forget_cursors("shop") == 0


async def test_list_filters(store: Store, clock: Clock) -> None:
    await store.append_events([change("a", "1")])
    clock.now += 100
    await store.append_events([NewEvent("pos", InboundEvent("b", "order", "2"), ())])
    assert [e.source for e in await store.list_events(EventFilter(source="pos"))] == ["pos"]
    assert len(await store.list_events(EventFilter(target="crm"))) == 1
    assert len(await store.list_events(EventFilter(since=clock.now - 50))) == 1
    assert len(await store.list_events(EventFilter(until=clock.now - 50))) == 1
    assert len(await store.list_events(EventFilter(status=Status.DONE))) == 1
    assert len(await store.list_events(EventFilter(target="crm", status=Status.PENDING))) == 1
    assert await store.list_events(EventFilter(target="crm", status=Status.DEAD)) == []
    newest_first = await store.list_events(EventFilter(limit=1))
    assert [e.source for e in newest_first] == ["pos"]


async def test_counts_and_newest_change(store: Store, clock: Clock) -> None:
    assert await store.newest_change("shop", "order", "1") is None
    await store.append_events([change("a", "1")])
    first = clock.now
    clock.now += 10
    listed = NewEvent("shop", InboundEvent("b", "order", "1"), ("crm",), backfill=1)
    await store.append_events([listed, change("c", "2")])
    assert await store.newest_change("shop", "order", "1") == clock.now
    assert await store.newest_change("shop", "order", "1", live=True) == first
    assert await store.newest_change("shop", "customer", "1") is None
    assert await store.count_events() == {Status.PENDING: 3}


async def test_a_closed_store_refuses_calls(unopened: Store) -> None:
    with pytest.raises(StoreError, match="not open"):
        await unopened.ping()
    await unopened.open()
    await unopened.ping()
    await unopened.append_events([change("a")])
    await unopened.close()
    with pytest.raises(StoreError, match="not open"):
        await unopened.list_events(EventFilter())
    await unopened.open()  # what was stored is still there
    try:
        assert len(await unopened.list_events(EventFilter())) == 1
    finally:
        await unopened.close()


async def test_a_fresh_serving_store_starts_empty(unopened: Store) -> None:
    await unopened.open()
    await unopened.append_events([change("a")])
    await unopened.close()
    await unopened.open(serving=True, fresh=True)
    try:
        assert await unopened.list_events(EventFilter()) == []
    finally:
        await unopened.close()
