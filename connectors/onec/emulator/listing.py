"""Pages of the emulated infobase's orders and customers in creation order (ListOrders,
ListCustomers), with the opaque cursor that carries a listing from one page to the next.

Plain functions without locking: ``OnecLedger`` (ledger.py) checks the parameters with
``check_listing`` outside its lock and calls ``page`` under it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from connectors.onec.contract import LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX
from connectors.onec.emulator.checks import check_count, check_moment, invalid, is_blank


class Created(Protocol):
    """A document that knows when it was made: ``seq`` counts creations, 1, 2, 3…"""

    @property
    def seq(self) -> int:
        """Its place among the listing's documents in the order they were made."""
        ...

    @property
    def created(self) -> datetime:
        """When it was made, by the infobase's clock (UTC)."""
        ...


_D = TypeVar("_D", bound=Created)


@dataclass(frozen=True, slots=True)
class DocumentList:
    """The result of list_orders / list_customers: ``OrderList`` / ``CustomerList``."""

    items: tuple[Any, ...]  # OrderDocument or CustomerDocument, as get_order/get_customer
    next: str | None  # the cursor of the next page; None on the last one
    total: int  # how many documents match created_from, on every page


@dataclass(frozen=True, slots=True)
class Query:
    """Checked parameters of one page: its listing, the filter, the cursor, the size."""

    listing: str  # "orders" or "customers": a cursor of one is refused by the other
    since: datetime | None
    after: str | None
    limit: int


def check_listing(listing: str, created_from: object, after: object, limit: object) -> Query:
    """The parameters of ListOrders / ListCustomers, each failure ``invalid_request``."""
    # Blank counts as absent: 1C's XDTO writes an unset optional value as an empty element.
    since = None if is_blank(created_from) else check_moment(created_from, "created_from")
    cursor = None if is_blank(after) else after
    if cursor is not None and not isinstance(cursor, str):
        raise invalid("after", "a cursor as text, the Next of the page before")
    size = check_count(LIST_LIMIT_DEFAULT if limit is None else limit, "limit", 1, LIST_LIMIT_MAX)
    return Query(listing, since, cursor, size)


def page(query: Query, documents: Iterable[_D]) -> tuple[list[_D], str | None, int]:
    """The documents of one page, the cursor after it (None: the last) and the total.

    ``documents`` come in creation order. A listing walks them by ``seq``, which only
    grows: a document made while a listing runs comes after every one already listed, so
    nothing is skipped and a page boundary never moves (documents are never deleted here).
    """
    every = list(documents)
    after = _seq_of(query, max((d.seq for d in every), default=0))
    matching = [d for d in every if query.since is None or d.created >= query.since]
    rest = [d for d in matching if d.seq > after]
    chosen = rest[: query.limit]
    more = len(rest) > len(chosen)
    return chosen, _cursor(query.listing, chosen[-1].seq) if more else None, len(matching)


def _cursor(listing: str, seq: int) -> str:
    # Decision: the cursor names the last document listed by its place in creation order.
    return f"{listing}.{seq}"


def _seq_of(query: Query, newest: int) -> int:
    if query.after is None:
        return 0
    match = re.fullmatch(rf"{query.listing}\.(\d{{1,18}})", query.after.strip())
    # A cursor past the newest document was never given by this listing.
    if match is None or int(match.group(1)) > newest:
        raise invalid("after", f"{query.after!r} is not a cursor this listing gave")
    return int(match.group(1))
