"""Programme notices (``bridge notify``): one text to many customers, each phone once per
notice, throttled, resumable after ``kill -9``.

A notice is named by its text: ``ntc_`` + the first 16 hex digits of SHA-256 of the
template, so running the same template again resumes it. Each phone has a NOTICE record
``<notice>:<phone>``::

    pending → sending → sent
                      ↘ failed   (the provider refused it for good; the reason kept)
                      ↘ unknown  (cut short mid-send where the gateway cannot tell)

``sending`` is set (compare-and-set) before the gateway is called and ``sent`` after it
answers, so a phone is texted at most once: a resumed run finds a phone left ``sending``
and asks the gateway (:mod:`bridge.customers.outbox`); sent → ``sent``, not sent → sent
now, cannot tell → ``unknown``, never resent. A provider that is down leaves the phone
``pending`` for the next run. The text is never logged nor stored; where it holds
``{link}``, each phone's link carries its own proof (a bearer credential).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.customers.outbox import SentCheck
from bridge.logs import get_logger
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsUnavailable
from bridge.store.customer_records import CustomerRecord, CustomerRecords, RecordKind
from bridge.store.reservations import VersionConflict

log = get_logger("bridge.customers.notices")

PENDING, SENDING, SENT, FAILED, UNKNOWN = "pending", "sending", "sent", "failed", "unknown"
MAX_WORKERS = 8  # sends in flight at once: enough for 20/s over a gateway of ~300 ms
SEND_TRIES = 3  # a provider that is down is tried this often per phone and run


def notice_id(template: str) -> str:
    """The notice a template makes: the same text, the same notice."""
    return "ntc_" + hashlib.sha256(template.encode()).hexdigest()[:16]


@dataclass
class PhoneList:
    """The phones of a ``--phones`` file, in order, each once; the lines that are not."""

    phones: list[str] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    repeated: int = 0


def read_phones(lines: Iterable[str]) -> PhoneList:
    """One phone a line, in any spelling; blank lines and ``#`` comments skipped."""
    found = PhoneList()
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            phone = normalize_phone(text)
        except PhoneError as exc:
            found.bad.append((number, str(exc)))
            continue
        if phone in seen:
            found.repeated += 1
        else:
            seen.add(phone)
            found.phones.append(phone)
    return found


class Pacer:
    """Turns at most ``rate`` a second, shared by every worker."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._gap, self._clock, self._sleep = 1.0 / rate, clock, sleep
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def turn(self) -> None:
        """Wait for the next free turn."""
        async with self._lock:
            now = self._clock()
            self._next = max(self._next, now)
            wait, self._next = self._next - now, self._next + self._gap
        if wait > 0:
            await self._sleep(wait)


@dataclass
class Counts:
    """What a run found and did, by outcome (``bridge notify``'s final count)."""

    outcomes: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        """One phone's outcome."""
        self.outcomes[outcome] += 1


# Outcomes: sent (now), already_sent, failed (now or before), unknown, left (pending: the
# provider was down; run again), would_send (--dry-run), would_check (--dry-run: sending).


class Notice:
    """One notice: its records, and sending it to phones."""

    def __init__(
        self,
        template: str,
        records: CustomerRecords,
        gateway: SmsGateway,
        was_sent: SentCheck | None,
        link: Callable[[str], str] | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.template, self.id = template, notice_id(template)
        self.records, self.gateway, self._was_sent = records, gateway, was_sent
        self._link = link  # phone → a link with a proof, for a template with {link}
        self._pacer = pacer or Pacer(20.0)
        self._sleep = sleep

    def key(self, phone: str) -> str:
        """The NOTICE record's key of ``phone``."""
        return f"{self.id}:{phone}"

    async def plan(self, phone: str) -> str:
        """What a run would do for ``phone`` (``--dry-run``), sending nothing."""
        record = await self.records.get_record(RecordKind.NOTICE, self.key(phone))
        status = PENDING if record is None else record.status
        return {PENDING: "would_send", SENDING: "would_check", SENT: "already_sent"}.get(
            status, status
        )

    async def run(
        self, phones: list[str], done: Callable[[str], None], workers: int = MAX_WORKERS
    ) -> None:
        """Send the notice to each phone that has not had it; ``done(outcome)`` per phone."""
        queue: asyncio.Queue[str] = asyncio.Queue()
        for phone in phones:
            queue.put_nowait(phone)

        async def work() -> None:
            while not queue.empty():
                done(await self.send_once(queue.get_nowait()))

        await asyncio.gather(*(work() for _ in range(max(1, min(workers, len(phones))))))

    async def send_once(self, phone: str) -> str:
        """Bring one phone's record to an end; its outcome."""
        record, _new = await self.records.add_record(
            RecordKind.NOTICE, self.key(phone), phone, PENDING, {"notice": self.id}
        )
        for _ in range(5):
            try:
                return await self._step(record, phone)
            except VersionConflict:  # another run moved it: read it again
                found = await self.records.get_record(RecordKind.NOTICE, self.key(phone))
                assert found is not None
                record = found
        return "left"

    async def _step(self, record: CustomerRecord, phone: str) -> str:
        if record.status == SENT:
            return "already_sent"
        if record.status in (FAILED, UNKNOWN):
            return record.status
        if record.status == SENDING:
            if self._was_sent is None:
                log.warning("notice_send_unknown", notice=self.id, phone=mask(phone))
                await self.records.update_record(record, UNKNOWN, record.body)
                return UNKNOWN
            if await self._was_sent(phone, self.key(phone)):
                await self.records.update_record(record, SENT, record.body)
                return "already_sent"
        sending = await self.records.update_record(record, SENDING, record.body)
        return await self._send(sending, phone)

    async def _send(self, record: CustomerRecord, phone: str) -> str:
        text = self.template.format(link=self._link(phone) if self._link is not None else "")
        for attempt in range(SEND_TRIES):
            await self._pacer.turn()
            try:
                sent = await self.gateway.send(phone, text, self.key(phone))
            except SmsRejected as exc:
                log.warning("notice_sms_refused", notice=self.id, phone=mask(phone), error=str(exc))
                body = dict(record.body) | {"reason": str(exc)}
                await self.records.update_record(record, FAILED, body)
                return FAILED
            except SmsUnavailable as exc:
                log.warning("notice_sms_retry", notice=self.id, phone=mask(phone), error=str(exc))
                if attempt + 1 < SEND_TRIES:
                    await self._sleep(2.0**attempt)
                continue
            body = dict(record.body) | {"message_id": sent.message_id, "sent_at": time.time()}
            await self.records.update_record(record, SENT, body)
            return SENT
        await self.records.update_record(record, PENDING, record.body)  # not sent: next run
        return "left"
