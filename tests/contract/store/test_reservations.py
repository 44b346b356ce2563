"""Reservations: rows under compare-and-set, history, the sweeper's look-ups, SMS counts,
the sandbox outbox and stored secrets."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bridge.errors import NotFound, StoreError
from bridge.store import Store
from bridge.store.reservations import (
    OrderTaken,
    Reservation,
    RsvStatus,
    Step,
    VersionConflict,
)
from tests.support.clock import Clock


def reservation(number: int, now: float, **fields: object) -> Reservation:
    rsv = Reservation(
        id=f"rsv_{number:020d}",
        status=RsvStatus.CREATING,
        master="onec",
        customer_id="c-1",
        phone="+79000000001",
        amount=Decimal("250.00"),
        order_system="retailcrm",
        order_id=f"A-{number}",
        master_order_id=f"A-{number}",
        client="till",
        sender="bridge",
        expires_at=now + 1800,
        created_at=now,
        updated_at=now,
        idempotency_key=f"key-{number}",
    )
    return replace(rsv, **fields)  # type: ignore[arg-type]


CREATED = Step("created", RsvStatus.CREATING, "by till", "api:till")


async def test_create_is_idempotent_per_client_key(store: Store, clock: Clock) -> None:
    rsv = reservation(1, clock.now, basket='[{"sku": "A"}]', return_target=Decimal("1.5"))
    assert await store.create_reservation(rsv, CREATED) == rsv
    assert await store.get_reservation(rsv.id) == rsv
    same_key = reservation(2, clock.now, idempotency_key="key-1")
    assert await store.create_reservation(same_key, CREATED) == rsv
    assert await store.find_reservation("till", "key-1") == rsv
    assert await store.find_reservation("pos", "key-1") is None
    with pytest.raises(NotFound):
        await store.get_reservation("rsv_missing")


async def test_one_open_reservation_per_order(store: Store, clock: Clock) -> None:
    first = await store.create_reservation(reservation(1, clock.now), CREATED)
    second = reservation(2, clock.now, master_order_id=first.master_order_id)
    with pytest.raises(OrderTaken) as taken:
        await store.create_reservation(second, CREATED)
    assert taken.value.args[0] == first.id
    await store.update_reservation(replace(first, status=RsvStatus.CANCELLED), [])
    await store.create_reservation(second, CREATED)  # the order is free again
    with pytest.raises(StoreError):  # and cannot be taken twice by an update either
        await store.update_reservation(replace(first, status=RsvStatus.HELD, version=1), [])


async def test_updates_compare_and_set_on_version(store: Store, clock: Clock) -> None:
    rsv = await store.create_reservation(reservation(1, clock.now), CREATED)
    clock.now += 5
    held = await store.update_reservation(
        replace(rsv, status=RsvStatus.HELD, committed=Decimal("10.10")),
        [Step("held", RsvStatus.HELD, actor="sweeper")],
    )
    assert (held.version, held.updated_at, held.committed) == (1, clock.now, Decimal("10.10"))
    assert await store.get_reservation(rsv.id) == held
    with pytest.raises(VersionConflict):
        await store.update_reservation(replace(rsv, status=RsvStatus.CANCELLED), [])
    with pytest.raises(VersionConflict):
        await store.update_reservation(reservation(9, clock.now), [])
    history = await store.reservation_history(rsv.id)
    assert [(s.kind, s.status, s.detail, s.actor, s.at) for s in history] == [
        ("created", RsvStatus.CREATING, "by till", "api:till", clock.now - 5),
        ("held", RsvStatus.HELD, None, "sweeper", clock.now),
    ]
    assert await store.reservation_history("rsv_missing") == []


async def test_listings_counts_and_orders(store: Store, clock: Clock) -> None:
    one = await store.create_reservation(reservation(1, clock.now), CREATED)
    two = await store.create_reservation(reservation(2, clock.now + 1), CREATED)
    three = await store.create_reservation(
        reservation(3, clock.now + 2, order_id="A-1", master_order_id="M-3"), CREATED
    )
    await store.update_reservation(replace(two, status=RsvStatus.HELD), [])
    assert [r.id for r in await store.list_reservations()] == [three.id, two.id, one.id]
    assert [r.id for r in await store.list_reservations(limit=1)] == [three.id]
    assert [r.id for r in await store.list_reservations("held")] == [two.id]
    assert await store.count_reservations() == {"creating": 2, "held": 1}
    assert await store.reservations_for_order("retailcrm", ["A-1", "X"]) == [one.id, three.id]
    assert await store.reservations_for_order("retailcrm", []) == []
    assert await store.reservations_for_order("onec", ["A-1"]) == []


async def test_the_sweeper_finds_work_past_its_time(store: Store, clock: Clock) -> None:
    now = clock.now
    assert await store.next_reservation_due() is None
    held = reservation(1, now - 100, status=RsvStatus.HELD, expires_at=now + 50)
    code = reservation(2, now - 100, status=RsvStatus.AWAITING_CODE, code_expires_at=now + 20)
    stuck = reservation(3, now - 100)
    done = reservation(4, now - 100, status=RsvStatus.COMMITTED, expires_at=now - 1)
    for rsv in (held, code, stuck, done):
        await store.create_reservation(rsv, CREATED)
    assert await store.next_reservation_due() == now - 100  # the creation to look at
    assert await store.due_reservations(now, now - 200, 10) == []
    assert await store.due_reservations(now, now - 100, 10) == [stuck.id]
    assert await store.due_reservations(now + 20, now - 200, 10) == [code.id]
    assert sorted(await store.due_reservations(now + 50, now - 100, 10)) == sorted(
        [held.id, code.id, stuck.id]
    )
    assert len(await store.due_reservations(now + 50, now - 100, 2)) == 2


async def test_sms_slots_are_capped_per_phone_and_window(store: Store, clock: Clock) -> None:
    now = clock.now
    assert await store.claim_sms_slot("p1", now, 60, 2, "rsv_1") is True
    assert await store.claim_sms_slot("p1", now + 1, 60, 2, "rsv_1") is True
    assert await store.claim_sms_slot("p1", now + 2, 60, 2, "rsv_1") is False
    assert await store.claim_sms_slot("p2", now + 2, 60, 2, "rsv_2") is True
    assert await store.claim_sms_slot("p1", now + 60.5, 60, 2, "rsv_1") is True


async def test_sandbox_messages_and_secrets(store: Store, clock: Clock) -> None:
    first = await store.add_sandbox_message("+7900", "code 1234", "rsv_1")
    second = await store.add_sandbox_message("+7901", "code 5678", None)
    assert second > first
    listed = await store.list_sandbox_messages()
    assert [(m.id, m.phone, m.text, m.reference, m.at) for m in listed] == [
        (second, "+7901", "code 5678", None, clock.now),
        (first, "+7900", "code 1234", "rsv_1", clock.now),
    ]
    assert [m.id for m in await store.list_sandbox_messages("+7900")] == [first]
    assert [m.id for m in await store.list_sandbox_messages(limit=1)] == [second]
    assert await store.secret("codes", lambda: "s1") == "s1"
    assert await store.secret("codes", lambda: "s2") == "s1"
    assert await store.secret("other", lambda: "s3") == "s3"
