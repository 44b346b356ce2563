"""A reservation's master calls as owed calls, on the memory store with a clock moved by
hand and a ledger that is down or refuses when told (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import pytest

from bridge.bonus.balance import BonusService
from bridge.bonus.master_calls import MasterCalls, ReservationLocks, release_call
from bridge.errors import TransientError
from bridge.ledger import LedgerErrorCode, LedgerOperation, LedgerRefused
from bridge.owed.calls import OwedStatus
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.settings import BonusSettings
from bridge.store.memory import MemoryStore
from bridge.store.owed import owed_store_of
from bridge.store.reservations import Reservation, RsvStatus, Step
from tests.support.clock import Clock

T0 = 1_800_000_000.0
RSV = "rsv_00000000000000000001"


@dataclass
class FakeLedger:
    """Commits and releases, remembered by operation id; down or refusing when told."""

    down: bool = False
    refuse: LedgerErrorCode | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)

    def _answer(self, kind: str, operation_id: str, amount: Decimal) -> LedgerOperation:
        self.calls.append((kind, operation_id))
        if self.down:
            raise TransientError("1C is down")
        if self.refuse is not None:
            raise LedgerRefused(self.refuse, "closed in 1C")
        return LedgerOperation(operation_id, kind, kind + "ed", amount, None, None)

    async def commit(self, operation_id: str, reservation_id: str, amount: Any) -> Any:
        return self._answer("commit", operation_id, amount)

    async def release(self, operation_id: str, reservation_id: str) -> Any:
        self.refuse = None if self.refuse is LedgerErrorCode.RESERVATION_CLOSED else self.refuse
        return self._answer("release", operation_id, Decimal(0))

    def reservation_ref(self, operation_id: str, order_id: str) -> str:
        return operation_id


@dataclass
class World:
    clock: Clock
    store: MemoryStore
    ledger: FakeLedger
    calls: MasterCalls
    sweeper: OwedSweeper


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = Clock()
    store = MemoryStore(clock=clock)
    await store.open()
    ledger = FakeLedger()
    bonus = BonusService(BonusSettings(), "onec", ledger, store)  # type: ignore[arg-type]
    owed = owed_store_of(store)
    sweeper = OwedSweeper(owed, Handlers(), "me", clock=clock, unit_random=lambda: 0.5)
    calls = MasterCalls(
        bonus,
        store,
        sweeper,
        owed,
        ReservationLocks(),
        returns_by="bridge",
        retry_max_seconds=8,
    )
    calls.register(sweeper.handlers)
    await store.create_reservation(held(), Step("created", RsvStatus.HELD))
    yield World(clock, store, ledger, calls, sweeper)
    await store.close()


def held() -> Reservation:
    return Reservation(
        id=RSV,
        status=RsvStatus.HELD,
        master="onec",
        customer_id="c-1",
        phone="+79000000001",
        amount=Decimal("300.00"),
        order_system="onec",
        order_id="r-1",
        master_order_id="r-1",
        client="till",
        sender="bridge",
        expires_at=T0 + 1800,
        created_at=T0,
        updated_at=T0,
        master_ref=RSV,
    )


async def kinds(store: MemoryStore) -> list[str]:
    return [s.kind for s in await store.reservation_history(RSV)]


async def test_a_commit_owed_while_the_master_is_down_lands_after_backoff(world: World) -> None:
    world.ledger.down = True
    rsv = await world.calls.owe_commit(await world.store.get_reservation(RSV), Decimal("250.00"))
    assert (rsv.status, rsv.pending, rsv.pending_amount) == (
        RsvStatus.COMMIT_PENDING,
        "commit",
        Decimal("250.00"),
    )
    assert await kinds(world.store) == ["created", "commit_requested", "commit_retry"]
    (call,) = await world.sweeper.store.owed_for(RSV)
    assert (call.status, call.operation_id, call.due_at) == (
        OwedStatus.PENDING,
        f"{RSV}:commit",
        T0 + 1,
    )
    world.ledger.down = False
    assert await world.sweeper.sweep_once() == 0  # not due for a second
    world.clock.now = T0 + 1
    assert await world.sweeper.sweep_once() == 1
    done = await world.store.get_reservation(RSV)
    assert (done.status, done.committed, done.pending) == (
        RsvStatus.COMMITTED,
        Decimal("250.00"),
        None,
    )
    assert (await kinds(world.store))[-1] == "commit_done"
    assert world.ledger.calls == [("commit", f"{RSV}:commit")] * 2  # one operation id
    assert (await world.sweeper.store.get_owed(call.id)).status is OwedStatus.DONE


async def test_a_refused_commit_fails_and_owes_the_release_of_its_hold(world: World) -> None:
    world.ledger.refuse = LedgerErrorCode.RESERVATION_CLOSED
    rsv = await world.calls.owe_commit(await world.store.get_reservation(RSV), Decimal("300.00"))
    assert (rsv.status, rsv.error_code, rsv.pending) == (
        RsvStatus.FAILED,
        "reservation_closed",
        None,
    )
    assert await kinds(world.store) == [
        "created",
        "commit_requested",
        "commit_refused",
        "release_done",
    ]
    assert world.ledger.calls == [("commit", f"{RSV}:commit"), ("release", f"{RSV}:release")]
    statuses = {c.operation: c.status for c in await world.sweeper.store.owed_for(RSV)}
    assert statuses == {
        "reservation.commit": OwedStatus.DEAD,  # visible to support, replay changes nothing
        "reservation.release": OwedStatus.DONE,
    }


async def test_a_call_a_killed_process_held_is_made_once_after_the_restart(world: World) -> None:
    owed = world.sweeper.store
    moved = await world.store.get_reservation(RSV)
    pending = replace(moved, status=RsvStatus.RELEASE_PENDING, pending="release")
    step = Step("cancel_requested", RsvStatus.RELEASE_PENDING)
    _, (call,) = await owed.update_reservation_owing(
        pending, [step], [release_call(pending, RsvStatus.RELEASED)]
    )
    await owed.claim_owed("killed", T0, 60, 10)  # the attempt began, then kill -9
    await world.sweeper.start()  # the next process: recovers it and sweeps
    await world.sweeper.stop()
    assert await world.sweeper.sweep_once() in (0, 1)
    ended = await world.store.get_reservation(RSV)
    assert (ended.status, ended.pending) == (RsvStatus.RELEASED, None)
    assert world.ledger.calls == [("release", f"{RSV}:release")]
    assert (await owed.get_owed(call.id)).status is OwedStatus.DONE
