"""``bridge backfill`` from 1C: ListOrders / ListCustomers (optional in CONTRACT.md, or any
operation a declaration names for list_orders / list_customers), a page at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, date, datetime, time
from typing import Any, Protocol

from bridge.connector import ListedEntity, ListPage
from bridge.errors import ConfigError, DeliveryError, PermanentError
from connectors.onec import answers
from connectors.onec.answers import read_answer
from connectors.onec.client import HttpServiceClient
from connectors.onec.contract import OPERATIONS
from connectors.onec.declared.calls import DeclaredService
from connectors.onec.errors import is_unpublished
from connectors.onec.models import LISTS, customer_state, feed_id, order_state

# CreatedFrom of the page start() asks for to learn whether the HTTP service has a listing:
# a moment no document has reached, so 1C answers an empty page for the price of a look-up.
_NOTHING_YET = datetime(2999, 1, 1, tzinfo=UTC)


class Request(Protocol):
    """The connector's bounded call of a capability (not a ledger call)."""

    def __call__(
        self, logical: str, params: dict[str, Any], *, ledger: bool
    ) -> Awaitable[dict[str, Any]]:
        """Call ``logical`` with ``params``."""
        ...


class OnecListing:
    """The listings of one 1C service, and which of them it lacks."""

    def __init__(self, request: Request, service: DeclaredService, page_size: int) -> None:
        self._request = request
        self._service = service
        self._page_size = page_size
        # Listings the service lacks: not declared, or a 404 from the HTTP service.
        self._unpublished = {logical for logical in LISTS.values() if not service.declares(logical)}

    def lists(self, entity: str) -> bool:
        """Whether 1C publishes the listing of ``entity``: known from the declaration and the
        WSDL, or for the HTTP service from what ``learn`` asked; True while 1C has not been
        reached (the first page then tells)."""
        logical = LISTS.get(entity)
        if logical is None or logical in self._unpublished:
            return False
        return self._service.publishes(logical) is not False

    async def page(self, entity: str, since: date | None, cursor: str | None) -> ListPage:
        """The page after ``cursor`` of the documents created on or after ``since`` (from
        00:00 UTC), oldest first, each named as the change feed names it and with the state
        ``read_entity`` gives."""
        logical = LISTS.get(entity)
        if logical is None:
            listed = " and ".join(f"{name}s" for name in sorted(LISTS))
            raise PermanentError(f"1C lists {listed}, not {entity!r}")
        # CONTRACT.md "Conventions": a day starts at 00:00 UTC.
        start = None if since is None else datetime.combine(since, time.min, tzinfo=UTC)
        params = {"created_from": start, "after": cursor, "limit": self._page_size}
        try:
            record = await self._request(logical, params, ledger=False)
        except DeliveryError as exc:
            if not is_unpublished(exc.__cause__):
                raise
            self._unpublished.add(logical)
            declared = self._service.declaration.calls(logical)
            label = declared.label if declared else logical
            raise ConfigError(
                f"1C's HTTP service has no {label} ({OPERATIONS[logical].soap}): publish it to"
                f" backfill {entity}s (CONTRACT.md)"
            ) from exc
        soap, zone = OPERATIONS[logical].soap, self._service.declaration.timezone
        states = [
            order_state(item, soap, zone) if entity == "order" else customer_state(item, soap, zone)
            for item in record.get("items") or []
        ]
        return ListPage(
            [ListedEntity(feed_id(entity, state), state) for state in states],
            cursor=answers.text(record.get("next")),
            total=read_answer(logical, answers.listing_total, record),
        )

    async def learn(self) -> None:
        """The HTTP service has no schema to say whether it lists: ask each declared listing
        for an empty page, so ``lists`` answers before a backfill starts. Only a 404 counts
        (the service lacks the template); any other failure leaves it to the first page."""
        if not isinstance(self._service.client, HttpServiceClient):
            return

        async def learn(logical: str) -> None:
            try:
                params = {"created_from": _NOTHING_YET, "limit": 1}
                await self._request(logical, params, ledger=False)
            except DeliveryError as exc:
                if is_unpublished(exc.__cause__):
                    self._unpublished.add(logical)

        wanted = [logical for logical in LISTS.values() if logical not in self._unpublished]
        await asyncio.gather(*(learn(logical) for logical in wanted))
