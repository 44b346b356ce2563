"""Proving a phone by SMS: a code sent to it, checked once, traded for a proof.

The code rules are the reservations' (``bonus.reservations``, PRODUCT 3.2): kept only as
an HMAC bound to its verification (``bridge.bonus.codes``), ``code_ttl_seconds`` to live,
``max_attempts`` wrong ones lock it, a new code to one phone no sooner than
``resend_cooldown_seconds``, at most ``max_codes_per_phone`` per ``phone_window_seconds``
(counted with the reservations' codes: one cap per number). Codes and proofs are never
logged; phones only masked.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.bonus.codes import CodeBook
from bridge.bonus.phones import mask
from bridge.bonus.reservation_rules import ReservationProblem
from bridge.customers.proofs import ProofBook
from bridge.logs import get_logger
from bridge.settings import ReservationSettings
from bridge.settings_customers import CustomerSettings
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsUnavailable
from bridge.store.customer_records import CustomerRecord, CustomerRecords, RecordKind
from bridge.store.protocol import Store
from bridge.store.reservations import VersionConflict

log = get_logger("bridge.customers")

SENT, CONFIRMED, LOCKED, EXPIRED, FAILED = "sent", "confirmed", "locked", "expired", "failed"
SUPERSEDED = "superseded"  # a newer code went to the phone


@dataclass(frozen=True)
class Started:
    """A code on its way: the verification's id, the masked phone, when the code ends."""

    verification_id: str
    code_sent_to: str
    expires_at: float


class Verifications:
    """Sends codes that prove a phone and trades a right one for a proof."""

    def __init__(
        self,
        store: Store,
        records: CustomerRecords,
        rules: ReservationSettings,
        settings: CustomerSettings,
        gateway: SmsGateway,
        codes: CodeBook,
        proofs: ProofBook,
        clock: Callable[[], float],
        sms_timeout: float = 5.0,
    ) -> None:
        self._store, self._records = store, records
        self._rules, self._settings = rules, settings
        self._gateway, self._codes, self.proofs = gateway, codes, proofs
        self._clock, self._sms_timeout = clock, sms_timeout

    async def start(self, phone: str) -> Started:
        """Send a code to ``phone`` (E.164); refusals as ReservationProblem."""
        now = self._clock()
        earlier = await self._cooldown(phone, now)
        verification_id = f"vrf_{secrets.token_hex(10)}"
        key = self._codes.phone_key(phone)
        window, cap = self._rules.phone_window_seconds, self._rules.max_codes_per_phone
        if not await self._store.claim_sms_slot(key, now, window, cap, verification_id):
            raise ReservationProblem(
                "too_many_codes", "too many codes were sent to this phone; try later",
                retry_after=window,
            )  # fmt: skip
        code = self._codes.new_code()
        expires = now + self._rules.code_ttl_seconds
        body = {"digest": self._codes.digest(verification_id, code), "attempts": 0}
        body |= {"expires_at": expires, "sent_at": now}
        record, _ = await self._records.add_record(
            RecordKind.VERIFICATION, verification_id, phone, SENT, body
        )
        text = self._settings.verify_text.format_map(
            {"code": code, "minutes": str(max(1, round(self._rules.code_ttl_seconds / 60)))}
        )
        try:
            sent = await asyncio.wait_for(
                self._gateway.send(phone, text, verification_id), self._sms_timeout
            )
        except (SmsRejected, SmsUnavailable, TimeoutError) as exc:
            reason = str(exc) or "no answer in time"
            await self._records.update_record(record, FAILED, _without_digest(record.body))
            log.warning("verify_sms_failed", verification=verification_id, error=reason)
            if isinstance(exc, SmsRejected):  # the provider refused this text: no retry
                raise ReservationProblem(
                    "sms_refused", f"the code could not be sent: {reason}", field="phone"
                ) from exc
            raise ReservationProblem(
                "sms_unavailable", f"the code could not be sent: {reason}", retry_after=5.0
            ) from exc
        log.info("verify_code_sent", verification=verification_id, phone=mask(phone),
                 gateway=sent.gateway)  # fmt: skip
        await self._supersede(earlier)
        return Started(verification_id, mask(phone), expires)

    async def confirm(self, verification_id: str, code: str) -> tuple[str, float]:
        """A proof (and its end) for the right code; refusals as ReservationProblem."""
        for _ in range(5):  # a concurrent wrong guess moved the record: decide again
            record = await self._records.get_record(RecordKind.VERIFICATION, verification_id)
            if record is None:
                raise ReservationProblem(
                    "verification_not_found", f"no verification {verification_id[:40]!r}"
                )
            try:
                return await self._decide(record, code)
            except VersionConflict:
                continue
        raise ReservationProblem("busy", "the verification is being checked; try again")

    async def _decide(self, record: CustomerRecord, code: str) -> tuple[str, float]:
        body = dict(record.body)
        if record.status != SENT:
            raise _closed(record.status)
        if self._clock() > float(body["expires_at"]):
            await self._records.update_record(record, EXPIRED, _without_digest(body))
            raise _closed(EXPIRED)
        if not self._codes.matches(record.key, code, str(body["digest"])):
            attempts = int(body["attempts"]) + 1
            left = self._rules.max_attempts - attempts
            if left <= 0:
                await self._records.update_record(record, LOCKED, _without_digest(body))
                log.info("verify_locked", verification=record.key, phone=mask(record.subject))
                raise _closed(LOCKED)
            await self._records.update_record(record, SENT, body | {"attempts": attempts})
            raise ReservationProblem(
                "invalid_code", "the code is not right", attempts_left=left, field="code"
            )
        # Single use: the record is closed before the proof leaves.
        await self._records.update_record(
            record, CONFIRMED, _without_digest(body) | {"confirmed_at": self._clock()}
        )
        log.info("phone_verified", verification=record.key, phone=mask(record.subject))
        return self.proofs.issue(record.subject)

    async def _cooldown(self, phone: str, now: float) -> list[CustomerRecord]:
        """A new code to this phone only after ``resend_cooldown_seconds``; the phone's
        codes still open (the new one supersedes them once it is sent)."""
        recent = await self._records.list_records(
            RecordKind.VERIFICATION, subject=phone, status=SENT, limit=1000
        )
        if recent:
            last = max(float(r.body.get("sent_at", 0)) for r in recent)
            wait = last + self._rules.resend_cooldown_seconds - now
            if wait > 0:
                raise ReservationProblem(
                    "resend_too_soon", "a code was sent to this phone moments ago",
                    retry_after=wait,
                )  # fmt: skip
        return recent

    async def _supersede(self, earlier: list[CustomerRecord]) -> None:
        """Close the phone's older codes: only the newest one proves the phone (and a phone
        keeps at most one open verification, so the cooldown's look-up stays small)."""
        for record in earlier:
            with contextlib.suppress(VersionConflict):  # confirmed or closed meanwhile
                await self._records.update_record(record, SUPERSEDED, _without_digest(record.body))


def _closed(status: str) -> ReservationProblem:
    """The refusal for a verification that takes no more codes."""
    detail = {
        CONFIRMED: "the code was used already: verify the phone again",
        LOCKED: "too many wrong codes: verify the phone again",
        EXPIRED: "the code has expired: verify the phone again",
        FAILED: "the code was never sent: verify the phone again",
        SUPERSEDED: "a newer code was sent to this phone: use that one",
    }.get(status, "the verification is closed")
    code = {CONFIRMED: "verification_used", LOCKED: "locked", EXPIRED: "expired"}
    code[SUPERSEDED] = "superseded"
    return ReservationProblem(code.get(status, "verification_closed"), detail)


def _without_digest(body: Any) -> dict[str, Any]:
    """A closed verification keeps no digest: nothing to guess against later."""
    return {k: v for k, v in dict(body).items() if k != "digest"}
