"""Retention of what grows beside the log: final reservations owing nothing go with their
history and owed calls; done owed calls of no reservation, old SMS sends and sandbox
messages go by age; a reservation still open, owing a call or waiting on a dead one, and a
dead call a reservation waits on, stay."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bridge.errors import NotFound
from bridge.owed.calls import NewOwedCall, OwedCall, OwedOutcome, OwedStatus
from bridge.store import Store
from bridge.store.owed import owed_store_of
from bridge.store.reservations import Reservation, RsvStatus, Step
from bridge.store.retention import Records
from tests.contract.store.test_reservations import CREATED, reservation
from tests.support.clock import T0, Clock

DAY = 86_400.0


def call(rsv: str | None, operation: str) -> NewOwedCall:
    """The master call ``operation`` owed for reservation ``rsv`` (or for none)."""
    return NewOwedCall("onec", f"reservation.{operation}", f"{rsv}:{operation}", subject=rsv)


async def ended(store: Store, number: int, status: RsvStatus, *owing: str) -> str:
    """A reservation made now and moved to ``status``, owing the master calls ``owing``
    (``pending`` set; the calls leased to "me", their first attempt under way)."""
    rsv = await store.create_reservation(reservation(number, T0), CREATED)
    moved, _ = await owed_store_of(store).update_reservation_owing(
        replace(rsv, status=status, pending=owing[0] if owing else None),
        [Step(str(status), status, actor="test")],
        [call(rsv.id, operation) for operation in owing],
        lease_to="me",
    )
    return moved.id


async def finish(store: Store, outcome: OwedOutcome, *calls: NewOwedCall) -> list[OwedCall]:
    """Owe ``calls`` and end their first attempt with ``outcome`` (at the store's clock)."""
    made = await owed_store_of(store).owe(calls, lease_to="me")
    return await end(store, outcome, made)


async def end(store: Store, outcome: OwedOutcome, calls: list[OwedCall]) -> list[OwedCall]:
    """End the attempt "me" holds of each call with ``outcome``."""
    owed = owed_store_of(store)
    finished = [await owed.finish_owed(c.id, "me", outcome) for c in calls]
    return [c for c in finished if c is not None]


async def settle(store: Store, rsv_id: str) -> None:
    """The reservation owes nothing any more (its call was made)."""
    rsv = await store.get_reservation(rsv_id)
    await store.update_reservation(replace(rsv, pending=None), [])


async def test_a_final_reservation_owing_nothing_goes_with_its_history_and_calls(
    store: Store, clock: Clock
) -> None:
    owed = owed_store_of(store)
    committed = await ended(store, 1, RsvStatus.COMMITTED)
    await finish(store, OwedOutcome.done(), call(committed, "commit"))
    expired = await ended(store, 2, RsvStatus.EXPIRED)
    held = await ended(store, 3, RsvStatus.HELD)  # open: never, however old
    owing = await ended(store, 4, RsvStatus.RELEASED, "release")  # the release under way
    await owed.owe([call(await ended(store, 5, RsvStatus.FAILED), "release")])  # still owed
    clock.now = T0 + 10 * DAY
    young = await ended(store, 6, RsvStatus.CANCELLED)
    await finish(store, OwedOutcome.done(), call(young, "release"))
    clock.now = T0 + 20 * DAY

    dry = await store.count_prunable_records(Records.RESERVATIONS, T0 + DAY)
    assert (dry.kind, dry.count, dry.oldest_at, dry.newest_at) == (
        Records.RESERVATIONS,
        2,
        T0,
        T0,
    )
    # Its release made: it owes nothing, last changed now (20 days after T0).
    assert len(await end(store, OwedOutcome.done(), await owed.owed_for(owing))) == 1
    # Its call done but the reservation not yet told (pending still set): kept.
    assert (await store.count_prunable_records(Records.RESERVATIONS, T0 + DAY)).count == 2
    await settle(store, owing)
    assert (await store.count_prunable_records(Records.RESERVATIONS, T0 + DAY)).count == 2
    assert await store.prune_records(Records.RESERVATIONS, T0 + DAY, 1) == 1
    assert await store.prune_records(Records.RESERVATIONS, T0 + DAY, 1) == 1
    assert await store.prune_records(Records.RESERVATIONS, T0 + DAY, 1) == 0

    for gone in (committed, expired):
        with pytest.raises(NotFound):
            await store.get_reservation(gone)
        assert await store.reservation_history(gone) == []
        assert await owed.owed_for(gone) == []
    assert await store.find_reservation("till", "key-1") is None
    for kept in (held, owing, "rsv_00000000000000000005", young):
        assert next(s.kind for s in await store.reservation_history(kept)) == "created"
    assert [c.status for c in await owed.owed_for(young)] == [OwedStatus.DONE]
    assert await store.count_reservations() == {
        "held": 1,
        "released": 1,
        "failed": 1,
        "cancelled": 1,
    }
    # By their own age the young one and the settled one go too; held and failed stay.
    assert await store.prune_records(Records.RESERVATIONS, clock.now + 1, 100) == 2
    assert set(await store.count_reservations()) == {"held", "failed"}


async def test_a_dead_call_keeps_its_reservation_until_purged_by_hand(
    store: Store, clock: Clock
) -> None:
    owed = owed_store_of(store)
    refused = await ended(store, 1, RsvStatus.COMMITTED)  # a reverse refused: settled, dead
    (dead,) = await finish(store, OwedOutcome.dead("refused"), call(refused, "reverse"))
    waiting = await ended(store, 2, RsvStatus.COMMIT_PENDING, "commit")
    (waited,) = await end(store, OwedOutcome.dead("down"), await owed.owed_for(waiting))
    (orphan,) = await finish(store, OwedOutcome.dead("gone"), call(None, "accrual"))
    clock.now = T0 + 30 * DAY

    for kind in (Records.RESERVATIONS, Records.OWED_DONE):
        assert (await store.count_prunable_records(kind, clock.now)).count == 0
        assert await store.prune_records(kind, clock.now, 100) == 0
    # By hand: the dead calls no stored reservation waits on, never the commit still owed.
    plan = await store.count_prunable_records(Records.OWED_DEAD, clock.now)
    assert (plan.count, plan.oldest_at, plan.newest_at) == (2, T0, T0)
    assert await store.prune_records(Records.OWED_DEAD, clock.now, 100) == 2
    for gone in (dead, orphan):
        with pytest.raises(NotFound):
            await owed.get_owed(gone.id)
    assert (await owed.get_owed(waited.id)).status is OwedStatus.DEAD
    # The refused reverse purged, its reservation owes nothing and goes by retention.
    assert await store.prune_records(Records.RESERVATIONS, clock.now, 100) == 1
    with pytest.raises(NotFound):
        await store.get_reservation(refused)
    assert (await store.get_reservation(waiting)).status is RsvStatus.COMMIT_PENDING


async def test_done_calls_of_no_reservation_go_by_age_and_ids_are_not_reused(
    store: Store, clock: Clock
) -> None:
    owed = owed_store_of(store)
    kept_for = await ended(store, 1, RsvStatus.HELD)
    old = await finish(
        store, OwedOutcome.done(), call(None, "accrual"), call("rsv_pruned", "commit")
    )
    (of_kept,) = await finish(store, OwedOutcome.done(), call(kept_for, "commit"))
    (pending,) = await owed.owe([call(None, "transfer")])
    clock.now = T0 + 2 * DAY
    (young,) = await finish(store, OwedOutcome.done(), call(None, "young"))

    plan = await store.count_prunable_records(Records.OWED_DONE, T0 + DAY)
    assert (plan.count, plan.oldest_at, plan.newest_at) == (2, T0, T0)
    assert await store.prune_records(Records.OWED_DONE, T0 + DAY, 100) == 2
    for gone in old:
        with pytest.raises(NotFound):
            await owed.get_owed(gone.id)
    for kept in (of_kept, pending, young):
        assert (await owed.get_owed(kept.id)).id == kept.id
    numbers = {int(c.id.removeprefix("own_")) for c in [*old, of_kept, pending, young]}
    (again,) = await owed.owe([call(None, "accrual")])  # owed anew: a new call
    assert int(again.id.removeprefix("own_")) > max(numbers)
    assert again.status is OwedStatus.PENDING


async def test_sms_sends_go_by_age_and_the_cap_still_counts_the_window(
    store: Store, clock: Clock
) -> None:
    window, cap = 600.0, 2
    assert await store.claim_sms_slot("phone-a", T0, window, cap, "rsv_1")
    assert await store.claim_sms_slot("phone-b", T0 + 10, window, cap, "rsv_2")
    now = T0 + DAY
    clock.now = now
    assert await store.claim_sms_slot("phone-c", now, window, cap, "rsv_3")
    assert await store.claim_sms_slot("phone-c", now + 1, window, cap, "rsv_4")

    plan = await store.count_prunable_records(Records.SMS_SENDS, now - window)
    assert (plan.count, plan.oldest_at, plan.newest_at) == (2, T0, T0 + 10)
    assert await store.prune_records(Records.SMS_SENDS, now - window, 1) == 1
    assert await store.prune_records(Records.SMS_SENDS, now - window, 1) == 1
    assert await store.prune_records(Records.SMS_SENDS, now - window, 1) == 0
    # The window's sends stay counted: the cap still holds, other phones are free.
    assert not await store.claim_sms_slot("phone-c", now + 2, window, cap, "rsv_5")
    assert await store.claim_sms_slot("phone-a", now + 2, window, cap, "rsv_6")


async def test_sandbox_messages_go_by_age_and_ids_are_not_reused(
    store: Store, clock: Clock
) -> None:
    first = await store.add_sandbox_message("+79000000001", "code 1111", "rsv_1")
    await store.add_sandbox_message("+79000000002", "code 2222", "rsv_2")
    clock.now = T0 + DAY
    kept = await store.add_sandbox_message("+79000000001", "code 3333", "rsv_3")

    assert (await store.count_prunable_records(Records.SANDBOX_MESSAGES, T0 + 1)).count == 2
    assert await store.prune_records(Records.SANDBOX_MESSAGES, T0 + 1, 100) == 2
    assert [m.id for m in await store.list_sandbox_messages()] == [kept]
    newer = await store.add_sandbox_message("+79000000002", "code 4444", None)
    assert newer > kept > first


async def test_a_prune_takes_at_least_one_record(store: Store) -> None:
    with pytest.raises(ValueError, match="at least one"):
        await store.prune_records(Records.SMS_SENDS, T0, 0)


OPEN = (
    RsvStatus.CREATING,
    RsvStatus.AWAITING_CODE,
    RsvStatus.HELD,
    RsvStatus.COMMIT_PENDING,
    RsvStatus.RELEASE_PENDING,
)


async def test_an_open_reservation_is_kept_however_old(store: Store, clock: Clock) -> None:
    opened: list[Reservation] = []
    for number, status in enumerate(OPEN, start=1):
        rsv = await store.create_reservation(reservation(number, T0), CREATED)
        opened.append(await store.update_reservation(replace(rsv, status=status), []))
    clock.now = T0 + 400 * DAY
    assert await store.prune_records(Records.RESERVATIONS, clock.now, 100) == 0
    assert len(await store.list_reservations()) == len(opened)
