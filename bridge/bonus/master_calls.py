"""What a reservation owes the master (commit, release, reverse), made through ``bridge.owed``.

A call is owed in the same transaction that moves the reservation (``commit_pending``,
``release_pending``, or a final status with a release still owed), then tried at once;
if the master is down the owed-call sweeper retries it with the shared retry policy (1 s,
2 s, 4 s … up to ``retry_max_seconds``), also after a restart or ``kill -9``. The master's
operation id is the owed call's: ``<id>:commit``, ``<id>:release``,
``<id>:reverse:<total given back>``, so a retry never charges or gives back twice.

The reservation row keeps what is owed (``pending``, ``pending_amount``) as its own
state, shown as ``master_call_pending``; when and how often it is tried is the call's.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import replace
from decimal import Decimal

from bridge.bonus.balance import BonusService, MasterUnavailable
from bridge.bonus.mirror import BalanceChanges
from bridge.bonus.reservation_rules import NOTHING_HELD, settled
from bridge.bonus.returns import ZERO, reverse_operation_id
from bridge.errors import DeliveryError, NotFound, TransientError
from bridge.ledger import LedgerRefused
from bridge.logs import get_logger
from bridge.owed.calls import NewOwedCall, OwedCall
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.retry import RetryDecision
from bridge.settings import RetrySettings
from bridge.store.owed import OwedStore
from bridge.store.protocol import Store
from bridge.store.reservations import Reservation, RsvStatus, Step, VersionConflict

log = get_logger("bridge.reservations")

COMMIT, RELEASE, REVERSE = "reservation.commit", "reservation.release", "reservation.reverse"
_KIND = {COMMIT: "commit", RELEASE: "release", REVERSE: "reverse"}


def commit_call(rsv: Reservation, amount: Decimal) -> NewOwedCall:
    """The commit of ``amount`` owed for ``rsv``."""
    return NewOwedCall(
        rsv.master, COMMIT, f"{rsv.id}:commit", {"amount": str(amount)}, subject=rsv.id
    )


def release_call(rsv: Reservation, then: RsvStatus) -> NewOwedCall:
    """The release of ``rsv``'s hold; the reservation ends ``then`` once it is made."""
    return NewOwedCall(
        rsv.master, RELEASE, f"{rsv.id}:release", {"then": str(then)}, subject=rsv.id
    )


def reverse_call(rsv: Reservation, amount: Decimal) -> NewOwedCall:
    """Giving ``amount`` back against the commit; the id names the total after it."""
    after = (rsv.returned or ZERO) + amount
    return NewOwedCall(
        rsv.master,
        REVERSE,
        reverse_operation_id(rsv.id, after),
        {"amount": str(amount)},
        subject=rsv.id,
    )


UNTIL_ANSWERED = 2**62  # attempts: a reservation's call is never given up on a count


def retry_policy(retry_max_seconds: float) -> RetrySettings:
    """Reservation calls: 1 s, 2 s, 4 s … up to ``retry_max_seconds``, without jitter (a
    till's customer is waiting for the one master), until the master answers (README: a
    commit or release owed to a master that is down waits for it however long it is down;
    only a refusal ends it). Built past the model's validation, whose ``max_attempts``
    bound is for configured delivery retries."""
    base = min(1.0, retry_max_seconds)
    return RetrySettings.model_construct(
        base_seconds=base, cap_seconds=retry_max_seconds, max_attempts=UNTIL_ANSWERED, jitter=0
    )


class ReservationLocks:
    """One lock per reservation; a task holding one may take it again (the first attempt
    of an owed call runs inside the API call that owed it)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._held: ContextVar[frozenset[str]] = ContextVar("held", default=frozenset())

    @contextlib.asynccontextmanager
    async def hold(self, reservation_id: str) -> AsyncIterator[None]:
        """The reservation's lock, for this task."""
        if reservation_id in self._held.get():
            yield
            return
        lock = self._locks.get(reservation_id)
        if lock is None:
            lock = self._locks[reservation_id] = asyncio.Lock()
        async with lock:
            token = self._held.set(self._held.get() | {reservation_id})
            try:
                yield
            finally:
                self._held.reset(token)


class MasterCalls:
    """Owes the master a reservation's calls and runs them (the owed-call handler of the
    three operations)."""

    def __init__(
        self,
        bonus: BonusService,
        store: Store,
        owed: OwedSweeper,
        owed_store: OwedStore,
        locks: ReservationLocks,
        *,
        returns_by: str,
        retry_max_seconds: float,
    ) -> None:
        self.bonus = bonus
        self.store = store
        self.owed = owed
        self.owed_store = owed_store
        self.locks = locks
        self.returns_by = returns_by
        self.balance_changes: BalanceChanges | None = None
        self.policy = retry_policy(retry_max_seconds)

    def register(self, handlers: Handlers) -> None:
        """Run the three reservation operations with this object."""
        for operation in (COMMIT, RELEASE, REVERSE):
            handlers.register(operation, self, self.policy)

    # -- owing -------------------------------------------------------------------------

    async def owe(self, moved: Reservation, step: Step, call: NewOwedCall) -> Reservation:
        """Store the reservation's move with the call it owes, try the call once now, and
        return the reservation as it then is."""
        rsv, (owed,) = await self.owed_store.update_reservation_owing(
            moved, [step], [call], lease_to=self.owed.owner
        )
        if owed.owner == self.owed.owner:  # stored leased to us: no sweeper runs it meanwhile
            await self.owed.attempt(owed)
        return await self.store.get_reservation(rsv.id)

    async def owe_release(
        self, rsv: Reservation, *, then: RsvStatus, kind: str, detail: str | None
    ) -> Reservation:
        """The reservation ends ``then`` and its hold is released at the master."""
        moved = replace(rsv, status=then, pending="release", pending_amount=None)
        return await self.owe(moved, Step(kind, then, detail), release_call(rsv, then))

    async def owe_commit(self, rsv: Reservation, amount: Decimal) -> Reservation:
        """``commit_pending`` until the master writes ``amount`` off."""
        moved = replace(
            rsv, status=RsvStatus.COMMIT_PENDING, pending="commit", pending_amount=amount
        )
        step = Step("commit_requested", RsvStatus.COMMIT_PENDING, str(amount))
        return await self.owe(moved, step, commit_call(rsv, amount))

    async def owe_reverse(self, rsv: Reservation) -> Reservation:
        """Owe the reverse of what a return is worth beyond what was given back (one at a
        time: the next one waits for this one's answer)."""
        if self.returns_by != "bridge" or rsv.status is not RsvStatus.COMMITTED:
            return rsv
        if rsv.pending is not None or rsv.committed is None:
            return rsv
        owed = min(rsv.return_target or ZERO, rsv.committed) - (rsv.returned or ZERO)
        if owed <= 0:
            return rsv
        moved = replace(rsv, pending="reverse", pending_amount=owed)
        step = Step("reverse_requested", rsv.status, str(owed))
        return await self.owe(moved, step, reverse_call(rsv, owed))

    # -- running (bridge.owed.handlers.OwedHandler) ------------------------------------

    async def run(self, call: OwedCall) -> str | None:
        """Make the call at the master and settle the reservation."""
        kind = _KIND[call.operation]
        async with self.locks.hold(str(call.subject)):
            rsv = await self._owing(call, kind)
            if rsv is None:
                return "no longer owed"
            try:
                done = await self._at_master(call, kind, rsv)
            except MasterUnavailable as exc:
                raise TransientError(str(exc)) from exc
            except LedgerRefused as exc:
                if kind != "release" or exc.code not in NOTHING_HELD:
                    raise
                done = rsv  # nothing held at the master any more: the release is done
            return await self._settle(call, kind, rsv, done)

    async def _owing(self, call: OwedCall, kind: str) -> Reservation | None:
        """The reservation, if it still owes this call."""
        try:
            rsv = await self.store.get_reservation(str(call.subject))
        except NotFound:
            return None
        if rsv.pending != kind:
            return None
        if kind == "reverse" and reverse_call(rsv, rsv.pending_amount or ZERO).operation_id != (
            call.operation_id
        ):
            return None  # another reverse is owed now
        return rsv

    async def _at_master(self, call: OwedCall, kind: str, rsv: Reservation) -> Reservation:
        ledger = self.bonus.ledger
        operation = call.operation_id
        if kind == "commit":
            amount = Decimal(call.arguments["amount"])
            ref = rsv.master_ref or rsv.id
            await self.bonus.call_master("commit", lambda: ledger.commit(operation, ref, amount))
            return replace(rsv, committed=amount)
        if kind == "reverse":
            amount = Decimal(call.arguments["amount"])
            commit_op = f"{rsv.id}:commit"
            await self.bonus.call_master(
                "reverse", lambda: ledger.reverse(operation, commit_op, amount)
            )
            returned = (rsv.returned or ZERO) + amount
            return replace(rsv, returned=returned, error_code=None, error_detail=None)
        # A creation interrupted before the master's answer was stored has no master_ref:
        # the master names the hold it may have made the way it always does.
        held = rsv.master_ref
        if held is None:
            held = ledger.reservation_ref(rsv.id, rsv.master_order_id)
        await self.bonus.call_master("release", lambda: ledger.release(operation, held))
        return rsv

    async def _settle(
        self, call: OwedCall, kind: str, rsv: Reservation, done: Reservation
    ) -> str | None:
        then = _then(call, kind, rsv)
        log.info("master_" + kind, reservation=rsv.id, status=str(then))
        detail = None
        if kind == "reverse":
            amount = call.arguments["amount"]
            detail = f"{amount} given back; {done.returned} of {done.committed} in all"
        ended = await self._save_latest(
            done, lambda r: (settled(_carried(r, done), then), Step(f"{kind}_done", then, detail))
        )
        await self.balance_changed(ended, kind)
        await self.owe_reverse(ended)  # a return seen meanwhile is due now
        return detail

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        """Write what the failure means into the reservation's history."""
        kind = _KIND[call.operation]
        async with self.locks.hold(str(call.subject)):
            rsv = await self._owing(call, kind)
            if rsv is None:
                return
            if decision.retry:
                detail = f"{error}; again in {decision.delay:g} s"
                await self._save_latest(rsv, lambda r: (r, Step(f"{kind}_retry", r.status, detail)))
            elif isinstance(error, LedgerRefused):
                await self._refused(kind, rsv, error)
            else:  # retries exhausted: the call waits, dead, for `bridge replay own_…`
                detail = f"{error}; {decision.reason}; bridge replay {call.id}"
                await self._save_latest(rsv, lambda r: (r, Step(f"{kind}_dead", r.status, detail)))

    async def _refused(self, kind: str, rsv: Reservation, exc: LedgerRefused) -> None:
        """A refused commit leaves a hold behind: owe its release (the reservation stays
        ``failed``). A refused release needs support. A refused reverse leaves the commit
        standing and the points owed (``return_target``): the order's next change, or a
        replay of this call, asks again with the same operation id (a refused call changed
        nothing, CONTRACT.md "Idempotency")."""
        log.error("master_refused", reservation=rsv.id, call=kind, error=str(exc))
        text = f"{exc.code}: {exc.detail}"
        error = (str(exc.code), exc.detail)
        if kind == "reverse":
            await self._save_latest(
                rsv,
                lambda r: (
                    settled(r, r.status, error=error),
                    Step("reverse_refused", r.status, text),
                ),
            )
            return

        def fail(r: Reservation) -> tuple[Reservation, Step]:
            failed = settled(r, RsvStatus.FAILED, error=error)
            if kind == "commit":
                failed = replace(failed, pending="release")
            return failed, Step(f"{kind}_refused", RsvStatus.FAILED, text)

        owing = release_call(rsv, RsvStatus.FAILED) if kind == "commit" else None
        await self._save_latest(rsv, fail, owing)

    async def _save_latest(
        self,
        rsv: Reservation,
        change: Callable[[Reservation], tuple[Reservation, Step]],
        owing: NewOwedCall | None = None,
    ) -> Reservation:
        """Apply ``change`` to the reservation and save it (with the call it owes, tried
        once now); re-read and apply again when another process (the CLI) moved it
        meanwhile."""
        for tries in range(6):
            moved, step = change(rsv)
            try:
                if owing is not None:
                    return await self.owe(moved, step, owing)
                return await self.store.update_reservation(moved, [step])
            except VersionConflict:
                if tries == 5:
                    raise
                rsv = await self.store.get_reservation(rsv.id)
        raise AssertionError("unreachable")

    async def balance_changed(self, rsv: Reservation, step: str) -> None:
        """Tell the balance mirrors (a Bitrix contact field) the points changed."""
        if self.balance_changes is not None:
            await self.balance_changes.changed(rsv, step)


def _then(call: OwedCall, kind: str, rsv: Reservation) -> RsvStatus:
    """The status the reservation reaches once the call is made."""
    if kind == "commit":
        return RsvStatus.COMMITTED
    if kind == "reverse":
        return rsv.status
    then = call.arguments.get("then")
    return RsvStatus(then) if then else rsv.status


def _carried(latest: Reservation, done: Reservation) -> Reservation:
    """What the master call changed (committed, returned, error), on the latest row."""
    return replace(
        latest,
        committed=done.committed,
        returned=done.returned,
        error_code=done.error_code,
        error_detail=done.error_detail,
    )
