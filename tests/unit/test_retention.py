"""The retention loop and its settings: done events past ``done_after`` go, batch after
batch, then final reservations past ``reservations_after`` and SMS sends past
``sms_after``; ``off`` keeps everything; durations are read as people write them."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from bridge.mirror.retention import Pruner, prune_all
from bridge.settings import RetentionSettings, StoreSettings
from bridge.store.memory import MemoryStore
from bridge.store.records import AttemptOutcome, InboundEvent, NewEvent, Status
from bridge.store.reservations import RsvStatus
from tests.contract.store.test_reservations import CREATED, reservation
from tests.support.clock import T0, Clock

DAY = 86_400.0


def retention(**values: object) -> RetentionSettings:
    """Settings as config.yaml gives them (durations as text)."""
    return RetentionSettings.model_validate(values)


async def filled(clock: Clock, done: int, waiting: int = 0) -> MemoryStore:
    """A memory store with ``done`` events done at T0 and ``waiting`` still pending."""
    store = MemoryStore(clock=clock)
    await store.open(serving=True)
    unrouted = [NewEvent("pos", InboundEvent(f"d{i}", "order", str(i)), ()) for i in range(done)]
    await store.append_events(unrouted)
    routed = [
        NewEvent("pos", InboundEvent(f"w{i}", "order", f"w{i}"), ("crm",)) for i in range(waiting)
    ]
    await store.append_events(routed)
    return store


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("30d", 30 * DAY), ("12h", 43_200.0), ("90m", 5_400.0), ("45s", 45.0), (3600, 3600.0)],
)
def test_durations_as_people_write_them(written: object, seconds: float) -> None:
    assert retention(done_after=written).done_after == seconds


@pytest.mark.parametrize("off", ["off", False, None])
def test_off_keeps_everything(off: object) -> None:
    assert retention(done_after=off).done_after is None


@pytest.mark.parametrize("bad", ["30", "30x", "0d", 0, -5, "1w", True])
def test_a_bad_duration_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(ValidationError, match=r"retention\.done_after"):
        StoreSettings.model_validate({"retention": {"done_after": bad}})


def test_done_events_expire_after_30_days_by_default() -> None:
    assert StoreSettings().retention.done_after == 30 * DAY


def test_reservations_expire_after_90_days_and_sms_sends_after_30_by_default() -> None:
    kept = StoreSettings().retention
    assert (kept.reservations_after, kept.sms_after) == (90 * DAY, 30 * DAY)
    assert retention(reservations_after="off", sms_after="off").reservations_after is None


@pytest.mark.parametrize(
    ("key", "short", "floor"), [("reservations_after", "6d", "7d"), ("sms_after", "23h", "1d")]
)
def test_a_limit_shorter_than_what_still_needs_the_records_is_refused(
    key: str, short: str, floor: str
) -> None:
    # A reservation may be held 7 days; the per-phone SMS cap reads up to a day back.
    with pytest.raises(ValidationError, match=rf"retention\.{key}\n.*at least {floor}"):
        StoreSettings.model_validate({"retention": {key: short}})
    assert getattr(retention(**{key: floor}), key) > 0


async def test_the_pruner_takes_done_events_past_the_limit_in_batches() -> None:
    clock = Clock()
    store = await filled(clock, done=7, waiting=2)
    clock.now = T0 + 2 * DAY
    pruner = Pruner(store, retention(done_after="1d", batch=3, pause_seconds=0), clock=clock)
    assert await pruner.prune_once() == 7
    stats = await store.log_stats()
    assert stats.events == {Status.PENDING: 2}  # never what still waits


async def test_the_pruner_keeps_what_is_younger_than_the_limit() -> None:
    clock = Clock()
    store = await filled(clock, done=3)
    clock.now = T0 + DAY / 2
    pruner = Pruner(store, retention(done_after="1d"), clock=clock)
    assert await pruner.prune_once() == 0
    assert (await store.log_stats()).events == {Status.DONE: 3}


async def test_retention_off_starts_no_loop() -> None:
    clock = Clock()
    store = await filled(clock, done=3)
    clock.now = T0 + 365 * DAY
    off = retention(done_after="off", reservations_after="off", sms_after="off")
    pruner = Pruner(store, off, clock=clock)
    pruner.start()
    assert not pruner.enabled
    assert await pruner.prune_once() == 0
    await pruner.stop()
    assert (await store.log_stats()).events == {Status.DONE: 3}


async def test_the_loop_prunes_in_the_background_and_logs_what_went() -> None:
    clock = Clock()
    store = await filled(clock, done=5)
    clock.now = T0 + 2 * DAY
    settings = retention(done_after="1d", batch=2, pause_seconds=0, every_seconds=60)
    pruner = Pruner(store, settings, clock=clock)
    with capture_logs() as logs:
        pruner.start()
        for _ in range(100):
            await asyncio.sleep(0)
            if not (await store.log_stats()).events:
                break
        await pruner.stop()
    assert (await store.log_stats()).events == {}
    assert {"event": "events_pruned", "count": 5, "status": "done", "log_level": "info"} in logs


async def test_prune_all_goes_until_a_batch_is_short() -> None:
    clock = Clock()
    store = await filled(clock, done=4)
    clock.now = T0 + 1
    assert await prune_all(store, Status.DONE, clock.now, 2) == 4
    assert await prune_all(store, Status.DONE, clock.now, 2) == 0


async def test_a_dead_event_goes_only_when_named() -> None:
    clock = Clock()
    store = MemoryStore(clock=clock)
    await store.open(serving=True)
    await store.append_events([NewEvent("pos", InboundEvent("k", "order", "1"), ("crm",))])
    (claimed,) = await store.claim_due("crm", "me", 1)
    await store.finish_attempt(claimed, "me", AttemptOutcome(Status.DEAD, None, "x", "422"))
    clock.now = T0 + 60 * DAY
    assert await Pruner(store, retention(), clock=clock).prune_once() == 0
    assert await prune_all(store, Status.DEAD, clock.now, 10) == 1


async def test_the_pruner_takes_final_reservations_and_old_sms_sends_in_the_same_round() -> None:
    clock = Clock()
    store = await filled(clock, done=2)
    done = await store.create_reservation(reservation(1, T0), CREATED)
    await store.update_reservation(replace(done, status=RsvStatus.COMMITTED), [])
    held = await store.create_reservation(reservation(2, T0), CREATED)
    await store.update_reservation(replace(held, status=RsvStatus.HELD), [])
    assert await store.claim_sms_slot("phone", T0, 600, 5, done.id)
    await store.add_sandbox_message("+79000000001", "code 1111", done.id)
    clock.now = T0 + 100 * DAY
    assert await store.claim_sms_slot("other", clock.now, 600, 5, held.id)
    settings = retention(done_after="off", batch=1, pause_seconds=0)
    with capture_logs() as logs:
        assert await Pruner(store, settings, clock=clock).prune_once() == 3
    assert [r.id for r in await store.list_reservations()] == [held.id]
    assert await store.list_sandbox_messages() == []
    assert (await store.log_stats()).events == {Status.DONE: 2}  # done_after: off
    pruned = {(e["kind"], e["count"]) for e in logs if e["event"] == "records_pruned"}
    assert pruned == {("reservations", 1), ("sms_sends", 1), ("sandbox_messages", 1)}
    # The send inside the window still counts (the cap of one is reached).
    assert not await store.claim_sms_slot("other", clock.now + 1, 600, 1, held.id)
