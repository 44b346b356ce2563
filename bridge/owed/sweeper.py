"""The sweeper of owed calls: claims due calls under a lease and runs their handlers.

One loop per process. Each attempt is counted when it is claimed; its end is written
under the lease, so a process killed mid-attempt leaves the call ``in_flight`` until its
lease runs out (or the next start recovers it) and the call is tried again under the same
operation id. Failures go through ``bridge.retry.decide_retry``: transient ones wait a
capped backoff, permanent ones (and exhausted retries) are ``dead`` for support to read
and replay (``bridge replay own_12``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

from bridge.errors import DeliveryError, TransientError
from bridge.logs import get_logger
from bridge.owed.calls import OwedCall, OwedOutcome
from bridge.owed.handlers import Handlers, UnknownOperation
from bridge.retry import RetryDecision, decide_retry
from bridge.store.leases import LEASE_SECONDS, LOOK_SECONDS, Leases
from bridge.store.owed import OwedStore

log = get_logger("bridge.owed")

BATCH = 50
IDLE_SECONDS = 1.0  # the longest sleep between looks (another process may owe calls too)
SWEEPER_LEASE = "owed-sweeper"


class OwedSweeper:
    """Makes the calls the bridge owes, due ones first, each under a lease."""

    def __init__(
        self,
        store: OwedStore,
        handlers: Handlers,
        owner: str,
        *,
        lease_seconds: float = 60.0,
        idle_seconds: float = IDLE_SECONDS,
        clock: Callable[[], float] = time.time,
        unit_random: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.handlers = handlers
        self.owner = owner
        self.lease_seconds = lease_seconds
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._random = unit_random
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Several instances on one store: one sweeps at a time (the others stand by and
        # take over when its lease lapses). Each call is claimed under its own lease all
        # the same, so even two sweepers would never make one call twice.
        self.leases: Leases | None = None

    async def start(self) -> None:
        """Take back what a previous process left in flight, then sweep in the background."""
        recovered = await self.store.recover_owed(self.owner, self._clock())
        if recovered:
            log.info("owed_calls_recovered", count=recovered)
        self._task = asyncio.create_task(self._sweep_forever(), name="owed-sweeper")

    async def stop(self) -> None:
        """Stop sweeping (a call under way is cancelled; its lease brings it back)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.leases is not None:
            with contextlib.suppress(Exception):
                await self.leases.let_go(SWEEPER_LEASE, self.owner)

    async def _leading(self) -> bool:
        """Whether this instance is the one that sweeps (always, with no shared leases)."""
        if self.leases is None:
            return True
        try:
            return await self.leases.hold(SWEEPER_LEASE, self.owner, LEASE_SECONDS)
        except Exception:  # the database is briefly away: sweep nothing, look again
            log.warning("owed_sweeper_lease_unavailable")
            return False
            self._task = None

    def wake(self) -> None:
        """Look again now (a call was owed or replayed)."""
        self._wake.set()

    async def attempt(self, call: OwedCall) -> OwedCall:
        """Run one call this owner holds the lease of; return it as it ended (unchanged if
        the lease was lost meanwhile)."""
        try:
            registered = self.handlers.find(call.operation)
        except UnknownOperation as exc:
            # No traceback: the call names an operation this process cannot run.
            log.error(  # noqa: TRY400
                "owed_call_dead", call=call.id, operation=call.operation, error=str(exc)
            )
            return await self._finish(call, OwedOutcome.dead(str(exc)))
        try:
            note = await registered.handler.run(call)
        except DeliveryError as exc:
            error: DeliveryError = exc
        except Exception as exc:  # a fault of ours: logged with its traceback, tried again
            log.exception("owed_call_failed", call=call.id, operation=call.operation)
            error = TransientError(f"error: {exc}")
        else:
            log.info("owed_call_done", call=call.id, operation=call.operation, note=note)
            return await self._finish(call, OwedOutcome.done(note))
        decision = decide_retry(call.attempts, error, registered.policy, self._random())
        if decision.retry:
            ended = await self._finish(call, self._outcome(error, decision))
            await registered.handler.failed(ended, error, decision)
            return ended
        # The owner's record moves first (a refused commit fails its reservation and owes the
        # hold's release): should that not happen (kill -9, the store away), the call is
        # still in flight and comes back under its lease, to be run again under the same
        # operation id, rather than lie dead beside an owner that waits for it.
        await registered.handler.failed(call, error, decision)
        return await self._finish(call, self._outcome(error, decision))

    def _outcome(self, error: DeliveryError, decision: RetryDecision) -> OwedOutcome:
        reason = str(error) or type(error).__name__
        if decision.retry:
            return OwedOutcome.retry(reason, self._clock() + decision.delay)
        return OwedOutcome.dead(f"{reason} ({decision.reason})")

    async def _finish(self, call: OwedCall, outcome: OwedOutcome) -> OwedCall:
        ended = await self.store.finish_owed(call.id, self.owner, outcome)
        if ended is None:
            log.warning("owed_call_lease_lost", call=call.id, operation=call.operation)
            return call
        if outcome.status == "dead":
            log.error("owed_call_dead", call=call.id, operation=call.operation, error=outcome.error)
        elif outcome.status == "pending":
            log.info("owed_call_retry_scheduled", call=call.id, due_at=ended.due_at)
            self.wake()
        return ended

    async def attempt_now(self, call_id: str) -> OwedCall | None:
        """Lease a pending call and run it at once (right after it was owed); None when
        someone else holds it or it is finished."""
        leased = await self.store.lease_owed(call_id, self.owner, self._clock(), self.lease_seconds)
        if leased is None:
            return None
        return await self.attempt(leased)

    async def sweep_once(self) -> int:
        """Claim and run every call due now, once; how many ran."""
        claimed = await self.store.claim_owed(self.owner, self._clock(), self.lease_seconds, BATCH)
        for call in claimed:
            await self.attempt(call)
        return len(claimed)

    async def _sweep_forever(self) -> None:
        while True:
            self._wake.clear()
            wait = self.idle_seconds
            if not await self._leading():
                await asyncio.sleep(LOOK_SECONDS)  # another instance sweeps
                continue
            try:
                while await self.sweep_once() == BATCH:
                    pass  # more are due: keep going before sleeping
                due = await self.store.next_owed_due()
                if due is not None:
                    wait = min(wait, max(due - self._clock(), 0.0))
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may come back; keep sweeping
                log.exception("owed_sweep_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.05))
