"""The RetailCRM connector: history polling, trigger calls, idempotent order and customer
writes (batched through ``/upload``), and ``bridge check --probe``.

Every call goes through one rate limiter per API key (retailcrm-api.md §1.6: 10 requests/s,
503 beyond) and runs the blocking client in this system's thread pool, bounded by
``delivery.timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from bridge.connector import DeliveryJob, ListedEntity, ListPage, PollResult, WebhookRequest
from bridge.errors import DeliveryError, PermanentError, RateLimited, TransientError
from bridge.settings import SystemSettings
from bridge.store.records import InboundEvent
from connectors.retailcrm.client import UPLOAD_MAX, RetailcrmClient, RetailcrmError
from connectors.retailcrm.corporate import read_corporate, with_contact_person
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.errors import PartialUpload, classify, is_not_found, merged_into
from connectors.retailcrm.feeds import FeedReader
from connectors.retailcrm.loyalty import RetailcrmLoyalty
from connectors.retailcrm.options import RetailcrmOptions
from connectors.retailcrm.ratelimit import limiter_for
from connectors.retailcrm.trigger import parse_trigger

T = TypeVar("T")
LISTS = {"order": "orders", "customer": "customers"}  # entity -> the list's key (§2.1, §3.1)
LIST_PAGE = 100
MERGE_DEPTH = 5  # combinedTo followed at most this far (a survivor merged again later)


class RetailcrmConnector:
    """One RetailCRM account."""

    feeds: tuple[str, ...] = ("orders", "customers", "bonus_operations")
    batch_size = UPLOAD_MAX
    # As the bonus master, RetailCRM cancels an order's bonus operations itself when the
    # order is cancelled (retailcrm-api.md §4.3 steps 5-6): the bridge reverses nothing.
    reverses_returns = True

    def __init__(self, name: str, options: RetailcrmOptions, system: SystemSettings) -> None:
        self.name = name
        self.options = options
        self.poll_interval = options.poll_interval
        if options.corporate_customers:
            self.feeds = (*self.feeds, "corporate_customers")
        key = options.api_key.get_secret_value()
        self._timeout = system.delivery.timeout_seconds
        workers = system.delivery.concurrency + len(self.feeds)
        self._client = RetailcrmClient(
            options.url, key, timeout=self._timeout, pool_size=workers, site=options.site
        )
        self._limiter = limiter_for(key, options.rate_limit)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"crm-{name}")
        self._refused: set[tuple[str, str]] = set()  # (entity, externalId) an upload refused
        self._written: set[tuple[str, str]] = set()  # (entity, externalId) known to exist
        self.loyalty = RetailcrmLoyalty(self._client, self._run)
        self._feeds = FeedReader(self._client, self._run, options.history_page)
        # The Ledger protocol (bonus.master: retailcrm), answered by the loyalty API.
        self.find_customer = self.loyalty.find_customer
        self.balance = self.loyalty.balance
        self.reserve = self.loyalty.reserve
        self.reservation_ref = self.loyalty.reservation_ref
        self.commit = self.loyalty.commit
        self.release = self.loyalty.release
        self.accrue = self.loyalty.accrue
        self.reverse = self.loyalty.reverse
        self.confirm_code = self.loyalty.confirm_code

    async def start(self) -> None:
        """Nothing to open: connections are made on first use."""

    async def close(self) -> None:
        """Stop the worker threads and close pooled connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def _run(self, fn: Callable[[], T]) -> T:
        """Call the client in a worker, within the key's rate limit and the timeout."""
        await self._limiter.acquire()
        future = asyncio.get_running_loop().run_in_executor(self._pool, fn)
        try:
            return await asyncio.wait_for(future, self._timeout + 0.5)
        except TimeoutError as exc:
            raise TransientError(f"RetailCRM did not answer within {self._timeout:g} s") from exc
        except RetailcrmError as exc:
            error = classify(exc)
            if isinstance(error, RateLimited):
                # Every caller on this key backs off, not only the one that hit the limit.
                self._limiter.hold(error.retry_after or 1.0)
            raise error from exc

    async def probe(self) -> str:
        """``bridge check --probe``: the key works and what it may reach."""
        creds = await self._run(self._client.api_credentials)
        access = creds.get("siteAccess", "unknown")
        return f"RetailCRM at {self.options.url} (site access: {access})"

    # -- change capture ------------------------------------------------------------------

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
        """A trigger call: stored under ``trigger``; the core then wakes the poller."""
        return parse_trigger(request)

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        """One page of ``feed`` after the cursor (``feeds.py`` tells the cursors apart).

        With no cursor at all (a caller that did not fix a start position) the feed is
        walked to its end without raising events (as the Bitrix module does on install,
        §7.2), keeping ``skip:<id>`` as its cursor so a restart resumes the walk.
        """
        return await self._feeds.poll(feed, cursor)

    async def start_position(self, feed: str) -> str:
        """Where a new feed starts: after the last change RetailCRM holds now."""
        return await self._feeds.start_position(feed)

    def start_position_at(self, feed: str, moment: datetime) -> str:
        """Where a new feed starts when RetailCRM cannot be asked: from ``moment`` on."""
        return self._feeds.start_position_at(moment)

    async def read_entity(
        self, entity: str, entity_id: str, *, depth: int = 0
    ) -> dict[str, Any] | None:
        """The full order, customer or loyalty account by internal id (history gives only
        changes, §2.5); None once it is gone, or for entities read elsewhere."""
        client = self._client
        reads: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
            "order": (lambda: client.order(entity_id, by="id"), "order"),
            "customer": (lambda: client.customer(entity_id, by="id"), "customer"),
            "loyalty_account": (lambda: client.loyalty_account(int(entity_id)), "loyaltyAccount"),
        }
        if entity == "corporate_customer" and entity_id.isdigit():
            return await read_corporate(self._client, self._run, entity_id)
        if entity not in reads or not entity_id.isdigit():
            return None
        call, key = reads[entity]
        try:
            answer = await self._run(call)
        except PermanentError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, RetailcrmError) and is_not_found(cause)):
                raise
            # §1.4: a customer merged away answers 404 with the survivor as `combinedTo`;
            # its state is the survivor's now.
            survivor = merged_into(cause)
            if survivor is None or survivor == entity_id or depth >= MERGE_DEPTH:
                return None
            return await self.read_entity(entity, survivor, depth=depth + 1)
        found = answer.get(key)
        if not isinstance(found, Mapping):
            return None
        return with_contact_person(dict(found)) if entity == "order" else dict(found)

    # -- backfill ------------------------------------------------------------------------

    def lists(self, entity: str) -> bool:
        """Orders and customers can be listed (``GET /orders``, ``GET /customers``)."""
        return entity in LISTS

    async def list_entities(self, entity: str, since: date | None, cursor: str | None) -> ListPage:
        """One page of ``GET /orders`` or ``/customers`` (§2.1, §3.1): ``filter[createdAtFrom]``
        for ``since``, ``limit=100`` (the largest size the reference confirms, §1.7) and
        ``page`` as the cursor, from ``pagination.totalPageCount``.

        The reference does not say how lists are sorted. Entities created while a backfill
        runs either land after the pages already listed or push earlier ones onto a later
        page, where they are listed twice (the store keeps one); none is skipped. Only an
        entity deleted mid-way could move one across a page boundary unlisted.
        """
        plural = LISTS[entity]
        page = int(cursor) if cursor and cursor.isdigit() else 1
        filters = {"createdAtFrom": since.isoformat()} if since else {}
        list_page = self._client.orders if entity == "order" else self._client.customers
        answer = await self._run(lambda: list_page(filters, LIST_PAGE, page))
        found = [e for e in answer.get(plural) or [] if isinstance(e, Mapping) and "id" in e]
        pagination = answer.get("pagination") or {}
        pages = int(pagination.get("totalPageCount") or 0)
        total = pagination.get("totalCount")
        shaped = [with_contact_person(dict(e)) if entity == "order" else dict(e) for e in found]
        return ListPage(
            [ListedEntity(str(e["id"]), e) for e in shaped],
            str(page + 1) if page < pages and found else None,
            int(total) if isinstance(total, int) else None,
        )

    # -- writes --------------------------------------------------------------------------

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Create or edit the entity by ``externalId`` (a retry never makes a second one);
        an entity that started in RetailCRM (``job.target_ref``) is edited by its own id.
        Returns RetailCRM's id of the entity when its answer gives it."""
        document = document_of(job)
        if job.target_ref is not None:
            return await self._edit_own(job.entity, job.target_ref, document)
        if job.mapped_id is not None and job.mapped_id.isdigit():
            # Written before: edit that one, whatever its externalId or phone are now (a
            # customer adopted by phone keeps the site's key; the phone may have changed).
            return await self._edit_own(job.entity, job.mapped_id, document)
        own = await self._upsert(job.entity, document)
        self._refused.discard((job.entity, document["externalId"]))
        self._written.add((job.entity, document["externalId"]))
        return own

    def batchable(self, job: DeliveryJob) -> bool:
        """Orders and customers go in uploads, unless an upload refused this one before.

        A whole upload that failed (503, timeout) wrote nothing, so its jobs stay batchable;
        only an entity refused inside a partial upload is retried alone, where an edit or a
        create names the field that is wrong.
        """
        # Customers go alone: before a create, each is looked up by phone (no duplicates).
        if job.entity != "order" or job.target_ref is not None:
            return False
        if job.mapped_id is not None:
            return False
        key = (job.entity, document_of(job)["externalId"])
        # Upload only creates: an entity known to exist (written before) is edited alone.
        return key not in self._refused and key not in self._written

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        """One ``/upload`` per kind (≤ 50 each); an outcome per job: RetailCRM's id of what
        landed (from ``uploadedOrders``, §2.4), or the error."""
        outcome: dict[str, DeliveryError | str | None] = {}
        for entity in ("order", "customer"):
            group = [j for j in jobs if j.entity == entity]
            if group:
                outcome.update(await self._upload(entity, group))
        return [outcome[j.delivery_id] for j in jobs]

    async def _edit_own(self, entity: str, own_id: str, document: dict[str, Any]) -> str:
        """Edit RetailCRM's entity ``own_id`` (``by=id``); its own externalId stays. A
        customer merged away since is edited where it lives now (``combinedTo``, §1.4).
        Returns the id edited."""
        if entity not in ("order", "customer") or not own_id.isdigit():
            raise PermanentError(f"cannot edit RetailCRM {entity} {own_id!r} by id")
        changes = {k: v for k, v in document.items() if k != "externalId"}
        client = self._client
        edit = client.order_edit if entity == "order" else client.customer_edit
        for _ in range(MERGE_DEPTH):
            try:
                await self._run(functools.partial(edit, changes | {"id": int(own_id)}, by="id"))
            except PermanentError as exc:
                survivor = await self._survivor(entity, exc, own_id)
                if survivor is None:
                    raise
                own_id = survivor
            else:
                return own_id
        raise PermanentError(f"RetailCRM {entity} {own_id}: merged more than {MERGE_DEPTH} times")

    async def _survivor(self, entity: str, exc: PermanentError, own_id: str) -> str | None:
        """The customer ``own_id`` was merged into, when an edit of it was ``Not found``:
        its read answers 404 with ``combinedTo`` (§1.4; an edit's answer does not say)."""
        cause = exc.__cause__
        if entity != "customer" or not (isinstance(cause, RetailcrmError) and is_not_found(cause)):
            return None
        try:
            await self._run(lambda: self._client.customer(own_id, by="id"))
        except PermanentError as read_error:
            found = read_error.__cause__
            return merged_into(found) if isinstance(found, RetailcrmError) else None
        return None

    async def _upsert(self, entity: str, document: dict[str, Any]) -> str | None:
        if entity not in ("order", "customer"):
            raise PermanentError(
                f"RetailCRM takes orders and customers; route {entity!r} changes elsewhere"
            )
        client = self._client
        edit, create = (
            (client.order_edit, client.order_create)
            if entity == "order"
            else (client.customer_edit, client.customer_create)
        )
        try:
            answer = await self._run(lambda: edit(document))
        except PermanentError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, RetailcrmError) and is_not_found(cause)):
                raise
            if entity == "customer" and (adopted := await self._adopt_by_phone(document)):
                return adopted
            answer = await self._run(lambda: create(document))
        own = answer.get("id") if isinstance(answer, Mapping) else None
        return None if own is None else str(own)

    async def _adopt_by_phone(self, document: dict[str, Any]) -> str | None:
        """A customer new to the bridge but already in RetailCRM under the same phone is that
        customer, not a second one (PRODUCT 3.3): edit them by id, and give them the
        bridge's externalId only when they have none (a site's own key is kept)."""
        phones = document.get("phones")
        first = phones[0] if isinstance(phones, list) and phones else None
        phone = first.get("number") if isinstance(first, Mapping) else None
        if not isinstance(phone, str) or not phone.strip():
            return None
        try:
            found = await self._run(lambda: self._client.customers_by_phone(phone))
        except ValueError:  # too few digits to search by
            return None
        if len(found) != 1:
            # None: a new customer. Several: which one is ambiguous, and guessing would merge
            # two people's histories; a new customer is the lesser harm (support can merge).
            return None
        own = found[0]
        changes = {k: v for k, v in document.items() if k != "externalId"}
        if not own.get("externalId"):
            changes["externalId"] = document["externalId"]
        changes["id"] = int(own["id"])
        await self._run(lambda: self._client.customer_edit(changes, by="id"))
        return str(own["id"])

    async def _upload(
        self, entity: str, jobs: list[DeliveryJob]
    ) -> dict[str, DeliveryError | str | None]:
        documents = [document_of(j) for j in jobs]
        upload = self._client.orders_upload if entity == "order" else self._client.customers_upload
        try:
            answer = await self._run(lambda: upload(documents))
        except PartialUpload as exc:
            uploaded = _uploaded_ids(exc.uploaded)
            failed = {str(f.get("externalId")) for f in exc.failed if isinstance(f, Mapping)}
            self._refused.update((entity, external_id) for external_id in failed)
            self._written.update((entity, external_id) for external_id in uploaded)
            detail = "; ".join(exc.errors) or str(exc)
            # Only what RetailCRM lists as uploaded is done. The upload's errors are not keyed
            # by entity (§2.4): each refused one is tried again on its own, where an edit or
            # a create names the field; one in neither list is simply tried again.
            return {
                j.delivery_id: uploaded[d["externalId"]]
                if d["externalId"] in uploaded
                else TransientError(f"refused in a batch upload ({detail})")
                if d["externalId"] in failed
                else TransientError("a batch upload did not say what became of it")
                for j, d in zip(jobs, documents, strict=True)
            }
        except DeliveryError as exc:
            return dict.fromkeys((j.delivery_id for j in jobs), exc)
        self._written.update((entity, d["externalId"]) for d in documents)
        key = "uploadedOrders" if entity == "order" else "uploadedCustomers"
        ids = _uploaded_ids(answer.get(key) if isinstance(answer, Mapping) else None)
        return {
            j.delivery_id: ids.get(d["externalId"]) for j, d in zip(jobs, documents, strict=True)
        }


def _uploaded_ids(rows: Any) -> dict[str, str | None]:
    """externalId → RetailCRM's id from an upload's ``uploadedOrders``/``uploadedCustomers``
    (``[{id, externalId}]``, §2.4); the id None where the row does not carry it."""
    found: dict[str, str | None] = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, Mapping) and row.get("externalId") is not None:
            own = row.get("id")
            found[str(row["externalId"])] = None if own is None else str(own)
    return found


def document_of(job: DeliveryJob) -> dict[str, Any]:
    """The RetailCRM document a delivery writes: the route's mapped document, or, for a
    route without a mapping file, the latest change's payload as it stands (then the source
    must send the RetailCRM shape, ``{"document": {...}}`` or the fields themselves). The
    ``externalId`` defaults to ``<source>-<entity id>``, stable across retries and replays.
    """
    if job.document is not None:
        document = dict(job.document)
        document.setdefault("externalId", job.external_id)
        document["externalId"] = str(document["externalId"])
        return document
    payload = job.events[-1].payload
    nested = payload.get("document")
    document = dict(nested if isinstance(nested, Mapping) else payload)
    document.setdefault("externalId", f"{job.source}-{job.entity_id}")
    document["externalId"] = str(document["externalId"])
    return document


class RetailcrmType:
    """Entry-point object for ``type: retailcrm``."""

    options_model: type[RetailcrmOptions] = RetailcrmOptions

    def create(
        self, name: str, system: SystemSettings, options: RetailcrmOptions
    ) -> RetailcrmConnector:
        """A RetailCRM connector for system ``name``."""
        return RetailcrmConnector(name, options, system)

    def create_emulator(
        self, name: str, system: SystemSettings, options: RetailcrmOptions
    ) -> RetailcrmEmulator:
        """The sandbox RetailCRM at the options' URL, accepting the options' key."""
        where = urlsplit(options.url)
        key = options.api_key.get_secret_value()
        keys = {key: "bridge", "sandbox-manager-key-0001": "manager"}
        return RetailcrmEmulator(
            host=where.hostname or "127.0.0.1",
            port=where.port or 80,
            api_keys=keys,
            sites=(options.site,),
            rate_limit=options.rate_limit,
        )


RETAILCRM = RetailcrmType()
