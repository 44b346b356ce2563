"""Confirmation codes of a reservation: sent, checked, resent, run out (PRODUCT 3.2).

The code goes to the phone the master has on file, by the bridge's SMS gateway (the code
is kept only as an HMAC, ``bridge.bonus.codes``) or by the master itself (RetailCRM's SMS
confirmation of charges: the customer's code is passed to ``/verification/sms/confirm``).
Five wrong codes lock the reservation; a code past its time cancels it; either way the
hold is released through an owed call (``bridge.bonus.master_calls``).

``CodeSteps`` is the part of :class:`bridge.bonus.reservations.ReservationService` that
deals with codes; the service supplies the attributes declared here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import replace

from bridge.bonus.balance import BonusService
from bridge.bonus.codes import CodeBook
from bridge.bonus.master_calls import MasterCalls
from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.bonus.reservation_rules import ReservationProblem, not_awaiting, points
from bridge.errors import BridgeError
from bridge.ledger import LedgerErrorCode, LedgerOperation, LedgerRefused, MasterVerification
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.settings import BonusSettings, ReservationSettings
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsUnavailable
from bridge.store.protocol import Store
from bridge.store.reservations import Reservation, RsvStatus, Step

log = get_logger("bridge.reservations")


class CodeSteps:
    """Sending, checking and ending confirmation codes."""

    store: Store
    bonus: BonusService
    settings: BonusSettings
    rules: ReservationSettings
    sender: str
    calls: MasterCalls
    _gateway: SmsGateway | None
    _verifier: MasterVerification | None
    _metrics: Metrics | None
    _clock: Callable[[], float]
    _codes: CodeBook | None
    # Which required questionnaire fields keep a customer from spending (issue 17;
    # None: nothing gates spending).
    spend_gate: Callable[[str], Awaitable[list[str]]] | None

    @property
    def gateway(self) -> SmsGateway | None:
        """The gateway the bridge's codes go through (None: the master sends its own)."""
        return self._gateway

    @property
    def codes(self) -> CodeBook:
        """The code book (after start)."""
        if self._codes is None:
            raise BridgeError("the reservation service is not started")
        return self._codes

    async def _save(self, rsv: Reservation, step: Step) -> Reservation:
        return await self.store.update_reservation(rsv, [step])

    async def _reserve_at_master(self, rsv: Reservation) -> LedgerOperation:
        ledger = self.bonus.ledger
        op = await self.bonus.call_master(
            "reserve",
            lambda: ledger.reserve(rsv.id, rsv.customer_id, rsv.amount, rsv.master_order_id),
        )
        await self.calls.balance_changed(rsv, "reserve")
        return op

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
                "amount": points(rsv.amount),
                "order": rsv.order_id,
                "minutes": str(max(1, round(self.rules.code_ttl_seconds / 60))),
            }
        )
        try:
            sent = await asyncio.wait_for(
                self._gateway.send(phone, text, rsv.id), self.settings.sms.timeout_seconds
            )
        except (SmsRejected, SmsUnavailable, TimeoutError) as exc:
            raise await self._sms_failed(rsv, before, exc, first=first) from exc
        self._count_sms(sent.gateway, "sent")
        log.info(
            "code_sent", reservation=rsv.id, phone=mask(phone), gateway=sent.gateway, first=first
        )
        return await self._save(
            replace(rsv, sends=rsv.sends + 1, last_sent_at=self._clock()),
            Step("code_sent", rsv.status, f"{sent.gateway} to {mask(phone)}"),
        )

    async def _sms_failed(
        self, rsv: Reservation, before: Reservation, exc: Exception, *, first: bool
    ) -> ReservationProblem:
        """A code that could not be sent: the one the customer has keeps working, or, for
        the first, the reservation is cancelled and its hold released; the refusal to raise."""
        assert self._gateway is not None
        self._count_sms(self._gateway.name, "failed")
        reason = str(exc) or "no answer in time"
        log.warning(
            "sms_failed", reservation=rsv.id, phone=mask(rsv.phone or ""), error=reason, first=first
        )
        if not first:
            await self._save(
                replace(rsv, code_hash=before.code_hash, code_expires_at=before.code_expires_at),
                Step("sms_failed", rsv.status, reason),
            )
        else:
            await self.calls.owe_release(
                replace(rsv, idempotency_key=None, code_hash=None, error_code="sms_unavailable"),
                then=RsvStatus.CANCELLED,
                kind="sms_failed",
                detail=reason,
            )
        retry = None if isinstance(exc, SmsRejected) else 5.0  # a refusal stays refused
        return ReservationProblem(
            "sms_unavailable", f"the code could not be sent: {reason}", retry_after=retry
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

    async def _confirm(self, rsv: Reservation, code: str) -> Reservation:
        if rsv.status is not RsvStatus.AWAITING_CODE:
            raise not_awaiting(rsv)
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
        await self.calls.owe_release(
            replace(rsv, attempts=attempts, code_hash=None),
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
            raise not_awaiting(rsv)
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
        return await self.calls.owe_release(
            replace(rsv, code_hash=None, error_code="code_expired"),
            then=RsvStatus.CANCELLED,
            kind="code_expired",
            detail=None,
        )

    def _count_sms(self, gateway: str, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.sms.labels(gateway, outcome).inc()
