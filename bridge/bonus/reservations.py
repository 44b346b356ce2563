"""SMS-confirmed reservations: the state machine of PRODUCT 3.2, persisted.

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

Commit and release are durable commands: the row records the call owed (``pending``)
before it is made; if the master is down the caller gets ``*_pending`` and the sweeper
retries until the master answers. The sweeper also ends codes and holds past their time
and finishes creations a crash interrupted.

A committed reservation whose order is returned (PRODUCT 3.4, ``bridge.bonus.returns``)
keeps its status; the points a return is worth become a reverse owed the same way, and
``returned`` says how much has been given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from bridge.bonus.balance import BonusService, CustomerRef, MasterUnavailable
from bridge.bonus.codes import CodeBook
from bridge.bonus.mirror import BalanceChanges
from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.bonus.returns import ZERO, reverse_operation_id, who_reverses
from bridge.errors import BridgeError, NotFound
from bridge.ledger import LedgerErrorCode, LedgerOperation, LedgerRefused, MasterVerification
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.settings import BonusSettings
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsUnavailable
from bridge.store.protocol import Store
from bridge.store.reservations import (
    OrderTaken,
    Reservation,
    RsvStatus,
    Step,
    VersionConflict,
)

log = get_logger("bridge.reservations")

# The refusal that means a release has nothing to release. (``reservation_closed`` is not
# one: at 1C it also covers a hold that was committed, which support must look at.)
_NOTHING_HELD = frozenset({LedgerErrorCode.RESERVATION_NOT_FOUND})


class ReservationProblem(BridgeError):
    """A request the state machine refuses; ``code`` is the stable API code."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        retry_after: float | None = None,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.field = field
        self.extra = extra


@dataclass(frozen=True)
class NewReservation:
    """A validated ``POST /api/v1/bonus/reservations``."""

    customer: CustomerRef
    amount: Decimal
    order_system: str
    order_id: str
    client: str
    order_total: Decimal | None = None
    channel: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None


def request_digest(body: str) -> str:
    """What an Idempotency-Key is bound to: the canonical request body."""
    return hashlib.sha256(body.encode()).hexdigest()


class ReservationService:
    """Creates, confirms, commits and releases reservations against the master."""

    def __init__(
        self,
        bonus: BonusService,
        store: Store,
        settings: BonusSettings,
        gateway: SmsGateway | None,
        *,
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
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._sweeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        if self.sender == "master" and verifier is None:
            raise BridgeError(
                f"bonus.sms.sender is master, but {bonus.master!r} does not send codes itself"
            )
        if self.sender == "bridge" and gateway is None:
            raise BridgeError("bonus.sms.sender is bridge, but no SMS gateway is configured")
        # Who gives spent points back when an order is returned after its commit.
        self.returns_by = who_reverses(settings.returns.reversed_by, bonus.master, bonus.ledger)
        # Where a change of a customer's points is announced (set by the runtime when some
        # system mirrors balances).
        self.balance_changes: BalanceChanges | None = None

    # -- life cycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Load the code key and start the sweeper (which first finishes what a previous
        process left: pending commands, interrupted creations)."""
        if self.rules.code_key is not None:
            key = self.rules.code_key.get_secret_value().encode()
        else:
            key = (await self.store.secret("code_hmac_key", lambda: secrets.token_hex(32))).encode()
        self._codes = CodeBook(key, self.rules.code_length, self._randbelow)
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="reservation-sweeper")

    async def stop(self) -> None:
        """Stop the sweeper and close the gateway."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        if self._gateway is not None:
            await self._gateway.close()

    @property
    def codes(self) -> CodeBook:
        """The code book (after start)."""
        if self._codes is None:
            raise BridgeError("the reservation service is not started")
        return self._codes

    @contextlib.asynccontextmanager
    async def _guard(self, reservation_id: str) -> AsyncIterator[None]:
        """The reservation's lock; a change made meanwhile by another process (the CLI)
        becomes a 409 to retry, never a 500."""
        async with self._lock(reservation_id):
            try:
                yield
            except VersionConflict as exc:
                raise ReservationProblem(
                    "conflict", "the reservation changed meanwhile; retry", retry_after=1
                ) from exc

    def _lock(self, reservation_id: str) -> asyncio.Lock:
        lock = self._locks.get(reservation_id)
        if lock is None:
            lock = self._locks[reservation_id] = asyncio.Lock()
        return lock

    # -- API ---------------------------------------------------------------------------

    async def create(self, req: NewReservation) -> tuple[Reservation, bool]:
        """Hold the amount at the master and send the code; (reservation, created)."""
        try:
            rsv, created = await self._create(req)
        except (ReservationProblem, LedgerRefused, MasterUnavailable) as exc:
            self._count("reserve", _outcome(exc))
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
        return await self._move(
            "commit", reservation_id, client, lambda rsv: self._commit(rsv, amount)
        )

    async def cancel(
        self, reservation_id: str, actor: str, client: str | None = None
    ) -> Reservation:
        """Release the hold; ``release_pending`` if the master is down."""
        return await self._move(
            "cancel", reservation_id, client, lambda rsv: self._cancel(rsv, actor)
        )

    async def _move(
        self,
        operation: str,
        reservation_id: str,
        client: str | None,
        step: Callable[[Reservation], Awaitable[Reservation]],
        outcome: str | None = None,
    ) -> Reservation:
        """One call on an existing reservation, under its lock, counted by outcome (the
        given one, else the status it ends in)."""
        async with self._guard(reservation_id):
            try:
                rsv = await step(await self._get(reservation_id, client))
            except (ReservationProblem, LedgerRefused, MasterUnavailable) as exc:
                self._count(operation, _outcome(exc))
                raise
        self._count(operation, outcome or str(rsv.status))
        return rsv

    # -- create ------------------------------------------------------------------------

    async def _create(self, req: NewReservation) -> tuple[Reservation, bool]:
        if req.idempotency_key is not None:
            # A repeat is answered from the store, even while the master is down.
            earlier = await self.store.find_reservation(req.client, req.idempotency_key)
            if earlier is not None:
                return self._repeat(earlier, req), False
        customer = await self.bonus.resolve(req.customer)
        now = self._clock()
        if customer.phone is None:
            raise ReservationProblem(
                "no_phone_on_file",
                "the master has no phone for this customer; a code cannot be sent",
                field="customer",
            )
        master_order = req.order_id
        if req.order_system != self.bonus.master:
            mapped = await self._lookup_order(req.order_system, req.order_id)
            master_order = mapped or req.order_id
        draft = Reservation(
            id=f"rsv_{secrets.token_hex(10)}",
            status=RsvStatus.CREATING,
            master=self.bonus.master,
            customer_id=customer.customer_id,
            phone=customer.phone,
            amount=req.amount,
            order_system=req.order_system,
            order_id=req.order_id,
            master_order_id=master_order,
            client=req.client,
            sender=self.sender,
            expires_at=now + self.rules.hold_ttl_seconds,
            created_at=now,
            updated_at=now,
            order_total=req.order_total,
            channel=req.channel,
            idempotency_key=req.idempotency_key,
            request_hash=req.request_hash,
        )
        try:
            rsv = await self.store.create_reservation(draft, Step("created", RsvStatus.CREATING))
        except OrderTaken as exc:
            raise ReservationProblem(
                "order_has_reservation",
                f"order {req.order_id} already has reservation {exc.args[0]}; commit or cancel"
                " that one",
                reservation_id=exc.args[0],
            ) from exc
        if rsv.id != draft.id:
            return self._repeat(rsv, req), False
        async with self._guard(rsv.id):
            return await self._hold_and_send(rsv), True

    async def _lookup_order(self, system: str, order_id: str) -> str | None:
        return await self.store.lookup_id("order", system, order_id, self.bonus.master)

    def _repeat(self, rsv: Reservation, req: NewReservation) -> Reservation:
        """The answer to a repeated Idempotency-Key."""
        if rsv.request_hash != req.request_hash:
            raise ReservationProblem(
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request",
                field="Idempotency-Key",
            )
        if rsv.status is RsvStatus.CREATING:
            raise ReservationProblem(
                "request_in_progress",
                "the first request with this Idempotency-Key is still being processed",
                retry_after=1,
            )
        if rsv.status is RsvStatus.FAILED and rsv.error_code:
            raise ReservationProblem(rsv.error_code, rsv.error_detail or rsv.error_code)
        return rsv

    async def _hold_and_send(self, rsv: Reservation) -> Reservation:
        phone = rsv.phone
        assert phone is not None
        if not await self._claim_sms(rsv, phone):
            await self._fail(
                replace(rsv, idempotency_key=None),
                "too_many_codes",
                "too many codes sent to this phone lately",
            )
            raise ReservationProblem(
                "too_many_codes",
                "too many codes were sent to this phone lately",
                retry_after=self.rules.phone_window_seconds,
            )
        try:
            op = await self._reserve_at_master(rsv)
        except LedgerRefused as exc:
            await self._fail(rsv, refusal_code(exc.code), exc.detail)
            raise
        except MasterUnavailable:
            # The hold may or may not have landed: owe a release, free the key for a retry.
            await self._owe_release(
                replace(rsv, idempotency_key=None, error_code="master_unavailable"),
                then=RsvStatus.CANCELLED,
                kind="reserve_failed",
                detail="the master did not answer",
            )
            raise
        rsv = replace(rsv, master_ref=op.reservation_id or rsv.id)
        if self.sender == "master":
            if op.verification_id is None:
                await self._owe_release(
                    replace(rsv, idempotency_key=None, error_code="sms_unavailable"),
                    then=RsvStatus.CANCELLED,
                    kind="no_master_code",
                    detail="the master started no SMS check",
                )
                raise ReservationProblem(
                    "sms_unavailable",
                    "the master sent no code (is SMS confirmation of charges switched on"
                    " in its loyalty programme? otherwise set bonus.sms.sender: bridge)",
                    retry_after=None,
                )
            rsv = await self._save(
                replace(
                    rsv,
                    status=RsvStatus.AWAITING_CODE,
                    verification_id=op.verification_id,
                    code_expires_at=self._clock() + self.rules.code_ttl_seconds,
                    sends=1,
                    last_sent_at=self._clock(),
                ),
                Step("code_sent", RsvStatus.AWAITING_CODE, f"by the master to {mask(phone)}"),
            )
            self._count_sms("master", "sent")
            return rsv
        return await self._send_new_code(rsv, first=True)

    async def _reserve_at_master(self, rsv: Reservation) -> LedgerOperation:
        ledger = self.bonus.ledger
        op = await self.bonus.call_master(
            "reserve",
            lambda: ledger.reserve(rsv.id, rsv.customer_id, rsv.amount, rsv.master_order_id),
        )
        await self._balance_changed(rsv, "reserve")
        return op

    async def _balance_changed(self, rsv: Reservation, step: str) -> None:
        """Tell the balance mirrors (a Bitrix contact field) the points changed."""
        if self.balance_changes is not None:
            await self.balance_changes.changed(rsv, step)

    async def _send_new_code(self, rsv: Reservation, *, first: bool) -> Reservation:
        """Store a new code's digest, then send it (a customer never holds a code the
        bridge does not know)."""
        assert self._gateway is not None
        phone = rsv.phone
        assert phone is not None
        code = self.codes.new_code()
        now = self._clock()
        before = rsv
        rsv = await self._save(
            replace(
                rsv,
                status=RsvStatus.AWAITING_CODE,
                code_hash=self.codes.digest(rsv.id, code),
                code_expires_at=now + self.rules.code_ttl_seconds,
            ),
            Step("code_made", RsvStatus.AWAITING_CODE),
        )
        text = self.settings.sms.text.format_map(
            {
                "code": code,
                "amount": _points(rsv.amount),
                "order": rsv.order_id,
                "minutes": str(max(1, round(self.rules.code_ttl_seconds / 60))),
            }
        )
        try:
            sent = await asyncio.wait_for(
                self._gateway.send(phone, text, rsv.id), self.settings.sms.timeout_seconds
            )
        except (SmsRejected, SmsUnavailable, TimeoutError) as exc:
            self._count_sms(self._gateway.name, "failed")
            reason = str(exc) or "no answer in time"
            log.warning(
                "sms_failed", reservation=rsv.id, phone=mask(phone), error=reason, first=first
            )
            if not first:  # the code the customer already has keeps working
                await self._save(
                    replace(
                        rsv, code_hash=before.code_hash, code_expires_at=before.code_expires_at
                    ),
                    Step("sms_failed", rsv.status, reason),
                )
            else:
                await self._owe_release(
                    replace(
                        rsv, idempotency_key=None, code_hash=None, error_code="sms_unavailable"
                    ),
                    then=RsvStatus.CANCELLED,
                    kind="sms_failed",
                    detail=reason,
                )
            retry = None if isinstance(exc, SmsRejected) else 5.0  # a refusal stays refused
            raise ReservationProblem(
                "sms_unavailable", f"the code could not be sent: {reason}", retry_after=retry
            ) from exc
        self._count_sms(sent.gateway, "sent")
        log.info(
            "code_sent", reservation=rsv.id, phone=mask(phone), gateway=sent.gateway, first=first
        )
        return await self._save(
            replace(rsv, sends=rsv.sends + 1, last_sent_at=self._clock()),
            Step("code_sent", rsv.status, f"{sent.gateway} to {mask(phone)}"),
        )

    async def _claim_sms(self, rsv: Reservation, phone: str) -> bool:
        with contextlib.suppress(PhoneError):
            phone = normalize_phone(phone)  # one cap per number, whatever its notation
        return await self.store.claim_sms_slot(
            self.codes.phone_key(phone),
            self._clock(),
            self.rules.phone_window_seconds,
            self.rules.max_codes_per_phone,
            rsv.id,
        )

    # -- confirm, resend ---------------------------------------------------------------

    async def _confirm(self, rsv: Reservation, code: str) -> Reservation:
        if rsv.status is not RsvStatus.AWAITING_CODE:
            raise _not_awaiting(rsv)
        if self._code_expired(rsv):
            await self._end_code(rsv)
            raise ReservationProblem("expired", "the code has expired; make a new reservation")
        self._same_sender(rsv)
        if rsv.sender == "master":
            assert self._verifier is not None
            assert rsv.verification_id is not None
            verifier, check = self._verifier, rsv.verification_id
            try:
                await self.bonus.call_master("confirm", lambda: verifier.confirm_code(check, code))
                right = True
            except LedgerRefused as exc:
                if exc.code is not LedgerErrorCode.INVALID_CODE:
                    raise
                right = False
        else:
            right = rsv.code_hash is not None and self.codes.matches(rsv.id, code, rsv.code_hash)
        if not right:
            return await self._wrong_code(rsv)
        return await self._save(
            replace(rsv, status=RsvStatus.HELD, code_hash=None, code_expires_at=None),
            Step("confirmed", RsvStatus.HELD),
        )

    async def _wrong_code(self, rsv: Reservation) -> Reservation:
        attempts = rsv.attempts + 1
        left = self.rules.max_attempts - attempts
        if left > 0:
            await self._save(
                replace(rsv, attempts=attempts),
                Step("wrong_code", rsv.status, f"{left} tries left"),
            )
            raise ReservationProblem(
                "invalid_code", f"the code is wrong; {left} tries left", attempts_left=left
            )
        await self._owe_release(
            replace(rsv, attempts=attempts, code_hash=None, status=RsvStatus.LOCKED),
            then=RsvStatus.LOCKED,
            kind="locked",
            detail=f"{attempts} wrong codes",
        )
        log.warning("reservation_locked", reservation=rsv.id, attempts=attempts)
        raise ReservationProblem(
            "locked",
            f"{attempts} wrong codes: the reservation is locked and its hold released",
            attempts_left=0,
        )

    async def _resend(self, rsv: Reservation) -> Reservation:
        if rsv.status is not RsvStatus.AWAITING_CODE:
            raise _not_awaiting(rsv)
        if self._code_expired(rsv):
            await self._end_code(rsv)
            raise ReservationProblem("expired", "the code has expired; make a new reservation")
        now = self._clock()
        if rsv.last_sent_at is not None:
            wait = rsv.last_sent_at + self.rules.resend_cooldown_seconds - now
            if wait > 0:
                raise ReservationProblem(
                    "resend_too_soon", f"wait {wait:.0f} s before asking again", retry_after=wait
                )
        assert rsv.phone is not None
        self._same_sender(rsv)
        if not await self._claim_sms(rsv, rsv.phone):
            raise ReservationProblem(
                "too_many_codes",
                "too many codes were sent to this phone lately",
                retry_after=self.rules.phone_window_seconds,
            )
        if rsv.sender == "bridge":
            return await self._send_new_code(rsv, first=False)
        # RetailCRM sends a new code when the charge is applied again (retailcrm-api.md §4.3
        # step 4: Bitrix's resendBonusPayment does the same); the operation id is unchanged.
        op = await self._reserve_at_master(rsv)
        if op.verification_id is None:
            raise ReservationProblem("sms_unavailable", "the master started no new SMS check")
        self._count_sms("master", "sent")
        return await self._save(
            replace(
                rsv,
                verification_id=op.verification_id,
                code_expires_at=now + self.rules.code_ttl_seconds,
                sends=rsv.sends + 1,
                last_sent_at=now,
            ),
            Step("code_sent", rsv.status, f"by the master to {mask(rsv.phone)}"),
        )

    def _same_sender(self, rsv: Reservation) -> None:
        if rsv.sender != self.sender:
            raise ReservationProblem(
                "sender_changed",
                f"this reservation's code was sent by the {rsv.sender}, but bonus.sms.sender is"
                f" now {self.sender}; cancel it and make a new one",
            )

    def _code_expired(self, rsv: Reservation) -> bool:
        now = self._clock()
        return (rsv.code_expires_at is not None and now >= rsv.code_expires_at) or (
            now >= rsv.expires_at
        )

    async def _end_code(self, rsv: Reservation) -> Reservation:
        """The code ran out before it was confirmed: cancelled, hold released."""
        return await self._owe_release(
            replace(rsv, code_hash=None, status=RsvStatus.CANCELLED, error_code="code_expired"),
            then=RsvStatus.CANCELLED,
            kind="code_expired",
            detail=None,
        )

    # -- commit, cancel ----------------------------------------------------------------

    async def _commit(self, rsv: Reservation, amount: Decimal | None) -> Reservation:
        if rsv.status in (RsvStatus.COMMITTED, RsvStatus.COMMIT_PENDING):
            already = rsv.committed if rsv.status is RsvStatus.COMMITTED else rsv.pending_amount
            if amount is None or amount == already:
                return rsv  # a repeat: nothing more is written off
            raise ReservationProblem(
                "already_committed", f"already committed for {already}", field="amount"
            )
        if rsv.status is not RsvStatus.HELD:
            raise _not_held(rsv)
        if self._clock() >= rsv.expires_at:
            await self._expire(rsv)
            raise ReservationProblem("expired", "the hold has expired and was released")
        final = rsv.amount if amount is None else amount
        if final > rsv.amount:
            raise ReservationProblem(
                "amount_exceeds_reservation",
                f"{final} is more than the {rsv.amount} held",
                field="amount",
            )
        if final <= 0:
            raise ReservationProblem(
                "invalid_request", "must be more than 0 (cancel releases a hold)", field="amount"
            )
        if rsv.sender == "master" and final != rsv.amount:
            # RetailCRM would charge a smaller amount only after a new SMS code of its own
            # (retailcrm-api.md §4.3 step 4): commit the whole hold, or cancel and reserve anew.
            raise ReservationProblem(
                "partial_commit_unsupported",
                "the master confirms charges by its own SMS: commit the whole amount held,"
                " or cancel and make a new reservation",
                field="amount",
            )
        rsv = await self._save(
            replace(
                rsv,
                status=RsvStatus.COMMIT_PENDING,
                pending="commit",
                pending_amount=final,
                pending_then=RsvStatus.COMMITTED,
                pending_attempts=0,
                pending_due_at=self._clock(),
            ),
            Step("commit_requested", RsvStatus.COMMIT_PENDING, str(final)),
        )
        return _refusal_raised(await self._settle(rsv))

    async def _cancel(self, rsv: Reservation, actor: str) -> Reservation:
        moved = cancel_requested(rsv, self._clock())
        if moved is None:
            return rsv  # nothing (more) to cancel
        rsv = await self._save(
            moved, Step("cancel_requested", RsvStatus.RELEASE_PENDING, actor=actor)
        )
        return _refusal_raised(await self._settle(rsv))

    async def _expire(self, rsv: Reservation) -> Reservation:
        return await self._owe_release(
            replace(rsv, status=RsvStatus.EXPIRED),
            then=RsvStatus.EXPIRED,
            kind="expired",
            detail=None,
        )

    # -- returns (PRODUCT 3.4) ---------------------------------------------------------

    async def keep_basket(self, reservation_id: str, basket: str) -> Reservation:
        """Keep the order's lines (``returns.dump_basket``) with its reservation: until the
        commit (the last kept is the order at commit), and once after it if none was."""
        async with self._guard(reservation_id):
            rsv = await self._get(reservation_id)
            late = rsv.status in _SPENT and rsv.basket is None
            if rsv.basket == basket or not (rsv.status in _BEFORE_COMMIT or late):
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
            if rsv.status not in _SPENT or spent is None:
                return rsv
            target = min(target, spent)
            if target > (rsv.return_target or ZERO):
                who = "the bridge" if self.returns_by == "bridge" else f"the master ({rsv.master})"
                rsv = await self._save(
                    replace(rsv, return_target=target),
                    Step("return_seen", rsv.status, f"{reason}: {target} of {spent}; by {who}"),
                )
                log.info("return_seen", reservation=rsv.id, target=str(target), by=who)
            rsv = await self._reverse_owed(rsv)
        self._count("return", str(rsv.status) if rsv.pending is None else "reverse_pending")
        return rsv

    async def _reverse_owed(self, rsv: Reservation) -> Reservation:
        """Owe the master the reverse of what a return is worth beyond what was given back,
        then try once now (one reverse at a time: the next one waits for its answer)."""
        if self.returns_by != "bridge" or rsv.status is not RsvStatus.COMMITTED:
            return rsv
        if rsv.pending is not None or rsv.committed is None:
            return rsv
        owed = min(rsv.return_target or ZERO, rsv.committed) - (rsv.returned or ZERO)
        if owed <= 0:
            return rsv
        rsv = await self._save(
            replace(
                rsv,
                pending="reverse",
                pending_amount=owed,
                pending_then=rsv.status,
                pending_attempts=0,
                pending_due_at=self._clock(),
            ),
            Step("reverse_requested", rsv.status, str(owed)),
        )
        return await self._settle(rsv)

    async def _reverse_at_master(self, rsv: Reservation) -> Reservation:
        """Give ``pending_amount`` back against the commit; the operation id names the total
        given back after it, so a retry is the same call and the next reverse a new one."""
        amount = rsv.pending_amount
        assert amount is not None
        returned = (rsv.returned or ZERO) + amount
        operation = reverse_operation_id(rsv.id, returned)
        ledger = self.bonus.ledger
        await self.bonus.call_master(
            "reverse", lambda: ledger.reverse(operation, f"{rsv.id}:commit", amount)
        )
        return replace(rsv, returned=returned, error_code=None, error_detail=None)

    # -- owed master calls -------------------------------------------------------------

    async def _owe_release(
        self, rsv: Reservation, *, then: RsvStatus, kind: str, detail: str | None
    ) -> Reservation:
        """Record that the hold must be released, then try once now."""
        rsv = await self._save(
            replace(
                rsv,
                status=then,
                pending="release",
                pending_then=then,
                pending_attempts=0,
                pending_due_at=self._clock(),
            ),
            Step(kind, then, detail),
        )
        return await self._settle(rsv)

    async def _settle(self, rsv: Reservation) -> Reservation:
        """Make the owed master call; on success the reservation reaches ``pending_then``;
        if the master is down it stays owed, due again after a backoff."""
        assert rsv.pending is not None
        assert rsv.pending_then is not None
        ledger = self.bonus.ledger
        ref = rsv.master_ref or rsv.id
        try:
            if rsv.pending == "commit":
                amount = rsv.pending_amount
                await self.bonus.call_master(
                    "commit", lambda: ledger.commit(f"{rsv.id}:commit", ref, amount)
                )
                done = replace(rsv, committed=amount)
            elif rsv.pending == "reverse":
                done = await self._reverse_at_master(rsv)
            else:
                if rsv.master_ref is None:
                    # A creation interrupted before the master's answer was stored: the
                    # master names the hold it may have made the way it always does.
                    ref = ledger.reservation_ref(rsv.id, rsv.master_order_id)
                await self.bonus.call_master(
                    "release", lambda: ledger.release(f"{rsv.id}:release", ref)
                )
                done = rsv
        except MasterUnavailable as exc:
            return await self._retry_later(rsv, str(exc))
        except LedgerRefused as exc:
            if rsv.pending == "release" and exc.code in _NOTHING_HELD:
                done = rsv  # nothing held at the master any more: the release is done
            else:
                return await self._refused(rsv, exc)
        log.info("master_" + rsv.pending, reservation=rsv.id, status=str(rsv.pending_then))
        detail = None
        if rsv.pending == "reverse":
            detail = f"{rsv.pending_amount} given back; {done.returned} of {done.committed} in all"
        settled = await self._save(
            _settled(done, rsv.pending_then),
            Step(f"{rsv.pending}_done", rsv.pending_then, detail),
        )
        await self._balance_changed(settled, rsv.pending)
        return await self._reverse_owed(settled)  # a return seen meanwhile is due now

    async def _refused(self, rsv: Reservation, exc: LedgerRefused) -> Reservation:
        """The master refused an owed call. A refused commit leaves a hold behind: owe its
        release (the reservation stays ``failed``). A refused release needs support."""
        log.error("master_refused", reservation=rsv.id, call=rsv.pending, error=str(exc))
        if rsv.pending == "reverse":
            # The commit stands and the points stay owed (return_target): the order's next
            # change, or a replay of this one, asks again with the same operation id (a
            # refused call changed nothing, CONTRACT.md "Idempotency").
            return await self._save(
                _settled(rsv, rsv.status, error=(str(exc.code), exc.detail)),
                Step("reverse_refused", rsv.status, f"{exc.code}: {exc.detail}"),
            )
        failed = _settled(rsv, RsvStatus.FAILED, error=(str(exc.code), exc.detail))
        step = Step(f"{rsv.pending}_refused", RsvStatus.FAILED, f"{exc.code}: {exc.detail}")
        if rsv.pending != "commit":
            return await self._save(failed, step)
        failed = replace(
            failed,
            pending="release",
            pending_then=RsvStatus.FAILED,
            pending_attempts=0,
            pending_due_at=self._clock(),
        )
        return await self._settle(await self._save(failed, step))

    async def _retry_later(self, rsv: Reservation, reason: str) -> Reservation:
        attempts = rsv.pending_attempts + 1
        wait = min(self.rules.retry_max_seconds, 2.0 ** min(attempts - 1, 16))
        self._wake.set()
        return await self._save(
            replace(rsv, pending_attempts=attempts, pending_due_at=self._clock() + wait),
            Step(f"{rsv.pending}_retry", rsv.status, f"{reason}; again in {wait:g} s"),
        )

    # -- sweeper -----------------------------------------------------------------------

    async def sweep_once(self) -> int:
        """Do every piece of due work once; how many reservations were touched."""
        now = self._clock()
        stuck = now - (2 * self.settings.timeout_seconds + self.settings.sms.timeout_seconds + 5)
        touched = 0
        for rsv_id in await self.store.due_reservations(now, stuck, 100):
            async with self._lock(rsv_id):
                rsv = await self.store.get_reservation(rsv_id)
                try:
                    touched += await self._sweep_one(rsv, now, stuck)
                except Exception as exc:  # one bad row must not stall the others
                    log.exception("reservation_sweep_failed", reservation=rsv_id)
                    if rsv.pending is not None:
                        with contextlib.suppress(Exception):
                            await self._retry_later(
                                await self.store.get_reservation(rsv_id), f"error: {exc}"
                            )
        return touched

    async def _sweep_one(self, rsv: Reservation, now: float, stuck: float) -> int:
        try:
            if rsv.pending is not None and (rsv.pending_due_at or 0) <= now:
                await self._settle(rsv)
            elif rsv.status is RsvStatus.AWAITING_CODE and self._code_expired(rsv):
                await self._end_code(rsv)
            elif rsv.status is RsvStatus.HELD and rsv.expires_at <= now:
                await self._expire(rsv)
                log.info("hold_expired", reservation=rsv.id)
            elif rsv.status is RsvStatus.CREATING and rsv.created_at <= stuck:
                await self._owe_release(
                    replace(rsv, idempotency_key=None, error_code="interrupted"),
                    then=RsvStatus.CANCELLED,
                    kind="interrupted",
                    detail="the process stopped while creating it",
                )
            else:
                return 0
        except VersionConflict:
            return 0
        return 1

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
                wait = self.rules.sweep_seconds
                due = await self.store.next_reservation_due()
                left = None if due is None else due - self._clock()
                if left is not None and left > 0:  # past ones were handled or must wait
                    wait = min(wait, left)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep sweeping; the store or master may come back
                log.exception("reservation_sweep_failed", error=str(exc))
                wait = self.rules.sweep_seconds
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(wait, 0.05))

    # -- helpers -----------------------------------------------------------------------

    async def _get(self, reservation_id: str, client: str | None = None) -> Reservation:
        """The reservation; another client's is as good as absent (ids are not secrets)."""
        try:
            rsv = await self.store.get_reservation(reservation_id)
        except NotFound as exc:
            raise ReservationProblem("reservation_not_found", str(exc)) from exc
        if client is not None and rsv.client != client:
            raise ReservationProblem("reservation_not_found", f"no reservation {reservation_id!r}")
        return rsv

    async def _save(self, rsv: Reservation, step: Step) -> Reservation:
        return await self.store.update_reservation(rsv, [step])

    async def _fail(self, rsv: Reservation, code: str, detail: str) -> None:
        await self._save(
            replace(rsv, status=RsvStatus.FAILED, error_code=code, error_detail=detail),
            Step("failed", RsvStatus.FAILED, f"{code}: {detail}"),
        )

    def _count(self, operation: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.bonus_requests.labels(operation, outcome).inc()

    def _count_sms(self, gateway: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.sms.labels(gateway, outcome).inc()


_BEFORE_COMMIT = frozenset({RsvStatus.AWAITING_CODE, RsvStatus.HELD})
_SPENT = frozenset({RsvStatus.COMMIT_PENDING, RsvStatus.COMMITTED})


def cancel_requested(rsv: Reservation, now: float) -> Reservation | None:
    """The reservation with a release owed (``release_pending``), None when there is
    nothing left to cancel; ReservationProblem when it cannot be cancelled. Shared by the
    API and ``bridge reservations cancel`` (whose release the daemon's sweeper makes)."""
    if rsv.status in (
        RsvStatus.RELEASED,
        RsvStatus.CANCELLED,
        RsvStatus.RELEASE_PENDING,
        RsvStatus.LOCKED,
        RsvStatus.EXPIRED,
    ):
        return None
    if rsv.status in (RsvStatus.COMMITTED, RsvStatus.COMMIT_PENDING):
        raise ReservationProblem("already_committed", "the reservation is committed")
    if rsv.status is RsvStatus.CREATING:
        raise ReservationProblem(
            "request_in_progress", "the reservation is still being created", retry_after=1
        )
    if rsv.status is RsvStatus.FAILED:
        raise ReservationProblem("failed", f"the reservation failed: {rsv.error_code}")
    then = RsvStatus.RELEASED if rsv.status is RsvStatus.HELD else RsvStatus.CANCELLED
    return replace(
        rsv,
        status=RsvStatus.RELEASE_PENDING,
        code_hash=None,
        pending="release",
        pending_then=then,
        pending_attempts=0,
        pending_due_at=now,
    )


def _refusal_raised(rsv: Reservation) -> Reservation:
    """A call the master refused ends as a 409 ``master_refused``, never as a 2xx."""
    if rsv.status is RsvStatus.FAILED:
        raise ReservationProblem(
            "master_refused",
            f"the master refused: {rsv.error_detail or rsv.error_code}",
            master_code=rsv.error_code,
            reservation_status=str(rsv.status),
        )
    return rsv


def refusal_code(code: LedgerErrorCode) -> str:
    """The API's code for a master's refusal of a new reservation."""
    return "unknown_order" if code is LedgerErrorCode.RESERVATION_NOT_FOUND else str(code)


def _settled(
    rsv: Reservation, status: RsvStatus, error: tuple[str, str] | None = None
) -> Reservation:
    changed = replace(
        rsv,
        status=status,
        pending=None,
        pending_then=None,
        pending_due_at=None,
        pending_amount=None,
    )
    if error is not None:
        changed = replace(changed, error_code=error[0], error_detail=error[1])
    return changed


def _not_awaiting(rsv: Reservation) -> ReservationProblem:
    if rsv.status in (RsvStatus.LOCKED, RsvStatus.EXPIRED):
        return ReservationProblem(str(rsv.status), f"the reservation is {rsv.status}")
    if rsv.status is RsvStatus.CANCELLED and rsv.error_code == "code_expired":
        return ReservationProblem("expired", "the code has expired; make a new reservation")
    if rsv.status in (RsvStatus.HELD, RsvStatus.COMMIT_PENDING, RsvStatus.COMMITTED):
        return ReservationProblem("already_confirmed", "the code was already accepted")
    return ReservationProblem("invalid_state", f"the reservation is {rsv.status}")


def _not_held(rsv: Reservation) -> ReservationProblem:
    if rsv.status is RsvStatus.AWAITING_CODE:
        return ReservationProblem("not_confirmed", "confirm the code before committing")
    if rsv.status in (RsvStatus.LOCKED, RsvStatus.EXPIRED):
        return ReservationProblem(str(rsv.status), f"the reservation is {rsv.status}")
    return ReservationProblem("invalid_state", f"the reservation is {rsv.status}")


def _outcome(exc: Exception) -> str:
    if isinstance(exc, ReservationProblem):
        return exc.code
    if isinstance(exc, LedgerRefused):
        return str(exc.code)
    return "master_unavailable"


def _points(amount: Decimal) -> str:
    """``150.00`` → ``150``, ``150.50`` stays."""
    return str(amount.quantize(Decimal(1))) if amount == amount.to_integral() else str(amount)
