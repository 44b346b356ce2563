"""Reading RetailCRM's change feeds: where a new feed starts, and one page after a cursor.

retailcrm-api.md §2.5: history records ascend by ``id``, paged by ``filter[sinceId]`` (or
by ``page``, with ``pagination.totalPageCount``); §4.4: the global bonus-operations feed
pages by an opaque ``nextCursor``. Cursors kept in the store:

==========================  =====================================================================
``<id>`` / ``<nextCursor>``  the changes after it are news
``at:<UTC time>[|<next>]``  fixed while RetailCRM did not answer at start-up: the changes made
                            from that time on are news; resolved to an id by the first poll that
                            finds one (history) or walked with (bonus operations)
``skip:<id>``               a walk past old history begun before start positions existed
                            (kept so such a walk still finishes after an upgrade)
==========================  =====================================================================

A new feed starts after its last record (``start_position``): two requests whatever the
size of the history (page 1 tells ``totalPageCount``, the last page holds the last id), not
a walk of every page, which at 10 requests/s (§1.6) would take hours on a large account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bridge.connector import PollResult
from bridge.errors import TransientError
from connectors.retailcrm.client import HistoryFeed, RetailcrmClient
from connectors.retailcrm.history import (
    bonus_operation_events,
    fold_history,
    last_history_id,
    record_id,
)

T = TypeVar("T")
Run = Callable[[Callable[[], T]], Awaitable[T]]
SKIP = "skip:"
AT = "at:"
WIRE_TIME = "%Y-%m-%d %H:%M:%S"  # §1.3: account-local, no offset
# A change stamped up to this long before the start moment is read too: it covers a
# difference between the bridge's clock and RetailCRM's (delivering twice is harmless,
# skipping is not).
MARGIN = timedelta(minutes=1)
# With no ``generatedAt`` to learn the account's zone from, assume the earliest one there is.
EARLIEST_ZONE = timedelta(hours=-12)
HISTORY_FEEDS: dict[str, HistoryFeed] = {
    "orders": "orders",
    "customers": "customers",
    "corporate_customers": "customers-corporate",
}


class FeedReader:
    """The feeds of one account, read through the connector's rate-limited runner."""

    def __init__(self, client: RetailcrmClient, run: Run[Any], page_size: int) -> None:
        self._client = client
        self._run = run
        self._page = page_size
        self._offset: timedelta | None = None  # account time − UTC, once learned

    async def start_position(self, feed: str) -> str:
        """The cursor after the last change ``feed`` holds now."""
        if feed == "bonus_operations":
            return await self._end_of_operations()
        kind = HISTORY_FEEDS[feed]
        first = await self._history(kind, {}, 1)
        last = last_history_id(_records(first), 0)
        pages = int((first.get("pagination") or {}).get("totalPageCount") or 1)
        if pages > 1:
            tail = await self._history(kind, {}, pages)
            last = last_history_id(_records(tail), last)
        return str(last)

    async def _end_of_operations(self) -> str:
        """Walk the bonus-operations feed to its end (it has no page count, §4.4)."""
        after: str | None = None
        while True:
            page = await self._operations_after(after)
            rows = page.get("bonusOperations") or []
            following = (page.get("pagination") or {}).get("nextCursor") or after
            if rows and not following:
                raise TransientError("RetailCRM gave bonus operations without a nextCursor")
            if len(rows) < 100 or following == after:
                return str(following or "")
            after = following

    @staticmethod
    def start_position_at(moment: datetime) -> str:
        """``at:<moment>``: the changes made from ``moment`` (UTC) on are news."""
        return AT + moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        """One page of ``feed`` after ``cursor`` (see the module's table)."""
        if feed == "bonus_operations":
            return await self._poll_operations(cursor)
        if cursor is not None and cursor.startswith(AT):
            return await self._resolve(feed, cursor)
        skipping = cursor is None or cursor.startswith(SKIP)
        since = int(cursor.removeprefix(SKIP)) if cursor else None
        filters = {} if since is None else {"sinceId": since}
        page = await self._history(HISTORY_FEEDS[feed], filters, 1)
        records = _records(page)
        pagination = page.get("pagination") or {}
        more = bool(records) and int(pagination.get("totalPageCount") or 1) > int(
            pagination.get("currentPage") or 1
        )
        last = last_history_id(records, since or 0)
        if skipping:
            return PollResult([], f"{SKIP}{last}" if more else str(last), more)
        return PollResult(fold_history(feed, records), str(last), more)

    async def _resolve(self, feed: str, cursor: str) -> PollResult:
        """An ``at:`` cursor: the first record from that time on, by ``filter[startDate]``
        (§2.5); the feed then goes on from just before it by ``sinceId``."""
        start = await self._local_start(cursor.removeprefix(AT).partition("|")[0])
        page = await self._history(HISTORY_FEEDS[feed], {"startDate": start}, 1)
        ids = [record_id(r) for r in _records(page)]
        if not ids:
            return PollResult([], cursor, False)  # nothing new yet
        return PollResult([], str(min(ids) - 1), True)

    async def _poll_operations(self, cursor: str | None) -> PollResult:
        """The global bonus-operations feed (§4.4), paged by its opaque ``nextCursor``."""
        since: str | None = None  # rows created before it (account time) are not news
        if cursor is not None and cursor.startswith(AT):
            moment, _, after_text = cursor.removeprefix(AT).partition("|")
            since = await self._local_start(moment)
            skipping, after = True, after_text or None
        else:
            skipping = cursor is None or cursor.startswith(SKIP)
            after = cursor.removeprefix(SKIP) if cursor else None
        page = await self._operations_after(after)
        rows = [r for r in page.get("bonusOperations") or [] if isinstance(r, Mapping)]
        following = (page.get("pagination") or {}).get("nextCursor") or after or ""
        more = len(rows) >= 100 and bool(following) and following != after
        if since is not None:
            # Rows from the start moment on are news; the walk ends at the feed's end.
            events = bonus_operation_events(
                [r for r in rows if str(r.get("createdAt") or "") >= since], after
            )
            if not following and rows:
                return PollResult(events, str(cursor), False)
            head = str(cursor).partition("|")[0]
            return PollResult(events, f"{head}|{following}" if more else str(following), more)
        if skipping:
            if not following and rows:
                # No cursor to stand on after rows: stay in the walk rather than fall back
                # to the start, which would raise every operation already there.
                return PollResult([], cursor or SKIP, False)
            return PollResult([], f"{SKIP}{following}" if more else str(following), more)
        return PollResult(bonus_operation_events(rows, after), str(following), more)

    async def _operations_after(self, after: str | None) -> dict[str, Any]:
        answer: dict[str, Any] = await self._run(
            lambda: self._client.bonus_operations(cursor=after or None, limit=100)
        )
        return answer

    async def _history(
        self, kind: HistoryFeed, filters: Mapping[str, Any], page: int
    ) -> dict[str, Any]:
        answer: dict[str, Any] = await self._run(
            lambda: self._client.history(kind, filters, self._page, page)
        )
        if self._offset is None:
            self._offset = account_offset(answer.get("generatedAt"), datetime.now(UTC))
        return answer

    async def _local_start(self, moment_text: str) -> str:
        """The account-local time (§1.3) to read from for a start moment in UTC."""
        moment = datetime.strptime(moment_text, "%Y-%m-%dT%H:%M:%SZ")
        if self._offset is None:
            await self._history("orders", {"sinceId": 2**31}, 1)  # learns the offset
        offset = EARLIEST_ZONE if self._offset is None else self._offset
        return (moment + offset - MARGIN).strftime(WIRE_TIME)


def account_offset(generated_at: Any, now: datetime) -> timedelta | None:
    """The account's zone as RetailCRM's clock shows it: ``generatedAt`` (account time, no
    offset, §2.5) less UTC now, to the nearest quarter hour; None if it cannot be read."""
    try:
        local = datetime.strptime(str(generated_at), WIRE_TIME)
    except ValueError:
        return None
    quarter = timedelta(minutes=15)
    difference = local - now.astimezone(UTC).replace(tzinfo=None)
    return round(difference / quarter) * quarter


def _records(page: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [r for r in page.get("history") or [] if isinstance(r, Mapping)]
