"""The 1C connector: change source (``GetChanges``, and pushes to ``/hooks/onec`` parsed in
``webhooks.py``), reader of orders and customers (``EntityReader``: GetOrder, GetCustomer),
their lister for ``bridge backfill`` (``EntityLister``: ListOrders, ListCustomers), their
writer (``Sink``: SaveOrder, SaveCustomer), and ``bridge check --probe``, over SOAP or the
HTTP service; the bonus master (``Ledger``) is ``master.py``'s, over the same calls.

Calls run on the event loop, at most ``delivery.concurrency`` at once (the wire's pool of
connections), and the caller never waits longer than ``delivery.timeout_seconds`` (+0.5 s of
slack). Only loading the WSDL blocks (zeep reads it synchronously): it runs in this
system's worker thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bridge.connector import (
    DeliveryJob,
    ListPage,
    PollResult,
)
from bridge.deadline import cut_off_within
from bridge.errors import ConfigError, DeliveryError, PermanentError, TransientError
from bridge.logs import get_logger
from bridge.settings import SystemSettings
from bridge.store.records import InboundEvent
from connectors.onec import answers
from connectors.onec.answers import read_answer
from connectors.onec.client import HttpServiceClient, OnecCallError, SoapClient
from connectors.onec.contract import ORIGIN_BRIDGE
from connectors.onec.declared import Declaration, declaration_for
from connectors.onec.declared.calls import DeclaredService
from connectors.onec.emulator import OnecEmulator
from connectors.onec.emulator.described import DescribedEmulator
from connectors.onec.errors import classify, is_not_found
from connectors.onec.features import features
from connectors.onec.listing import OnecListing
from connectors.onec.master import OnecMaster
from connectors.onec.models import (
    ENTITIES,
    READS,
    WRITES,
    customer_state,
    document_of,
    document_text,
    operation_id,
    order_state,
)
from connectors.onec.options import OnecOptions
from connectors.onec.probe import FAILING, ProbeFailed, probe_capabilities, render_table
from connectors.onec.values import read_int
from connectors.onec.webhooks import parse_onec_webhook

T = TypeVar("T")
log = get_logger("connectors.onec")


def build_client(
    options: OnecOptions, declaration: Declaration, timeout: float, pool_size: int
) -> SoapClient | HttpServiceClient:
    """The wire client the options and the declaration describe."""
    username, password = options.username, options.password.get_secret_value()
    if options.transport == "http":
        assert options.url is not None  # guaranteed by OnecOptions
        return HttpServiceClient(
            url=options.url,
            username=username,
            password=password,
            timeout=timeout,
            pool_size=pool_size,
        )
    assert declaration.service is not None  # a SOAP declaration names it (compiler.py)
    return SoapClient(
        wsdl=options.wsdl_source(),
        service=declaration.service,
        namespace=declaration.namespace,
        username=username,
        password=password,
        timeout=timeout,
        address=options.address,
        soap_version=options.soap_version,
        pool_size=pool_size,
    )


class OnecConnector:
    """One 1C infobase."""

    def __init__(self, name: str, options: OnecOptions, system: SystemSettings) -> None:
        self.name = name
        self.options = options
        self.declaration = declaration_for(
            options.service, options.operations, options.transport, system.config_dir
        )
        declares_changes = self.declaration.calls("get_changes") is not None
        # No GetChanges declared: nothing to poll (1C may still push to /hooks/onec).
        self.poll_interval = options.poll_interval if declares_changes else 0.0
        self.feeds = ("changes",) if declares_changes else ()
        self._timeout = system.delivery.timeout_seconds
        self._client = build_client(
            options, self.declaration, self._timeout, system.delivery.concurrency
        )
        self.service = DeclaredService(self.declaration, self._client)
        # One thread: it only loads the WSDL (zeep reads it synchronously).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"onec-{name}")
        self._loaded: str | None = None
        self._listing = OnecListing(self._request, self.service, options.list_page)
        # The Ledger protocol (bonus.master: onec), answered by the declared capabilities.
        self.master = OnecMaster(self._call, self.declaration, self.service.publishes)
        self.missing = self.master.missing
        self.find_customer = self.master.find_customer
        self.balance = self.master.balance
        self.reserve = self.master.reserve
        self.reservation_ref = self.master.reservation_ref
        self.commit = self.master.commit
        self.release = self.master.release
        self.accrue = self.master.accrue
        self.reverse = self.master.reverse
        # CardsAtMaster (issue 17): not_supported for what the service does not declare.
        self.cards = self.master.cards
        self.card = self.master.card
        self.attach_card = self.master.attach_card
        self.set_card_status = self.master.set_card_status
        self.set_main_card = self.master.set_main_card
        self.move_points = self.master.move_points
        self.profile = self.master.profile
        self.save_profile = self.master.save_profile
        self.register_customer = self.master.register_customer
        # Pushes to /hooks/onec (WebhookParser).
        self.parse_webhook = parse_onec_webhook

    # -- lifecycle and probe -------------------------------------------------------------

    async def start(self) -> None:
        """Load the WSDL once, before any call; a failure is logged and retried on first use
        (1C being down must not keep the bridge from taking webhooks)."""
        try:
            await self.probe_service()
        except DeliveryError as exc:
            log.warning(
                "system_unavailable",
                system=self.name,
                error=str(exc),
                error_class=str(exc.error_class),
            )
            return
        await self._listing.learn()

    async def close(self) -> None:
        """Stop the worker thread and close pooled connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        await self._client.close()

    async def probe_service(self) -> str:
        """Load the WSDL (SOAP) and check every configured operation is in it."""
        client = self._client
        if isinstance(client, HttpServiceClient):
            self._loaded = client.load()  # no schema: nothing to fetch
        else:
            self._loaded = await self._run(client.load)
        return self._loaded

    async def probe(self) -> str:
        """``bridge check --probe``: the service, and each capability tried harmlessly."""
        described = await self.probe_service()
        table = await probe_capabilities(self.service, self._bounded_call)
        where = f"{described} ({self.declaration.source})"
        failing = [row for row in table if row.state == FAILING]
        text = "\n".join([where, *render_table(table)])
        if failing:
            raise ProbeFailed(text)
        return text

    def features(self) -> list[str]:
        """``bridge check``: which bridge features the declared service enables."""
        return features(self.declaration)

    async def _bounded_call(self, logical: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._bounded(self.service.call(logical, params), ledger=True)

    # -- calls -------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        """A blocking client call in this system's worker threads, within the timeout."""
        return await self._bounded(asyncio.get_running_loop().run_in_executor(self._pool, fn))

    async def _bounded(self, call: Awaitable[T], *, ledger: bool = True) -> T:
        bound = self._timeout + 0.5
        try:
            if cut_off_within(bound):  # a till's look-up: its own timer bounds it sooner
                return await call
            # requests' timeout is per socket read; this bounds the whole call for the caller.
            # asyncio.timeout, not wait_for: no extra task per call on the look-up path.
            async with asyncio.timeout(bound):
                return await call
        except TimeoutError as exc:
            raise TransientError(f"1C did not answer within {self._timeout:g} s") from exc
        except OnecCallError as exc:
            raise classify(exc, ledger=ledger) from exc

    async def _call(self, logical: str, **params: Any) -> dict[str, Any]:
        return await self._request(logical, params, ledger=True)

    async def _request(
        self, logical: str, params: dict[str, Any], *, ledger: bool
    ) -> dict[str, Any]:
        if self._client.loaded:
            return await self._bounded(self.service.call(logical, params), ledger=ledger)
        return await self._bounded(self._load_then_call(logical, params), ledger=ledger)

    async def _load_then_call(self, logical: str, params: dict[str, Any]) -> dict[str, Any]:
        # 1C was down at start-up: the WSDL is loaded now, within this call's time bound.
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._client.load)
        return await self.service.call(logical, params)

    # -- change capture ------------------------------------------------------------------

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        """GetChanges after ``cursor`` (a message number); each change becomes an event."""
        since = int(cursor) if cursor and cursor.isdigit() else 0
        r = await self._call("get_changes", since_message_no=since, limit=self.options.changes_page)
        page = read_answer("get_changes", lambda record: answers.change_page(record, since), r)
        events = []
        for item in page.items:
            if item.get("entity") not in ENTITIES:
                continue  # a change of something we do not mirror
            if item.get("origin") == ORIGIN_BRIDGE:
                # The bridge's own SaveOrder / SaveCustomer: mirroring it would echo the write
                # back to where it came from (PRODUCT 3.3, "No echoes"; CONTRACT.md). A later
                # change made in 1C has no origin and flows.
                log.debug(
                    "change_skipped_own_write",
                    system=self.name,
                    entity=item.get("entity"),
                    message_no=item.get("message_no"),
                )
                continue
            number = read_answer(
                "get_changes", lambda i: read_int(i["message_no"], "message_no"), item
            )
            events.append(
                InboundEvent(
                    source_key=f"msg-{number}",
                    entity=str(item["entity"]),
                    entity_id=str(item["id"]),
                    action=str(item.get("action") or "changed"),
                    payload={"message_no": number, "version": _text(item.get("version"))},
                )
            )
        return PollResult(events, str(page.last), page.more)

    # -- mirroring: reading and writing orders and customers ------------------------------

    def reads(self, entity: str) -> bool:
        """Orders and customers are read (GetOrder / GetCustomer, where published), so None
        from ``read_entity`` means 1C holds no such one (``unknown_order``)."""
        logical = READS.get(entity)
        return logical is not None and self.service.publishes(logical) is not False

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """GetOrder / GetCustomer by the id the change feed gave (the bridge's external id
        for what it saved, else 1C's own id); None when 1C has no such one, or for entities
        no operation reads (receipts, sales and returns arrive whole in pushes)."""
        logical = READS.get(entity)
        if logical is None or not entity_id:
            return None
        try:
            record = await self._request(logical, {"id": entity_id}, ledger=False)
        except DeliveryError as exc:
            if is_not_found(exc.__cause__):
                return None
            raise
        zone = self.declaration.timezone
        if entity == "order":
            return read_answer(logical, lambda r: order_state(r, zone=zone), record)
        return read_answer(logical, lambda r: customer_state(r, zone=zone), record)

    async def deliver(self, job: DeliveryJob) -> str | None:
        """SaveOrder / SaveCustomer of the job's document by its external id; a retry or a
        repeat of the same state is answered by 1C from memory and writes nothing. Returns
        the id 1C knows the entity by: a customer's id, or the key an order was saved under."""
        saved = await self.write(job)
        if job.entity == "customer":
            return _text(saved.get("customer_id"))
        return _key(job)

    async def write(self, job: DeliveryJob) -> dict[str, Any]:
        """``deliver``, returning 1C's answer for the id map: ``SavedOrder`` (``number``) or
        ``SavedCustomer`` (``customer_id``), and ``created``."""
        if job.entity not in WRITES:
            allowed = ", ".join(sorted(WRITES))
            raise PermanentError(f"1C takes {allowed}; route {job.entity!r} changes elsewhere")
        logical, parameter = WRITES[job.entity]
        if not self.service.declares(logical):
            raise ConfigError(
                f"the 1C service declares no {logical} ({self.declaration.source}): route"
                f" {job.entity} changes elsewhere, or declare it"
            )
        text = document_text(document_of(job))
        params = {
            "operation_id": operation_id(job.operation_key, text),
            # 1C finds an order by the bridge's external id, else by its own id (CONTRACT.md).
            "external_id": _key(job),
            parameter: text,
        }
        return await self._request(logical, params, ledger=False)

    # -- backfill: listing orders and customers (listing.py) ----------------------------

    def lists(self, entity: str) -> bool:
        """Whether 1C publishes the listing of ``entity`` (``OnecListing.lists``)."""
        return self._listing.lists(entity)

    async def list_entities(self, entity: str, since: date | None, cursor: str | None) -> ListPage:
        """A page of ListOrders / ListCustomers (``OnecListing.page``)."""
        return await self._listing.page(entity, since, cursor)


_text = answers.text


class OnecType:
    """Entry-point object for ``type: onec``."""

    options_model: type[OnecOptions] = OnecOptions

    def create(self, name: str, system: SystemSettings, options: OnecOptions) -> OnecConnector:
        """A 1C connector for system ``name``."""
        return OnecConnector(name, options, system)

    def create_emulator(
        self, name: str, system: SystemSettings, options: OnecOptions
    ) -> OnecEmulator | DescribedEmulator:
        """The sandbox 1C, listening exactly where the options point, with their names and
        credentials (so the connector works against it unchanged): the reference contract,
        or the service ``options.emulator`` describes (a retailer's own, in examples/onec/)."""
        where = urlsplit(options.endpoint())
        marker = "/ws/" if options.transport == "soap" else "/hs/"
        publication = where.path.split(marker, 1)[0].strip("/") or "base"
        host, port = where.hostname or "127.0.0.1", where.port or 80
        username, password = options.username, options.password.get_secret_value()
        if options.emulator is not None:
            described = Path(options.emulator)
            if not described.is_absolute():
                described = system.config_dir / described
            return DescribedEmulator(
                described,
                host=host,
                port=port,
                publication=publication,
                username=username,
                password=password,
            )
        return OnecEmulator(
            host=host,
            port=port,
            publication=publication,
            naming=options.operations,
            username=username,
            password=password,
        )


ONEC = OnecType()


def _key(job: DeliveryJob) -> str:
    """The key an order or customer is saved under in 1C (CONTRACT.md: 1C finds it by the
    bridge's external id, else by its own id): 1C's own id of one that came from 1C, the id
    the id map has from an earlier save (one that reached 1C by another route: Bitrix's site
    order, later changed in RetailCRM, is still ``bitrix-7``; a customer is found by 1C's
    customer id, whatever their phone is now), else the bridge's ``<source>-<id>``."""
    return job.target_ref or job.mapped_id or job.external_id
