"""SMS-confirmed reservations (PRODUCT 3.2): the service the HTTP API, the CLI and the
order-status sink call.

```
creating ─(hold at master, code sent)─► awaiting_code ─(code ok)─► held ─ commit ─► committed
                                          │   │                     ├── cancel ─► released
                    cancel / code TTL ────┘   └─ wrong ×N ─► locked └── TTL ────► expired
                    ─► cancelled
```

The hold is made at the master when the reservation is created, so a customer without the
points hears so before any SMS goes out, and the points cannot be spent twice while the
code is on its way. Every master call carries an operation id derived from the
reservation (``<id>``, ``<id>:commit``, ``<id>:release``, ``<id>:reverse:<total>``), so a
retry never charges or gives back twice.

Where the rest lives: the rules of the state machine in ``reservation_rules``, making one
in ``creation``, codes in ``confirmation`` (and ``codes``), time-outs in ``expiry``
(each a part of this class, in that order of inheritance), and the calls owed to the
master (commit, release, reverse: durable, retried, replayable) in ``master_calls`` on
``bridge.owed``. A committed reservation whose order is returned (PRODUCT 3.4,
``bridge.bonus.returns``) keeps its status; the points a return is worth become a reverse
owed the same way, and ``returned`` says how much has been given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from decimal import Decimal

from bridge.bonus.balance import BonusService, MasterUnavailable
from bridge.bonus.codes import CodeBook
from bridge.bonus.creation import CreationSteps
from bridge.bonus.master_calls import MasterCalls, ReservationLocks, release_call
from bridge.bonus.mirror import BalanceChanges
from bridge.bonus.reservation_rules import (
    BEFORE_COMMIT,
    SPENT,
    NewReservation,
    ReservationProblem,
    cancel_requested,
    commit_checked,
    outcome,
    refusal_code,
    refusal_raised,
    request_digest,
)
from bridge.bonus.returns import ZERO, who_reverses
from bridge.errors import BridgeError, NotFound
from bridge.ledger import LedgerRefused, MasterVerification, not_supported
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.owed.calls import OwedStatus
from bridge.owed.sweeper import OwedSweeper
from bridge.settings import BonusSettings
from bridge.sms.gateway import SmsGateway
from bridge.store.owed import OwedStore
from bridge.store.protocol import Store
from bridge.store.reservations import Reservation, RsvStatus, Step

log = get_logger("bridge.reservations")

__all__ = [
    "NewReservation",
    "ReservationProblem",
    "ReservationService",
    "cancel_requested",
    "refusal_code",
    "release_call",
    "request_digest",
]


class ReservationService(CreationSteps):
    """Creates, confirms, commits and releases reservations against the master."""

    def __init__(
        self,
        bonus: BonusService,
        store: Store,
        settings: BonusSettings,
        gateway: SmsGateway | None,
        *,
        owed: OwedSweeper,
        owed_store: OwedStore,
        verifier: MasterVerification | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
        randbelow: Callable[[int], int] = secrets.randbelow,
    ) -> None:
        self.bonus = bonus
        self.store = store
        self.settings = settings
        self.rules = settings.reservations
        self.sender = settings.sms.sender
        self._gateway = gateway
        self._verifier = verifier
        self._metrics = metrics
        self._clock = clock
        self._randbelow = randbelow
        self._codes: CodeBook | None = None
        self.spend_gate = None
        self._sweeper: asyncio.Task[None] | None = None
        if self.sender == "master" and verifier is None:
            raise BridgeError(
                f"bonus.sms.sender is master, but {bonus.master!r} does not send codes itself"
            )
        if self.sender == "bridge" and gateway is None:
            raise BridgeError("bonus.sms.sender is bridge, but no SMS gateway is configured")
        # Who gives spent points back when an order is returned after its commit.
        self.returns_by = who_reverses(settings.returns.reversed_by, bonus.master, bonus.ledger)
        self.locks = ReservationLocks()
        self.calls = MasterCalls(
            bonus,
            store,
            owed,
            owed_store,
            self.locks,
            returns_by=self.returns_by,
            retry_max_seconds=self.rules.retry_max_seconds,
        )
        self.calls.register(owed.handlers)

    @property
    def balance_changes(self) -> BalanceChanges | None:
        """Where a change of a customer's points is announced (set by the runtime when
        some system mirrors balances)."""
        return self.calls.balance_changes

    @balance_changes.setter
    def balance_changes(self, changes: BalanceChanges | None) -> None:
        self.calls.balance_changes = changes

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Load the code key and start the time-out sweeper (which first finishes
        creations a previous process left; its owed calls are ``bridge.owed``'s)."""
        if self.rules.code_key is not None:
            key = self.rules.code_key.get_secret_value().encode()
        else:
            key = (await self.store.secret("code_hmac_key", lambda: secrets.token_hex(32))).encode()
        self._codes = CodeBook(key, self.rules.code_length, self._randbelow)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="reservation-sweeper")

    async def stop(self) -> None:
        """Stop the sweeper (the gateway is the runtime's, shared, closed by it)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None

    # -- API ---------------------------------------------------------------------------

    async def create(self, req: NewReservation) -> tuple[Reservation, bool]:
        """Hold the amount at the master and send the code; (reservation, created)."""
        try:
            self._supported("reserve")
            rsv, created = await self._create(req)
        except (ReservationProblem, LedgerRefused, MasterUnavailable) as exc:
            self._count("reserve", outcome(exc))
            raise
        self._count("reserve", "created" if created else "repeated")
        return rsv, created

    async def get(
        self, reservation_id: str, client: str | None = None
    ) -> tuple[Reservation, list[Step]]:
        """The reservation and its history (``client``: only if that client made it)."""
        rsv = await self._get(reservation_id, client)
        return rsv, await self.store.reservation_history(reservation_id)

    async def confirm(
        self, reservation_id: str, code: str, client: str | None = None
    ) -> Reservation:
        """Check the code; ``held`` when it is right."""
        return await self._move(
            "confirm", reservation_id, client, lambda rsv: self._confirm(rsv, code), "held"
        )

    async def resend(self, reservation_id: str, client: str | None = None) -> Reservation:
        """A new code to the same phone (after the cooldown, within the per-phone cap)."""
        return await self._move("resend", reservation_id, client, self._resend, "sent")

    async def commit(
        self, reservation_id: str, amount: Decimal | None, client: str | None = None
    ) -> Reservation:
        """Write off the hold (or ``amount`` of it); ``commit_pending`` if the master is down."""
        self._supported("commit")
        return await self._move(
            "commit", reservation_id, client, lambda rsv: self._commit(rsv, amount)
        )

    async def cancel(
        self, reservation_id: str, actor: str, client: str | None = None
    ) -> Reservation:
        """Release the hold; ``release_pending`` if the master is down."""
        self._supported("release")
        return await self._move(
            "cancel", reservation_id, client, lambda rsv: self._cancel(rsv, actor)
        )

    def _supported(self, capability: str) -> None:
        """501 before anything is stored when the master cannot ``capability`` at all."""
        refused = not_supported(self.bonus.ledger, capability)
        if refused is not None:
            raise ReservationProblem("not_supported", refused.detail, capability=capability)

    async def _move(
        self,
        operation: str,
        reservation_id: str,
        client: str | None,
        step: Callable[[Reservation], Awaitable[Reservation]],
        counted: str | None = None,
    ) -> Reservation:
        """One call on an existing reservation, under its lock, counted by outcome (the
        given one, else the status it ends in)."""
        async with self._guard(reservation_id):
            try:
                rsv = await step(await self._get(reservation_id, client))
            except (ReservationProblem, LedgerRefused, MasterUnavailable) as exc:
                self._count(operation, outcome(exc))
                raise
        self._count(operation, counted or str(rsv.status))
        return rsv

    # -- commit, cancel ----------------------------------------------------------------

    async def _commit(self, rsv: Reservation, amount: Decimal | None) -> Reservation:
        if rsv.status is RsvStatus.HELD and self._clock() >= rsv.expires_at:
            await self._expire(rsv)
            raise ReservationProblem("expired", "the hold has expired and was released")
        final = commit_checked(rsv, amount, self._clock())
        if final is None:
            return rsv  # a repeat: nothing more is written off
        return refusal_raised(await self.calls.owe_commit(rsv, final))

    async def _cancel(self, rsv: Reservation, actor: str) -> Reservation:
        requested = cancel_requested(rsv)
        if requested is None:
            return rsv  # nothing (more) to cancel
        moved, then = requested
        step = Step("cancel_requested", RsvStatus.RELEASE_PENDING, actor=actor)
        return refusal_raised(await self.calls.owe(moved, step, release_call(moved, then)))

    # -- returns (PRODUCT 3.4) ---------------------------------------------------------

    async def keep_basket(self, reservation_id: str, basket: str) -> Reservation:
        """Keep the order's lines (``returns.dump_basket``) with its reservation: until the
        commit (the last kept is the order at commit), and once after it if none was."""
        async with self._guard(reservation_id):
            rsv = await self._get(reservation_id)
            late = rsv.status in SPENT and rsv.basket is None
            if rsv.basket == basket or not (rsv.status in BEFORE_COMMIT or late):
                return rsv
            steps = []
            if late:  # committed without the order seen (through the API): from now on
                steps.append(Step("basket_kept", rsv.status, "the order's lines after commit"))
            return await self.store.update_reservation(replace(rsv, basket=basket), steps)

    async def note_return(self, reservation_id: str, target: Decimal, reason: str) -> Reservation:
        """A return of the order after its commit is worth ``target`` points in all: give
        back what is not given yet (a reverse owed until the master takes it), or, when the
        master gives returns back itself, only record it."""
        async with self._guard(reservation_id):
            rsv = await self._get(reservation_id)
            spent = rsv.committed if rsv.status is RsvStatus.COMMITTED else rsv.pending_amount
            if rsv.status not in SPENT or spent is None:
                return rsv
            target = min(target, spent)
            if target > (rsv.return_target or ZERO):
                who = "the bridge" if self.returns_by == "bridge" else f"the master ({rsv.master})"
                rsv = await self._save(
                    replace(rsv, return_target=target),
                    Step("return_seen", rsv.status, f"{reason}: {target} of {spent}; by {who}"),
                )
                log.info("return_seen", reservation=rsv.id, target=str(target), by=who)
            rsv = await self.calls.owe_reverse(rsv)
        self._count("return", str(rsv.status) if rsv.pending is None else "reverse_pending")
        return rsv

    # -- helpers -----------------------------------------------------------------------

    async def next_attempt_at(self, rsv: Reservation) -> float | None:
        """When the master call ``rsv`` owes is tried next, if one is owed."""
        if rsv.pending is None:
            return None
        owed = await self.calls.owed_store.owed_for(rsv.id)
        due = [c.due_at for c in owed if c.status is OwedStatus.PENDING]
        return min(due, default=None)

    async def _get(self, reservation_id: str, client: str | None = None) -> Reservation:
        """The reservation; another client's is as good as absent (ids are not secrets)."""
        try:
            rsv = await self.store.get_reservation(reservation_id)
        except NotFound as exc:
            raise ReservationProblem("reservation_not_found", str(exc)) from exc
        if client is not None and rsv.client != client:
            raise ReservationProblem("reservation_not_found", f"no reservation {reservation_id!r}")
        return rsv

    def _count(self, operation: str, counted: str) -> None:
        if self._metrics is not None:
            self._metrics.count_bonus(operation, counted)
