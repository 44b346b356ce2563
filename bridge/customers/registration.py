"""Automatic registration (issue 17): a first-time customer of a phone order is registered
at the bonus master and sent one SMS with a link to the questionnaire.

Orders of each ``customers.registration.sources[].system`` are routed to the internal
target ``_customers`` (``REGISTRATION_TARGET``); this sink reads the order as the source
holds it now (re-read before the delivery, like any), takes its phone and channel by the
source system's type (:data:`CONTACT_PATHS`), and when the channel matches and the master
does not know the phone, registers it. One REGISTRATION record per phone (the first writer
wins) carries it through::

    registering → registered → sending → notified
                                       ↘ failed   (the provider refused the text)
                                       ↘ unknown  (cut short mid-send; the gateway cannot tell)

so a retried delivery, a later update of the order, or another order of the phone goes on
from where the record stands and never texts twice. A master that is down is a
TransientError: the delivery is retried. The link carries a proof of the phone: it is a
bearer credential and is never logged or stored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.bonus.balance import BonusService, CustomerRef, MasterUnavailable
from bridge.bonus.orders import order_state
from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.connector import DeliveryJob
from bridge.customers.merges import cards_of
from bridge.customers.outbox import SentCheck
from bridge.customers.proofs import ProofBook
from bridge.errors import TransientError
from bridge.ledger import LedgerErrorCode, LedgerRefused
from bridge.logs import get_logger
from bridge.settings_customers import RegistrationSettings
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsUnavailable
from bridge.store.customer_records import CustomerRecord, CustomerRecords, RecordKind
from bridge.store.reservations import VersionConflict

log = get_logger("bridge.customers.registration")

REGISTERING, REGISTERED, SENDING = "registering", "registered", "sending"
NOTIFIED, FAILED, UNKNOWN = "notified", "failed", "unknown"
# A record left ``sending`` this long ago was cut short (a send takes seconds at most);
# younger, another delivery may be sending right now and this one waits its turn.
STALE_SENDING_SECONDS = 120.0


@dataclass(frozen=True)
class ContactPaths:
    """Where an order of one system type keeps its customer's phone, name and channel
    (dotted paths, a number indexes a list); the first phone path with a value wins."""

    phones: tuple[str, ...]
    names: tuple[str, ...] = ()
    channel: str | None = None


# retailcrm-api.md §2.2: the order carries a contact copy (`phone`, `firstName`,
# `lastName`) and, on read, the full `customer` with `phones[{number}]`; `orderMethod` is
# the channel code (`phone`, `shopping-cart`, ...). The 1C order as the 1C contract
# writes it (onec.md; mappings/retailcrm_order_to_onec.yaml) keeps `customer.phone` and
# `customer.name` and has no channel. Bitrix deals name a contact, not a phone.
CONTACT_PATHS: dict[str, ContactPaths] = {
    "retailcrm": ContactPaths(
        phones=("phone", "customer.phones.0.number", "contact.phones.0.number"),
        names=("firstName", "lastName"),
        channel="orderMethod",
    ),
    "onec": ContactPaths(phones=("customer.phone",), names=("customer.name",)),
}


@dataclass(frozen=True)
class Contact:
    """An order's customer as the sink needs it."""

    phone: str  # E.164
    name: str | None
    channel: str | None


def read_path(document: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``customer.phones.0.number``), or None."""
    value: Any = document
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def read_contact(paths: ContactPaths, order: Mapping[str, Any]) -> Contact | None:
    """The order's phone (normalized), name and channel; None without a usable phone."""
    phone = None
    for path in paths.phones:
        raw = read_path(order, path)
        if isinstance(raw, str) and raw.strip():
            try:
                phone = normalize_phone(raw)
                break
            except PhoneError:
                continue  # a typo in the contact copy: the customer's own phones may do
    if phone is None:
        return None
    parts = [read_path(order, path) for path in paths.names]
    name = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip()) or None
    channel = read_path(order, paths.channel) if paths.channel else None
    if isinstance(channel, Mapping):  # a history change spells a dictionary as {"code": …}
        channel = channel.get("code")
    return Contact(phone, name, channel if isinstance(channel, str) else None)


def operation_for(phone: str) -> str:
    """The master's operation id of a phone's registration: one per phone, for good."""
    return f"register:{uuid.uuid5(uuid.NAMESPACE_URL, 'tel:' + phone).hex}"


class RegistrationSink:
    """Implements :class:`bridge.connector.Sink` for ``_customers``."""

    def __init__(
        self,
        settings: RegistrationSettings,
        system_types: Mapping[str, str],
        bonus: BonusService,
        records: CustomerRecords,
        gateway: SmsGateway,
        proofs: ProofBook,
        was_sent: SentCheck | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._channels = {s.system: s.channel for s in settings.sources}
        self._types = dict(system_types)
        self.bonus, self.records, self.gateway, self.proofs = bonus, records, gateway, proofs
        self._was_sent = was_sent
        self._clock = clock

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Register the order's customer at the master if new, and text them once."""
        paths = CONTACT_PATHS.get(self._types.get(job.source, ""))
        if paths is None or job.source not in self._channels:
            return None
        contact = read_contact(paths, order_state(job))
        wanted = self._channels[job.source]
        if contact is None or (wanted is not None and contact.channel != wanted):
            return None
        record = await self.records.get_record(RecordKind.REGISTRATION, contact.phone)
        if record is None:
            if await self._known(contact.phone):
                return None
            body = {"source": job.source, "order": job.entity_id, "channel": contact.channel}
            record, _ = await self.records.add_record(
                RecordKind.REGISTRATION, contact.phone, contact.phone, REGISTERING, body
            )
        for _ in range(5):  # each pass moves the record one step, or finds it moved
            try:
                record = await self._step(record, contact)
            except VersionConflict:
                found = await self.records.get_record(RecordKind.REGISTRATION, contact.phone)
                assert found is not None  # records are never deleted while a phone orders
                record = found
                continue
            if record.status in (NOTIFIED, FAILED, UNKNOWN):
                return None
        return None

    async def _known(self, phone: str) -> bool:
        """Whether the master knows the phone (a known customer is remembered for
        ``bonus.customer_cache_seconds``: a regular's orders cost no look-up each)."""
        try:
            await self.bonus.resolve(CustomerRef(phone=phone))
        except LedgerRefused as exc:
            if exc.code is LedgerErrorCode.UNKNOWN_CUSTOMER:
                return False
            raise
        except MasterUnavailable as exc:
            raise TransientError(str(exc)) from exc
        return True

    async def _step(self, record: CustomerRecord, contact: Contact) -> CustomerRecord:
        """One move of the record (VersionConflict when another delivery moved it first)."""
        body = dict(record.body)
        if record.status == REGISTERING:
            ledger = cards_of(self.bonus)
            phone, name = contact.phone, contact.name
            customer = await self._master(
                "register_customer",
                lambda: ledger.register_customer(operation_for(phone), phone, name),
            )
            log.info("customer_registered", phone=mask(phone), customer=customer.customer_id)
            body["customer_id"] = customer.customer_id
            return await self.records.update_record(record, REGISTERED, body)
        if record.status == REGISTERED:
            sending = await self.records.update_record(record, SENDING, body)
            return await self._send(sending, contact.phone)
        if record.status == SENDING:
            return await self._resume(record, contact.phone)
        return record

    async def _send(self, record: CustomerRecord, phone: str) -> CustomerRecord:
        proof, _expires = self.proofs.issue(phone, self.settings.link_ttl_seconds)
        link = self.settings.link.format(proof=proof)
        body = dict(record.body)
        try:
            sent = await self.gateway.send(phone, self.settings.text.format(link=link), _ref(phone))
        except SmsUnavailable:
            # Not sent: the next attempt of the delivery sends it.
            await self.records.update_record(record, REGISTERED, body)
            raise
        except SmsRejected as exc:
            log.warning("registration_sms_refused", phone=mask(phone), error=str(exc))
            return await self.records.update_record(record, FAILED, body | {"reason": str(exc)})
        log.info("registration_sms_sent", phone=mask(phone), gateway=sent.gateway)
        body |= {"message_id": sent.message_id, "sent_at": self._clock()}
        return await self.records.update_record(record, NOTIFIED, body)

    async def _resume(self, record: CustomerRecord, phone: str) -> CustomerRecord:
        """A record found ``sending``: someone is sending now, or a send was cut short."""
        if self._clock() - record.updated_at < STALE_SENDING_SECONDS:
            raise TransientError("the welcome SMS of this phone is being sent")
        body = dict(record.body)
        if self._was_sent is None:
            log.warning("registration_sms_unknown", phone=mask(phone))
            return await self.records.update_record(record, UNKNOWN, body)
        if await self._was_sent(phone, _ref(phone)):
            return await self.records.update_record(record, NOTIFIED, body)
        return await self._send(await self.records.update_record(record, SENDING, body), phone)

    async def _master(self, operation: str, call: Callable[[], Any]) -> Any:
        try:
            return await self.bonus.call_master(operation, call)
        except MasterUnavailable as exc:
            raise TransientError(str(exc)) from exc


def _ref(phone: str) -> str:
    return f"registration:{phone}"
