"""The RetailCRM connector: history polling (``feeds.py``), trigger calls, entity reads,
idempotent order and customer writes (``writes.py``), and ``bridge check --probe``.

Every call goes through one rate limiter per API key (retailcrm-api.md §1.6: 10 requests/s,
503 beyond) and runs the blocking client in this system's thread pool, bounded by
``delivery.timeout_seconds``.
"""

from __future__ import annotations

import asyncio
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
from connectors.retailcrm.errors import classify, is_not_found, merged_into
from connectors.retailcrm.feeds import FeedReader
from connectors.retailcrm.master import RetailcrmMaster
from connectors.retailcrm.options import RetailcrmOptions
from connectors.retailcrm.ratelimit import limiter_for
from connectors.retailcrm.webhooks import parse_trigger
from connectors.retailcrm.writes import MERGE_DEPTH, RetailcrmWriter

T = TypeVar("T")
LISTS = {"order": "orders", "customer": "customers"}  # entity -> the list's key (§2.1, §3.1)
READS = frozenset({"order", "customer", "corporate_customer", "loyalty_account"})
LIST_PAGE = 100


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
        self._writer = RetailcrmWriter(self._client, self._run)
        self.master = RetailcrmMaster(self._client, self._run)
        self._feeds = FeedReader(self._client, self._run, options.history_page)
        # The Ledger protocol (bonus.master: retailcrm), answered by the loyalty API.
        self.find_customer = self.master.find_customer
        self.balance = self.master.balance
        self.reserve = self.master.reserve
        self.reservation_ref = self.master.reservation_ref
        self.commit = self.master.commit
        self.release = self.master.release
        self.accrue = self.master.accrue
        self.reverse = self.master.reverse
        self.confirm_code = self.master.confirm_code
        # CardsAtMaster (issue 17) and what RetailCRM cannot do at all (DeclaresCapabilities).
        self.missing = self.master.missing
        self.cards = self.master.cards
        self.card = self.master.card
        self.attach_card = self.master.attach_card
        self.set_card_status = self.master.set_card_status
        self.set_main_card = self.master.set_main_card
        self.move_points = self.master.move_points
        self.profile = self.master.profile
        self.save_profile = self.master.save_profile
        self.register_customer = self.master.register_customer

    async def start(self) -> None:
        """Nothing to open: connections are made on first use."""

    async def close(self) -> None:
        """Stop the worker threads and close pooled connections."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    async def _run(self, fn: Callable[[], T]) -> T:
        """Call the client in a worker, within the key's rate limit and the timeout."""
        # The turn ends in the worker as the answer comes (ratelimit.py: the window rule).
        turn = await self._limiter.begin()
        future = asyncio.get_running_loop().run_in_executor(self._pool, turn.around(fn))
        future.add_done_callback(lambda _: turn.end())  # never run (the pool was shut down)
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

    def reads(self, entity: str) -> bool:
        """Orders, customers, corporate customers and loyalty accounts are read by internal
        id, so None from a read means RetailCRM holds none (deleted; a merge is followed)."""
        return entity in READS

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

    # -- writes (writes.py) --------------------------------------------------------------

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Create or edit the entity by ``externalId`` (see ``writes.py``)."""
        return await self._writer.deliver(job)

    def batchable(self, job: DeliveryJob) -> bool:
        """Whether ``job`` may ride in an upload (see ``writes.py``)."""
        return self._writer.batchable(job)

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        """One ``/upload`` per kind (see ``writes.py``)."""
        return await self._writer.deliver_batch(jobs)


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
