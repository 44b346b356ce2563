"""Backfills: one open per spec, pages stored with their cursor, counted once."""

from __future__ import annotations

from datetime import date

import pytest

from bridge.errors import NotFound
from bridge.store import Store
from bridge.store.backfills import BackfillSpec, BackfillStatus, listed_key
from bridge.store.records import AttemptOutcome, InboundEvent, NewEvent, Status
from tests.support.clock import Clock

SPEC = BackfillSpec("shop", "order", ("erp", "crm", "crm"), date(2026, 1, 1))


def listed(backfill_id: str, *ids: str) -> list[NewEvent]:
    number = int(backfill_id.removeprefix("bf_"))
    return [
        NewEvent("shop", InboundEvent(listed_key(backfill_id, i), "order", i), ("crm",), number)
        for i in ids
    ]


async def test_one_open_backfill_per_spec(store: Store, clock: Clock) -> None:
    first, created = await store.open_backfill(SPEC, "cli:ann")
    assert created and first.status == BackfillStatus.LISTING
    assert first.spec == BackfillSpec("shop", "order", ("crm", "erp"), date(2026, 1, 1))
    assert (first.cursor, first.listed, first.total, first.error) == (None, 0, None, None)
    assert (first.actor, first.created_at, first.finished_at) == ("cli:ann", clock.now, None)
    again, created = await store.open_backfill(
        BackfillSpec("shop", "order", ("crm", "erp"), date(2026, 1, 1)), "cli:bob"
    )
    assert not created and again.id == first.id and again.actor == "cli:ann"
    other, created = await store.open_backfill(BackfillSpec("shop", "order", ("crm",)), "x")
    assert created and other.id != first.id
    assert [b.id for b in await store.list_backfills()] == [other.id, first.id]
    assert [b.id for b in await store.list_backfills(limit=1)] == [other.id]
    assert await store.set_backfill_status(first.id, BackfillStatus.CANCELLED) is True
    assert [b.id for b in await store.list_backfills(open_only=True)] == [other.id]
    _, created = await store.open_backfill(SPEC, "cli:ann")
    assert created  # the cancelled one is not resumed


async def test_pages_move_the_cursor_and_count_once(store: Store, clock: Clock) -> None:
    bf, _ = await store.open_backfill(SPEC, "t")
    stored = await store.append_listed(bf.id, listed(bf.id, "1", "2"), "page2", 5)
    assert [s.duplicate for s in stored] == [False, False]
    again = await store.append_listed(bf.id, listed(bf.id, "2", "3"), "page3", None)
    assert [s.duplicate for s in again] == [True, False]  # a page listed again counts once
    got = await store.get_backfill(bf.id)
    assert (got.cursor, got.listed, got.total, got.status) == ("page3", 3, 5, "listing")
    assert got.events == {Status.PENDING: 3} and got.waiting == 3 and got.finished == 0
    await store.append_listed(bf.id, [], None, None)  # the last page
    got = await store.get_backfill(bf.id)
    assert (got.status, got.cursor, got.total) == (BackfillStatus.DELIVERING, None, 5)
    assert await store.append_listed(bf.id, listed(bf.id, "4"), "x", None) == []
    for claimed in await store.claim_due("crm", "me", 10):
        await store.finish_attempt(claimed, "me", AttemptOutcome(Status.DONE))
    got = await store.get_backfill(bf.id)
    assert got.events == {Status.DONE: 3} and got.finished == 3 and got.listed == 3


async def test_errors_statuses_and_the_end_of_a_backfill(store: Store, clock: Clock) -> None:
    bf, _ = await store.open_backfill(SPEC, "t")
    assert await store.set_backfill_status(bf.id, BackfillStatus.LISTING, "503") is True
    assert (await store.get_backfill(bf.id)).error == "503"
    await store.append_listed(bf.id, listed(bf.id, "1"), "p2", None)
    assert (await store.get_backfill(bf.id)).error is None  # a good page clears it
    clock.now += 5
    assert await store.set_backfill_status(bf.id, BackfillStatus.FAILED, "route gone") is True
    got = await store.get_backfill(bf.id)
    assert (got.status, got.error, got.finished_at) == ("failed", "route gone", clock.now)
    assert await store.set_backfill_status(bf.id, BackfillStatus.DONE) is False
    assert await store.append_listed(bf.id, listed(bf.id, "2"), "p3", None) == []
    with pytest.raises(NotFound):
        await store.get_backfill("bf_999")
    with pytest.raises(NotFound):
        await store.get_backfill("nonsense")
