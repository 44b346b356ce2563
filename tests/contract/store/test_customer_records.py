"""Customer records (verifications, merges, registrations, notices): every store keeps
them alike: a key once, compare-and-set updates, listings by phone and by status."""

from __future__ import annotations

import asyncio

import pytest

from bridge.store import Store
from bridge.store.customer_records import RecordKind, customer_records_of
from bridge.store.reservations import VersionConflict
from tests.support.clock import Clock

PHONE_A, PHONE_B = "+79000000005", "+79000000006"


async def test_a_key_is_stored_once_and_the_first_writer_wins(store: Store) -> None:
    records = customer_records_of(store)
    first, added = await records.add_record(
        RecordKind.REGISTRATION, PHONE_A, PHONE_A, "registered", {"customer_id": "c-1"}
    )
    assert added
    again, added_again = await records.add_record(
        RecordKind.REGISTRATION, PHONE_A, PHONE_A, "other", {"customer_id": "c-2"}
    )
    assert not added_again
    assert (again.status, dict(again.body), again.version) == (
        "registered",
        {"customer_id": "c-1"},
        1,
    )
    assert await records.get_record(RecordKind.REGISTRATION, PHONE_A) == first
    assert await records.get_record(RecordKind.NOTICE, PHONE_A) is None  # another kind


async def test_updates_are_compare_and_set(store: Store, clock: Clock) -> None:
    records = customer_records_of(store)
    merge, _ = await records.add_record(RecordKind.MERGE, "mrg_1", PHONE_A, "running", {"n": 1})
    clock.now += 5
    moved = await records.update_record(merge, "done", {"n": 2, "amount": "200.50"})
    assert (moved.status, moved.version, dict(moved.body)) == (
        "done",
        2,
        {"n": 2, "amount": "200.50"},
    )
    assert moved.updated_at == merge.updated_at + 5
    assert moved.created_at == merge.created_at
    with pytest.raises(VersionConflict):
        await records.update_record(merge, "failed", {"n": 3})  # read before the change
    assert (await records.get_record(RecordKind.MERGE, "mrg_1")) == moved


async def test_two_writers_of_one_version_one_wins(store: Store) -> None:
    records = customer_records_of(store)
    notice, _ = await records.add_record(RecordKind.NOTICE, "n1:" + PHONE_A, PHONE_A, "pending", {})
    outcomes = await asyncio.gather(
        records.update_record(notice, "sent", {"by": 1}),
        records.update_record(notice, "sent", {"by": 2}),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["CustomerRecord", "VersionConflict"]


async def test_listings_by_phone_kind_and_status_oldest_first(store: Store, clock: Clock) -> None:
    records = customer_records_of(store)
    await records.add_record(RecordKind.VERIFICATION, "vrf_1", PHONE_A, "sent", {})
    clock.now += 1
    await records.add_record(RecordKind.MERGE, "mrg_1", PHONE_A, "running", {})
    clock.now += 1
    await records.add_record(RecordKind.NOTICE, "n1:" + PHONE_B, PHONE_B, "pending", {})
    clock.now += 1
    await records.add_record(RecordKind.NOTICE, "n1:" + PHONE_A, PHONE_A, "sent", {})
    story = await records.list_records(subject=PHONE_A)
    assert [r.key for r in story] == ["vrf_1", "mrg_1", "n1:" + PHONE_A]
    pending = await records.list_records(RecordKind.NOTICE, status="pending")
    assert [r.subject for r in pending] == [PHONE_B]
    assert [r.key for r in await records.list_records(RecordKind.NOTICE, limit=1)] == [
        "n1:" + PHONE_B
    ]
    assert await records.count_records(RecordKind.NOTICE) == {"pending": 1, "sent": 1}
    assert await records.count_records(RecordKind.REGISTRATION) == {}


async def test_a_body_is_kept_as_given_not_as_later_changed(store: Store) -> None:
    records = customer_records_of(store)
    body = {"steps": [{"card": "2000000000053", "amount": "120.50"}]}
    await records.add_record(RecordKind.MERGE, "mrg_2", PHONE_A, "running", body)
    body["steps"][0]["amount"] = "0.00"
    stored = await records.get_record(RecordKind.MERGE, "mrg_2")
    assert stored is not None
    assert stored.body["steps"][0]["amount"] == "120.50"
