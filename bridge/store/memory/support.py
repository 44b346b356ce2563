"""What support reads, and replay, in memory (``bridge.store.sqlite.support``/``replay``)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.errors import NotFound
from bridge.store import listing
from bridge.store.memory.log import EventRow, Log, State, from_json
from bridge.store.records import (
    EventDetail,
    EventFilter,
    EventRecord,
    QueueDepth,
    ReplayResult,
    Status,
    delivery_ref,
    event_ref,
)
from bridge.store.refs import parse_ref

_REPLAYABLE = (Status.DEAD, Status.DONE)
_QUEUED = (Status.PENDING, Status.IN_FLIGHT, Status.RETRY, Status.DEAD)
Chosen = dict[int, None]


def _listed(state: State, row: EventRow, flt: EventFilter) -> bool:
    """Whether ``bridge events list``'s filter keeps an event."""
    if flt.target is not None:
        mine = [state.deliveries[d] for d in row.deliveries]
        if not any(
            d.target == flt.target and (flt.status is None or d.status == flt.status) for d in mine
        ):
            return False
    elif flt.status is not None and row.status != flt.status:
        return False
    return (
        (flt.source is None or row.source == flt.source)
        and (flt.since is None or row.received_at >= flt.since)
        and (flt.until is None or row.received_at < flt.until)
    )


def _newest_first(row: EventRow) -> tuple[float, int]:
    return (-row.received_at, -row.id)


def _choose_delivery(state: State, ref: str, chosen: Chosen) -> str | None:
    did = parse_ref(ref, "dlv")
    row = state.deliveries.get(did)
    if row is None:
        return "not found"
    if row.status not in _REPLAYABLE:
        return f"is {row.status}: already queued"
    chosen[did] = None
    return None


def _choose_event(state: State, ref: str, chosen: Chosen) -> str | None:
    event = state.events.get(parse_ref(ref, "evt"))
    if event is None:
        return "not found"
    if event.status is Status.REJECTED:
        return "is rejected: its body could not be parsed, so it has no deliveries"
    rows = [state.deliveries[d] for d in event.deliveries]
    # An event replays its dead deliveries; if none is dead, all its finished ones.
    dead = [r.id for r in rows if r.status is Status.DEAD]
    picked = dead or [r.id for r in rows if r.status is Status.DONE]
    chosen.update(dict.fromkeys(picked))
    if not rows:
        return "has no deliveries (no route matched it)"
    return None if picked else "its deliveries are already queued"


def _choose_filtered(state: State, flt: EventFilter, chosen: Chosen) -> None:
    status = flt.status or Status.DEAD
    found = [
        did
        for did, d in sorted(state.deliveries.items())
        if d.status == status
        and (flt.target is None or d.target == flt.target)
        and (flt.source is None or d.source == flt.source)
        and (flt.since is None or d.created_at >= flt.since)
        and (flt.until is None or d.created_at < flt.until)
    ]
    chosen.update(dict.fromkeys(found[: flt.limit]))


def select_for_replay(
    state: State, ids: Sequence[str], flt: EventFilter | None
) -> tuple[list[int], dict[str, str]]:
    """Delivery ids a replay would requeue, and why the others were skipped."""
    chosen: Chosen = {}
    skipped: dict[str, str] = {}
    for ref in ids:
        choose = _choose_delivery if ref.startswith("dlv_") else _choose_event
        reason = choose(state, ref, chosen)
        if reason is not None:
            skipped[ref] = reason
    if flt is not None:
        _choose_filtered(state, flt, chosen)
    return list(chosen), skipped


def _oldest(ages: list[float | None]) -> float | None:
    return min((a for a in ages if a is not None), default=None)


class MemorySupport(Log):
    """Reads for support, the admin API and the metrics; and replay."""

    async def list_events(self, flt: EventFilter, after: str | None = None) -> list[EventRecord]:
        """One page of events, newest received first (the id breaking ties), without
        payloads; ``after`` the last event of the page before (``bridge.store.listing``)."""
        state = await self._turn()
        key: tuple[float, int] | None = None
        if after is not None:
            last = state.events.get(parse_ref(after, "evt"))
            if last is None:
                raise NotFound(listing.gone_message(after))
            key = (last.received_at, last.id)
        found: list[EventRecord] = []
        for row in sorted(state.events.values(), key=_newest_first):
            if len(found) >= flt.limit:
                break
            if (key is None or (row.received_at, row.id) < key) and _listed(state, row, flt):
                found.append(self._event_record(row, None, self._targets_of(row)))
        return found

    async def get_event(self, event_id: str) -> EventDetail:
        """An event, its deliveries and their history; raises NotFound."""
        state = await self._turn()
        eid = parse_ref(event_id, "evt")
        row = state.events.get(eid)
        if row is None:
            raise NotFound(f"no event {event_ref(eid)}")
        payload = row.payload if row.status is Status.REJECTED else from_json(row.payload)
        deliveries = [self._delivery_record(d) for d in row.deliveries]
        mine = {event_ref(eid)} | {d.id for d in deliveries}
        history = [h for h in state.history if h.event_id in mine or h.delivery_id in mine]
        event = self._event_record(row, payload, tuple(d.target for d in deliveries))
        return EventDetail(event, deliveries, history)

    async def replay(
        self, ids: Sequence[str], flt: EventFilter | None, actor: str, dry_run: bool
    ) -> ReplayResult:
        """Requeue deliveries by id (dead or done) or by filter; history says who did it."""
        state = await self._turn()
        now = self._clock()
        chosen, skipped = select_for_replay(state, ids, flt)
        for did in [] if dry_run else chosen:
            row = state.deliveries[did]
            # dead|done -> pending by a replay: attempts restart, a new generation gives
            # the replay its own operation key.
            row.status, row.due_at, row.attempts = Status.PENDING, now, 0
            row.generation += 1
            row.last_error_class = row.last_error = None
            row.updated_at = now
            self._history(
                "replayed", did, None, at=now, outcome=str(Status.PENDING),
                message="requeued by replay", actor=actor,
            )  # fmt: skip
            self._refresh_events(did, now)
        return ReplayResult([delivery_ref(d) for d in chosen], skipped)

    async def queue_depth(self) -> list[QueueDepth]:
        """Waiting, in-flight and dead deliveries per target and status."""
        state = await self._turn()
        cells: dict[tuple[str, str], list[float | None]] = {}
        for row in state.deliveries.values():
            if row.status in _QUEUED:
                waiting = row.status in (Status.PENDING, Status.RETRY)
                cell = cells.setdefault((row.target, str(row.status)), [])
                cell.append(row.created_at if waiting else None)
        return [
            QueueDepth(
                target,
                Status(status),
                len(ages),
                _oldest(ages),
            )
            for (target, status), ages in sorted(cells.items())
        ]

    async def count_events(self) -> dict[Status, int]:
        """How many events are in each status."""
        state = await self._turn()
        counts: dict[Status, int] = {}
        for row in state.events.values():
            counts[row.status] = counts.get(row.status, 0) + 1
        return counts

    async def newest_change(
        self, source: str, entity: str, entity_id: str, *, live: bool = False
    ) -> float | None:
        """When the newest stored change of an entity (``live``: not a backfill's) came."""
        state = await self._turn()
        return max(
            (
                row.received_at
                for row in state.events.values()
                if (row.source, row.entity, row.entity_id) == (source, entity, entity_id)
                and not (live and row.backfill is not None)
            ),
            default=None,
        )
