"""The owed-call sweeper with a clock moved by hand: retry decisions, dead calls, leases."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from bridge.errors import DeliveryError, PermanentError, RateLimited, TransientError
from bridge.owed.calls import NewOwedCall, OwedCall, OwedStatus
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.retry import RetryDecision
from bridge.settings import RetrySettings
from bridge.store.memory.owed import MemoryOwedStore
from tests.support.clock import Clock

T0 = 1_800_000_000.0
POLICY = RetrySettings(base_seconds=1, cap_seconds=8, max_attempts=4, jitter=0)


@dataclass
class Scripted:
    """A handler that fails as told, then succeeds; it records what it was told."""

    failures: list[Exception] = field(default_factory=list)
    ran: list[tuple[str, int]] = field(default_factory=list)
    told: list[tuple[str, bool, float]] = field(default_factory=list)

    async def run(self, call: OwedCall) -> str | None:
        self.ran.append((call.operation_id, call.attempts))
        if self.failures:
            raise self.failures.pop(0)
        return "made"

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        self.told.append((call.operation_id, decision.retry, decision.delay))


def sweeper(handler: Scripted, clock: Clock, owner: str = "me") -> OwedSweeper:
    handlers = Handlers()
    handlers.register("ledger.commit", handler, POLICY)
    store = MemoryOwedStore(lease_seconds=30, clock=clock)
    return OwedSweeper(
        store, handlers, owner, lease_seconds=30, clock=clock, unit_random=lambda: 0.5
    )


def call(operation_id: str = "rsv_1:commit") -> NewOwedCall:
    return NewOwedCall("onec", "ledger.commit", operation_id, {"amount": "1.00"})


async def test_transient_failures_back_off_by_the_shared_policy_then_land() -> None:
    clock, handler = Clock(), Scripted([TransientError("down"), TransientError("down")])
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    assert await sw.sweep_once() == 1
    assert handler.told == [("rsv_1:commit", True, 1.0)]  # 1 s after the first failure
    assert (await sw.store.get_owed(owed.id)).due_at == T0 + 1
    assert await sw.sweep_once() == 0  # not due yet
    clock.now = T0 + 1
    assert await sw.sweep_once() == 1
    assert handler.told[-1] == ("rsv_1:commit", True, 2.0)  # then 2 s
    clock.now = T0 + 3
    assert await sw.sweep_once() == 1
    done = await sw.store.get_owed(owed.id)
    assert (done.status, done.attempts, done.note) == (OwedStatus.DONE, 3, "made")
    assert done.last_error == "down"
    assert handler.ran == [("rsv_1:commit", 1), ("rsv_1:commit", 2), ("rsv_1:commit", 3)]


async def test_a_permanent_error_is_dead_at_once_and_a_replay_runs_it_again() -> None:
    clock, handler = Clock(), Scripted([PermanentError("reservation_closed")])
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    await sw.sweep_once()
    dead = await sw.store.get_owed(owed.id)
    assert dead.status is OwedStatus.DEAD
    assert dead.last_error is not None and "reservation_closed" in dead.last_error
    assert handler.told == [("rsv_1:commit", False, 0.0)]
    clock.now += 3600
    assert await sw.sweep_once() == 0  # dead stays dead
    await sw.store.replay_owed(owed.id, "cli:support", clock.now)
    assert await sw.sweep_once() == 1
    assert (await sw.store.get_owed(owed.id)).status is OwedStatus.DONE


async def test_retries_end_dead_after_the_policys_attempts() -> None:
    clock = Clock()
    handler = Scripted([TransientError("down")] * 10)
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    for _ in range(POLICY.max_attempts):
        clock.now += POLICY.cap_seconds
        await sw.sweep_once()
    ended = await sw.store.get_owed(owed.id)
    assert (ended.status, ended.attempts) == (OwedStatus.DEAD, POLICY.max_attempts)
    assert "gave up after 4 attempts" in (ended.last_error or "")


async def test_a_rate_limit_waits_as_long_as_the_system_asks() -> None:
    clock, handler = Clock(), Scripted([RateLimited("slow down", retry_after=30)])
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    await sw.sweep_once()
    assert (await sw.store.get_owed(owed.id)).due_at == T0 + 30


async def test_a_fault_of_the_handler_itself_is_retried_not_lost() -> None:
    clock, handler = Clock(), Scripted([KeyError("amount")])
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    await sw.sweep_once()
    retried = await sw.store.get_owed(owed.id)
    assert retried.status is OwedStatus.PENDING
    assert "error" in (retried.last_error or "")


async def test_a_killed_owners_call_comes_back_by_its_lease_or_at_the_next_start() -> None:
    clock, handler = Clock(), Scripted()
    killed = sweeper(handler, clock, owner="killed")
    (first, second) = await killed.store.owe([call("rsv_1:commit"), call("rsv_2:commit")])
    await killed.store.claim_owed("killed", T0, 30, 10)  # then the process died
    other = OwedSweeper(killed.store, killed.handlers, "other", lease_seconds=30, clock=clock)
    assert await other.sweep_once() == 0  # leased: not before it runs out
    clock.now = T0 + 30
    assert await other.sweep_once() == 2  # the lease ran out: taken over
    assert handler.ran == [("rsv_1:commit", 2), ("rsv_2:commit", 2)]

    (third,) = await killed.store.owe([call("rsv_3:commit")], lease_to="killed")
    restarted = OwedSweeper(killed.store, killed.handlers, "restarted", clock=clock)
    await restarted.start()  # recovers at once (SQLite serves one instance)
    await restarted.stop()
    assert (await killed.store.get_owed(third.id)).status is OwedStatus.PENDING
    assert {first.id, second.id} <= {c.id for c in await killed.store.list_owed(OwedStatus.DONE)}


async def test_attempt_now_runs_a_call_right_after_it_was_owed_and_only_once() -> None:
    clock, handler = Clock(), Scripted()
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    ended = await sw.attempt_now(owed.id)
    assert ended is not None and ended.status is OwedStatus.DONE
    assert await sw.attempt_now(owed.id) is None  # finished: nothing to run
    assert await sw.sweep_once() == 0
    assert len(handler.ran) == 1


async def test_an_operation_without_a_handler_is_dead_not_dropped() -> None:
    clock, handler = Clock(), Scripted()
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([NewOwedCall("onec", "ledger.accrue", "acc_1", {})])
    await sw.sweep_once()
    dead = await sw.store.get_owed(owed.id)
    assert dead.status is OwedStatus.DEAD
    assert "no handler" in (dead.last_error or "")


def test_an_operation_is_registered_once() -> None:
    handlers = Handlers()
    handlers.register("ledger.commit", Scripted(), POLICY)
    with pytest.raises(Exception, match="registered twice"):
        handlers.register("ledger.commit", Scripted(), POLICY)


@dataclass
class Crashing(Scripted):
    """A handler whose record of a final failure cannot be written (the store went away,
    the process died between the two writes)."""

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        if not decision.retry:
            raise ConnectionError("the store went away")
        await super().failed(call, error, decision)


async def test_a_final_failure_the_owner_did_not_record_stays_in_flight_and_comes_back() -> None:
    clock, handler = Clock(), Crashing([PermanentError("refused")])
    sw = sweeper(handler, clock)
    (owed,) = await sw.store.owe([call()])
    with pytest.raises(ConnectionError):
        await sw.sweep_once()
    held = await sw.store.get_owed(owed.id)
    assert held.status is OwedStatus.IN_FLIGHT  # not dead beside an owner still waiting
    clock.now = T0 + 31  # its lease ran out: the call is due again, and this time it lands
    assert await sw.sweep_once() == 1
    assert (await sw.store.get_owed(owed.id)).status is OwedStatus.DONE


def test_a_reservation_call_is_never_given_up_on_a_count() -> None:
    from bridge.bonus.master_calls import retry_policy
    from bridge.retry import decide_retry

    policy = retry_policy(60)
    for attempt in (1, 1000, 100_000):
        decision = decide_retry(attempt, TransientError("1C is down"), policy, 0.5)
        assert decision.retry, attempt
        assert decision.delay <= 60
    assert not decide_retry(5, PermanentError("refused"), policy, 0.5).retry
