"""The owed-call store contract: every store (SQLite, PostgreSQL, memory) keeps owed calls
alike.

A call is owed once per (system, operation id), claimed under a lease, finished only by
the lease's holder, recovered after its holder died, replayed when dead, and counted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.errors import NotFound
from bridge.owed.calls import NewOwedCall, OwedOutcome, OwedStatus
from bridge.store.memory import MemoryStore
from bridge.store.memory.owed import MemoryOwedStore
from bridge.store.owed import OwedStore, owed_store_of
from bridge.store.postgres import PostgresStore
from bridge.store.reservations import Reservation, RsvStatus, Step, VersionConflict
from bridge.store.sqlite import SQLiteStore
from tests.support.clock import Clock

T0 = 1_800_000_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


def event_store(
    engine: str, request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> SQLiteStore | PostgresStore:
    """An unopened store of a database engine (PostgreSQL: the run's own database)."""
    if engine == "postgresql":
        return PostgresStore(request.getfixturevalue("postgres_url"), lease_seconds=30, clock=clock)
    return SQLiteStore(tmp_path / "s.db", lease_seconds=30, clock=clock)


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
async def owed(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock
) -> AsyncIterator[OwedStore]:
    if request.param == "memory":
        yield MemoryOwedStore(lease_seconds=30, clock=clock)
        return
    store = event_store(request.param, request, tmp_path, clock)
    await store.open()
    try:
        yield owed_store_of(store)
    finally:
        await store.close()


@pytest.fixture
def shared(request: pytest.FixtureRequest) -> bool:
    """Whether several instances may share the store (a foreign lease is no proof that its
    holder is gone)."""
    return bool(request.node.callspec.params.get("owed") == "postgresql")


def commit(rsv: str = "rsv_1", amount: str = "100.00", **extra: object) -> NewOwedCall:
    return NewOwedCall(
        "onec",
        "reservation.commit",
        f"{rsv}:commit",
        {"amount": amount},
        subject=rsv,
        **extra,  # type: ignore[arg-type]
    )


async def test_a_call_is_owed_once_per_system_and_operation_id(owed: OwedStore) -> None:
    (first,) = await owed.owe([commit()])
    assert first.id.startswith("own_")
    assert (first.status, first.attempts, first.due_at) == (OwedStatus.PENDING, 0, T0)
    assert dict(first.arguments) == {"amount": "100.00"}
    (again,) = await owed.owe([commit(amount="999.00")])
    assert again == first  # the same call: its arguments stay those first owed
    other = NewOwedCall("retailcrm", "reservation.commit", "rsv_1:commit", {}, subject="rsv_1")
    (elsewhere,) = await owed.owe([other])
    assert elsewhere.id != first.id
    assert await owed.get_owed(first.id) == first
    assert [c.id for c in await owed.owed_for("rsv_1")] == [first.id, elsewhere.id]


async def test_claims_take_due_calls_oldest_first_under_a_lease(
    owed: OwedStore, clock: Clock
) -> None:
    later, now = await owed.owe([commit("rsv_2", due_at=T0 + 10), commit("rsv_1", due_at=T0 - 5)])
    (claimed,) = await owed.claim_owed("a", T0, 30, 10)
    assert claimed.id == now.id
    assert (claimed.status, claimed.owner, claimed.attempts) == (OwedStatus.IN_FLIGHT, "a", 1)
    assert claimed.lease_until == T0 + 30
    assert await owed.claim_owed("b", T0, 30, 10) == []  # leased, and the other not due
    assert await owed.next_owed_due() == T0 + 10
    (due,) = await owed.claim_owed("b", T0 + 10, 30, 10)
    assert due.id == later.id


async def test_only_the_lease_holder_finishes_and_a_lapsed_lease_is_claimed_again(
    owed: OwedStore,
) -> None:
    (call,) = await owed.owe([commit()])
    await owed.claim_owed("a", T0, 30, 10)
    assert await owed.finish_owed(call.id, "b", OwedOutcome.done()) is None
    (again,) = await owed.claim_owed("b", T0 + 31, 30, 10)  # a's lease ran out
    assert (again.owner, again.attempts) == ("b", 2)
    assert await owed.finish_owed(call.id, "a", OwedOutcome.done()) is None  # a lost it
    ended = await owed.finish_owed(call.id, "b", OwedOutcome.done("committed"))
    assert ended is not None
    assert (ended.status, ended.note, ended.owner) == (OwedStatus.DONE, "committed", None)
    assert await owed.claim_owed("c", T0 + 1000, 30, 10) == []


async def test_a_retry_waits_until_due_and_keeps_the_error(owed: OwedStore) -> None:
    (call,) = await owed.owe([commit()])
    await owed.claim_owed("a", T0, 30, 10)
    retry = await owed.finish_owed(call.id, "a", OwedOutcome.retry("master down", T0 + 4))
    assert retry is not None
    assert (retry.status, retry.due_at, retry.last_error) == (
        OwedStatus.PENDING,
        T0 + 4,
        "master down",
    )
    assert await owed.claim_owed("a", T0 + 3, 30, 10) == []
    (claimed,) = await owed.claim_owed("a", T0 + 4, 30, 10)
    assert claimed.attempts == 2


async def test_recovery_at_start_returns_calls_held_by_a_gone_process(
    owed: OwedStore, shared: bool
) -> None:
    (call,) = await owed.owe([commit()])
    await owed.claim_owed("killed", T0, 30, 10)
    (mine,) = await owed.owe([commit("rsv_2")], lease_to="me")
    assert (mine.status, mine.owner, mine.attempts) == (OwedStatus.IN_FLIGHT, "me", 1)
    if shared:  # "killed" may be another instance still at work, until its lease runs out
        assert await owed.recover_owed("me", T0 + 1) == 0
        assert await owed.recover_owed("me", T0 + 30) == 1
    else:
        assert await owed.recover_owed("me", T0 + 1) == 1
    back = await owed.get_owed(call.id)
    assert (back.status, back.owner, back.due_at) == (OwedStatus.PENDING, None, T0)
    assert (await owed.get_owed(mine.id)).status is OwedStatus.IN_FLIGHT


async def test_lease_one_takes_a_pending_call_whatever_its_due_time(owed: OwedStore) -> None:
    (call,) = await owed.owe([commit(due_at=T0 + 100)])
    leased = await owed.lease_owed(call.id, "a", T0, 30)
    assert leased is not None
    assert (leased.status, leased.attempts) == (OwedStatus.IN_FLIGHT, 1)
    assert await owed.lease_owed(call.id, "b", T0, 30) is None


async def test_a_dead_call_is_replayed_or_owed_again_and_counted(owed: OwedStore) -> None:
    (call,) = await owed.owe([commit()])
    await owed.claim_owed("a", T0, 30, 10)
    dead = await owed.finish_owed(call.id, "a", OwedOutcome.dead("refused: closed"))
    assert dead is not None
    assert (dead.status, dead.last_error) == (OwedStatus.DEAD, "refused: closed")
    assert await owed.count_owed() == {("onec", OwedStatus.DEAD): 1}
    assert [c.id for c in await owed.list_owed(OwedStatus.DEAD, "onec")] == [call.id]
    assert await owed.list_owed(OwedStatus.DEAD, "retailcrm") == []
    replayed = await owed.replay_owed(call.id, "cli:support", T0 + 5)
    assert (replayed.status, replayed.attempts, replayed.due_at) == (
        OwedStatus.PENDING,
        0,
        T0 + 5,
    )
    assert replayed.last_error == "refused: closed"  # kept for the record
    assert await owed.replay_owed(call.id, "cli:support", T0 + 6) == replayed  # not dead
    await owed.claim_owed("a", T0 + 5, 30, 10)
    await owed.finish_owed(call.id, "a", OwedOutcome.dead("refused again"))
    (owed_again,) = await owed.owe([commit(amount="50.00")])
    assert (owed_again.id, owed_again.status) == (call.id, OwedStatus.PENDING)
    assert dict(owed_again.arguments) == {"amount": "50.00"}


async def test_unknown_ids_are_not_found(owed: OwedStore) -> None:
    for ref in ("own_999", "dlv_1", "nonsense"):
        with pytest.raises(NotFound):
            await owed.get_owed(ref)
        with pytest.raises(NotFound):
            await owed.replay_owed(ref, "cli", T0)


def reservation(now: float) -> Reservation:
    return Reservation(
        id="rsv_00000000000000000001",
        status=RsvStatus.HELD,
        master="onec",
        customer_id="c-1",
        phone="+79000000001",
        amount=Decimal("100.00"),
        order_system="onec",
        order_id="r-1",
        master_order_id="r-1",
        client="till",
        sender="bridge",
        expires_at=now + 600,
        created_at=now,
        updated_at=now,
    )


@pytest.mark.parametrize("engine", ["sqlite", "memory", "postgresql"])
async def test_a_reservation_change_and_its_owed_calls_commit_together(
    request: pytest.FixtureRequest, tmp_path: Path, clock: Clock, engine: str
) -> None:
    store: SQLiteStore | PostgresStore | MemoryStore
    if engine == "memory":
        store = MemoryStore(lease_seconds=30, clock=clock)
    else:
        store = event_store(engine, request, tmp_path, clock)
    await store.open()
    try:
        await check_owing(owed_store_of(store), store.create_reservation, store.get_reservation)
    finally:
        await store.close()


async def check_owing(
    owed: OwedStore,
    create: Callable[[Reservation, Step], object],
    get: Callable[[str], object],
) -> None:
    rsv = reservation(time.time())
    created = await create(rsv, Step("created", RsvStatus.HELD))  # type: ignore[misc]
    moving = replace(created, status=RsvStatus.COMMIT_PENDING, pending="commit")
    step = Step("commit_requested", RsvStatus.COMMIT_PENDING)
    moved, (call,) = await owed.update_reservation_owing(
        moving, [step], [commit(rsv.id)], lease_to="me"
    )
    assert moved.status is RsvStatus.COMMIT_PENDING
    assert (call.subject, call.status, call.owner, call.attempts) == (
        rsv.id,
        OwedStatus.IN_FLIGHT,
        "me",
        1,
    )
    stale = replace(created, status=RsvStatus.RELEASE_PENDING)  # an old version
    with pytest.raises(VersionConflict):
        await owed.update_reservation_owing(stale, [step], [commit("rsv_other")])
    assert await owed.owed_for("rsv_other") == []  # nothing owed without the change
    assert (await get(rsv.id)).status is RsvStatus.COMMIT_PENDING  # type: ignore[misc]
