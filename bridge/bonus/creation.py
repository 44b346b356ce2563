"""Making a reservation: the row first, then the hold at the master, then the code.

The hold is made at the master when the reservation is created, so a customer without the
points hears so before any SMS goes out, and the points cannot be spent twice while the
code is on its way. A repeat of the same ``Idempotency-Key`` is answered from the store,
even while the master is down. If the master does not answer, a release is owed (the hold
may have landed) and the key is freed for a retry.

``CreationSteps`` is the part of :class:`bridge.bonus.reservations.ReservationService`
that creates reservations.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

from bridge.bonus.balance import MasterUnavailable
from bridge.bonus.expiry import ExpirySteps
from bridge.bonus.phones import mask
from bridge.bonus.reservation_rules import NewReservation, ReservationProblem, refusal_code
from bridge.ledger import LedgerRefused
from bridge.store.reservations import OrderTaken, Reservation, RsvStatus, Step, VersionConflict


class CreationSteps(ExpirySteps):
    """Creates reservations (and guards every change of one with its lock)."""

    @contextlib.asynccontextmanager
    async def _guard(self, reservation_id: str) -> AsyncIterator[None]:
        """The reservation's lock; a change made meanwhile by another process (the CLI)
        becomes a 409 to retry, never a 500."""
        async with self.locks.hold(reservation_id):
            try:
                yield
            except VersionConflict as exc:
                raise ReservationProblem(
                    "conflict", "the reservation changed meanwhile; retry", retry_after=1
                ) from exc

    # -- create ------------------------------------------------------------------------

    async def _create(self, req: NewReservation) -> tuple[Reservation, bool]:
        if req.idempotency_key is not None:
            # A repeat is answered from the store, even while the master is down.
            earlier = await self.store.find_reservation(req.client, req.idempotency_key)
            if earlier is not None:
                return self._repeat(earlier, req), False
        # Asked of the master, not the look-ups' memory (which it refreshes): the code goes
        # to the phone the master has on file now (PRODUCT 3.2), not minutes ago.
        customer = await self.bonus.resolve(req.customer, fresh=True)
        if self.spend_gate is not None:
            lacking = await self.spend_gate(customer.customer_id)
            if lacking:  # customers.accumulate_only_until_profile (issue 17)
                raise ReservationProblem(
                    "profile_incomplete",
                    "the questionnaire misses "
                    + ", ".join(lacking)
                    + ": the card accrues but spends nothing until it is complete",
                    missing=lacking,
                )
        now = self._clock()
        if customer.phone is None:
            raise ReservationProblem(
                "no_phone_on_file",
                "the master has no phone for this customer; a code cannot be sent",
                field="customer",
            )
        master_order = req.order_id
        if req.order_system != self.bonus.master:
            mapped = await self.store.lookup_id(
                "order", req.order_system, req.order_id, self.bonus.master
            )
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
            await self.calls.owe_release(
                replace(rsv, idempotency_key=None, error_code="master_unavailable"),
                then=RsvStatus.CANCELLED,
                kind="reserve_failed",
                detail="the master did not answer",
            )
            raise
        rsv = replace(rsv, master_ref=op.reservation_id or rsv.id)
        if self.sender == "bridge":
            return await self._send_new_code(rsv, first=True)
        if op.verification_id is None:
            await self.calls.owe_release(
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

    async def _fail(self, rsv: Reservation, code: str, detail: str) -> None:
        await self._save(
            replace(rsv, status=RsvStatus.FAILED, error_code=code, error_detail=detail),
            Step("failed", RsvStatus.FAILED, f"{code}: {detail}"),
        )
