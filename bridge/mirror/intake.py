"""Intake: changes a source reported, routed, stored once, and the lanes woken.

A webhook (``http/hooks.py``), a poll and a backfill page all end the same way: the router
gives each change its targets, the store keeps it durably (a change whose source key it
holds already is found, not stored again), each dropped duplicate is logged, and the lanes
of the targets that got new work are woken. Only the store call differs: a poll stores its
cursor, and a backfill page its listing cursor, in the transaction that stores the changes
(PRODUCT 3.3), so a crash in between reads them again and de-duplication absorbs them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from bridge.logs import get_logger
from bridge.mirror.router import Router
from bridge.store.protocol import Store
from bridge.store.records import Cursor, InboundEvent, NewEvent, Stored

log = get_logger("bridge.intake")

Append = Callable[[Sequence[NewEvent]], Awaitable[list[Stored]]]


@dataclass(frozen=True)
class Received:
    """What one intake stored: each routed change beside the store's answer for it."""

    events: list[NewEvent]
    stored: list[Stored]

    def pairs(self) -> list[tuple[NewEvent, Stored]]:
        """Each change with its event id and whether it was a duplicate."""
        return list(zip(self.events, self.stored, strict=True))

    @property
    def fresh(self) -> list[NewEvent]:
        """The changes stored now (not duplicates)."""
        return [item for item, result in self.pairs() if not result.duplicate]

    @property
    def targets(self) -> set[str]:
        """The targets that got new work."""
        return {t for item in self.fresh for t in item.targets}


class Intake:
    """Route → store → log duplicates → wake, written once for every way changes come in."""

    def __init__(self, store: Store, router: Router, wake: Callable[[set[str]], None]) -> None:
        self._store = store
        self._router = router
        self._wake = wake

    async def receive(self, source: str, events: Sequence[InboundEvent]) -> Received:
        """Store changes a source pushed (a webhook); nothing to store is no store call."""
        new = self._router.route(source, events)
        return await self._take(source, new, self._store.append_events)

    async def receive_polled(
        self, source: str, events: Sequence[InboundEvent], cursor: Cursor
    ) -> Received:
        """Store a poll's changes and the cursor after them, together (an empty poll
        still moves the cursor)."""

        async def append(new: Sequence[NewEvent]) -> list[Stored]:
            return await self._store.append_polled(new, cursor)

        return await self._take(source, self._router.route(source, events), append, always=True)

    async def receive_listed(
        self,
        source: str,
        backfill_id: str,
        events: Sequence[NewEvent],
        cursor: str | None,
        total: int | None,
    ) -> Received:
        """Store a backfill page (its events carry the backfill's targets, not the routes'),
        and the backfill's cursor after it, together."""

        async def append(new: Sequence[NewEvent]) -> list[Stored]:
            return await self._store.append_listed(backfill_id, new, cursor, total)

        return await self._take(source, list(events), append, always=True)

    async def _take(
        self, source: str, new: list[NewEvent], append: Append, *, always: bool = False
    ) -> Received:
        stored = await append(new) if new or always else []
        received = Received(new, stored)
        log_duplicates(source, received)
        targets = received.targets
        if targets:
            self._wake(targets)
        return received


def log_duplicates(source: str, received: Received) -> None:
    """One info line per change dropped because its source key was stored before, so a
    re-sent webhook or a re-read page is visible (grep ``duplicate_dropped``)."""
    for item, result in received.pairs():
        if result.duplicate:
            log.info(
                "duplicate_dropped",
                system=source,
                source_key=item.event.source_key,
                entity=item.event.entity,
                entity_id=item.event.entity_id,
                event_id=result.event_id,
            )
