"""Listing a page at a time (issue 16): newest received first, the id breaking ties, each
page going on after the last event of the one before it, with every filter."""

from __future__ import annotations

import pytest

from bridge.errors import NotFound
from bridge.store import Store
from bridge.store.records import (
    AttemptOutcome,
    EventFilter,
    EventRecord,
    InboundEvent,
    NewEvent,
    Status,
)
from tests.contract.store.conftest import change
from tests.support.clock import T0, Clock


async def every_page(store: Store, flt: EventFilter) -> list[list[str]]:
    """Walk ``flt`` page after page until a short one; the ids of each page."""
    pages: list[list[str]] = []
    after: str | None = None
    while True:
        page: list[EventRecord] = await store.list_events(flt, after)
        pages.append([e.id for e in page])
        if len(page) < flt.limit:
            return pages
        after = page[-1].id


def to(key: str, entity_id: str, *targets: str, source: str = "shop") -> NewEvent:
    """A change routed to ``targets``."""
    return NewEvent(source, InboundEvent(key, "order", entity_id), targets)


async def test_pages_go_on_after_the_last_event_newest_first(store: Store, clock: Clock) -> None:
    ids = []
    for i in range(7):
        clock.now = T0 + i
        ids += [s.event_id for s in await store.append_events([change(f"k{i}", str(i))])]
    pages = await every_page(store, EventFilter(limit=3))
    assert pages == [ids[6:3:-1], ids[3:0:-1], ids[0:1]]
    assert await store.list_events(EventFilter(limit=3), ids[0]) == []


async def test_ties_of_reception_go_by_id_and_pages_neither_skip_nor_repeat(
    store: Store,
) -> None:
    # One batch: one moment for all (the clock does not move), so the id orders them.
    stored = await store.append_events([change(f"k{i}", str(i)) for i in range(5)])
    ids = [s.event_id for s in stored]
    assert await every_page(store, EventFilter(limit=2)) == [
        ids[4:2:-1],
        ids[2:0:-1],
        ids[0:1],
    ]


async def test_reception_orders_the_page_even_against_the_ids(store: Store, clock: Clock) -> None:
    clock.now = T0 + 10
    (later,) = await store.append_events([change("a", "1")])
    clock.now = T0  # a clock set back (or another instance's): received earlier, id higher
    (earlier,) = await store.append_events([change("b", "2")])
    listed = await store.list_events(EventFilter(limit=1))
    assert [e.id for e in listed] == [later.event_id]
    after = await store.list_events(EventFilter(limit=1), later.event_id)
    assert [e.id for e in after] == [earlier.event_id]


async def test_each_filter_pages_in_order(store: Store, clock: Clock) -> None:
    made: list[tuple[str, str, tuple[str, ...]]] = []  # (id, source, targets)
    for i in range(12):
        clock.now = T0 + i
        source = "shop" if i % 3 else "erp"
        targets = ("crm",) if i % 2 else ("crm", "bi")
        (s,) = await store.append_events([to(f"k{i}", str(i), *targets, source=source)])
        made.append((s.event_id, source, targets))
    newest = list(reversed(made))
    expected = {
        EventFilter(limit=2): [m[0] for m in newest],
        EventFilter(source="erp", limit=2): [m[0] for m in newest if m[1] == "erp"],
        EventFilter(target="bi", limit=2): [m[0] for m in newest if "bi" in m[2]],
        EventFilter(target="bi", source="shop", limit=2): [
            m[0] for m in newest if "bi" in m[2] and m[1] == "shop"
        ],
        EventFilter(status=Status.PENDING, since=T0 + 3, until=T0 + 9, limit=2): [
            m[0] for m in newest[3:9]
        ],
        EventFilter(target="crm", since=T0 + 5, limit=2): [m[0] for m in newest[:7]],
        EventFilter(status=Status.DONE, limit=2): [],
    }
    for flt, ids in expected.items():
        pages = await every_page(store, flt)
        assert [i for page in pages for i in page] == ids, flt
        assert all(len(page) == 2 for page in pages[:-1]), flt


async def test_by_target_the_status_is_the_delivery_s_and_follows_it(store: Store) -> None:
    (both,) = await store.append_events([to("k1", "1", "crm", "bi")])
    (crm_only,) = await store.append_events([to("k2", "2", "crm")])
    for claimed in await store.claim_due("crm", "me", 10):
        outcome = Status.DEAD if claimed.delivery.entity_id == "1" else Status.DONE
        await store.finish_attempt(claimed, "me", AttemptOutcome(outcome, None, "x", "no"))

    async def ids(target: str | None, status: Status) -> list[str]:
        return [e.id for e in await store.list_events(EventFilter(status, target=target))]

    assert await ids("crm", Status.DEAD) == [both.event_id]
    assert await ids("crm", Status.DONE) == [crm_only.event_id]
    assert await ids("bi", Status.PENDING) == [both.event_id]
    assert await ids("bi", Status.DEAD) == []
    assert await ids(None, Status.DEAD) == [both.event_id]  # the event's own: the worst
    await store.replay([both.event_id], None, "support", dry_run=False)
    assert await ids("crm", Status.DEAD) == []
    assert await ids("crm", Status.PENDING) == [both.event_id]


async def test_coalesced_events_are_each_listed_by_target(store: Store) -> None:
    first, second = await store.append_events([change("k1", "7"), change("k2", "7")])
    detail = await store.get_event(first.event_id)
    assert len(detail.deliveries) == 1  # one delivery carries both
    listed = await store.list_events(EventFilter(target="crm", status=Status.PENDING))
    assert [e.id for e in listed] == [second.event_id, first.event_id]
    assert [e.targets for e in listed] == [("crm",), ("crm",)]


async def test_going_on_after_an_event_that_is_not_stored_says_so(store: Store) -> None:
    await store.append_events([change("k1", "1")])
    with pytest.raises(NotFound, match="evt_999"):
        await store.list_events(EventFilter(), "evt_999")
    with pytest.raises(NotFound, match="not a valid"):
        await store.list_events(EventFilter(), "dlv_1")
