"""Deliveries out, in memory: claimed under a lease in entity order, finished by one
attempt, released when their holder is gone (``bridge.store.sqlite.claims``)."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.store.memory.log import DeliveryRow, Log, State, from_json
from bridge.store.records import AttemptOutcome, Claimed, Status
from bridge.store.refs import parse_ref

_WAITING = (Status.PENDING, Status.RETRY)
_OPEN = (Status.PENDING, Status.RETRY, Status.IN_FLIGHT)


def _blocked(state: State, row: DeliveryRow) -> bool:
    """An older delivery of the same entity to the same target still waits or flies."""
    older = state.by_entity[(row.target, row.entity_key)]
    return any(d < row.id and state.deliveries[d].status in _OPEN for d in older)


def due_deliveries(state: State, target: str, now: float, limit: int) -> list[DeliveryRow]:
    """What a claim takes: due, not behind an older one, live before backfilled."""
    due = [
        row
        for row in state.deliveries.values()
        if row.target == target and row.status in _WAITING and row.due_at <= now
    ]
    free = [row for row in due if not _blocked(state, row)]
    return sorted(free, key=lambda r: (r.priority, r.due_at, r.id))[:limit]


class MemoryClaims(Log):
    """Claiming, finishing and releasing deliveries."""

    async def claim_due(self, target: str, owner: str, limit: int) -> list[Claimed]:
        """Lease due deliveries of ``target`` with the events each carries."""
        state = await self._turn()
        now = self._clock()
        claimed = []
        for row in due_deliveries(state, target, now, limit):
            # pending|retry -> in_flight: the lease says who holds it and until when.
            row.status, row.lease_owner = Status.IN_FLIGHT, owner
            row.lease_until, row.updated_at = now + self.lease_seconds, now
            row.attempts += 1
            self._refresh_events(row.id, now)
            events = [
                self._event_record(state.events[e], from_json(state.events[e].payload), ())
                for e in row.events
            ]
            claimed.append(Claimed(self._delivery_record(row.id), events, row.attempts))
        return claimed

    async def finish_attempt(self, claimed: Claimed, owner: str, outcome: AttemptOutcome) -> bool:
        """Record the attempt and move the delivery on; False if the lease was lost."""
        state = await self._turn()
        return self._finish(state, claimed, owner, outcome, self._clock())

    async def finish_attempts(
        self, finished: Sequence[tuple[Claimed, AttemptOutcome]], owner: str
    ) -> list[bool]:
        """Several attempts in one turn: each as :meth:`finish_attempt`."""
        if not finished:
            return []
        state = await self._turn()
        now = self._clock()
        return [self._finish(state, claimed, owner, outcome, now) for claimed, outcome in finished]

    def _finish(
        self, state: State, claimed: Claimed, owner: str, outcome: AttemptOutcome, now: float
    ) -> bool:
        did = parse_ref(claimed.delivery.id, "dlv")
        row = state.deliveries.get(did)
        held = (
            row is not None
            and row.status is Status.IN_FLIGHT
            and row.lease_owner == owner
            and row.attempts == claimed.attempt
        )
        message = outcome.message
        if row is not None and held:
            # in_flight -> done | retry | dead, only while this very attempt holds the lease.
            row.status = Status(outcome.status)
            row.due_at = row.due_at if outcome.due_at is None else outcome.due_at
            row.lease_owner = row.lease_until = None
            row.last_error_class, row.last_error = outcome.error_class, outcome.message
            row.updated_at = now
        else:
            message = f"{message or ''} (lease lost before the result was recorded)".strip()
        self._history(
            "attempt", did, None, at=now, attempt=claimed.attempt, outcome=str(outcome.status),
            error_class=outcome.error_class, message=message, duration_ms=outcome.duration_ms,
            actor=owner,
        )  # fmt: skip
        if row is not None and held:
            self._refresh_events(did, now)
            if outcome.written is not None:
                key = (row.target, row.source, row.entity, row.entity_id)
                state.written[key] = (outcome.written, now)
        return held

    async def extend_leases(self, claimed: Sequence[Claimed], owner: str) -> None:
        """Push the leases ``owner`` still holds a full period out."""
        state = await self._turn()
        until = self._clock() + self.lease_seconds
        for one in claimed:
            row = state.deliveries.get(parse_ref(one.delivery.id, "dlv"))
            if row is not None and row.status is Status.IN_FLIGHT and row.lease_owner == owner:
                row.lease_until = until

    async def release_expired_leases(self) -> int:
        """Return in-flight deliveries whose lease ran out to ``pending``."""
        await self._turn()
        return self._release_leases(None)

    async def recover_leases(self, owner: str) -> int:
        """At start-up: serving, every lease not ours is a gone run's; else expired ones."""
        await self._turn()
        return self._release_leases(owner if self._serving else None)

    def _release_leases(self, owner: str | None) -> int:
        now = self._clock()
        gone = [
            row
            for _, row in sorted(self._state.deliveries.items())
            if row.status is Status.IN_FLIGHT
            and (
                (row.lease_until is not None and row.lease_until < now)
                or (owner is not None and row.lease_owner != owner)
            )
        ]
        for row in gone:
            held_by = row.lease_owner
            # in_flight -> pending when the holder died (its lease ran out, or it is gone).
            row.status, row.lease_owner, row.lease_until = Status.PENDING, None, None
            row.due_at = row.updated_at = now
            self._history(
                "lease_expired", row.id, None, at=now, attempt=row.attempts,
                outcome=str(Status.PENDING), error_class="lease_expired",
                message=f"holder {held_by} stopped before finishing; back to pending",
                actor=owner,
            )  # fmt: skip
            self._refresh_events(row.id, now)
        return len(gone)

    async def next_due_at(self, target: str, after: float) -> float | None:
        """Earliest due time after ``after`` among waiting deliveries of ``target``."""
        state = await self._turn()
        return min(
            (
                row.due_at
                for row in state.deliveries.values()
                if row.target == target and row.status in _WAITING and row.due_at > after
            ),
            default=None,
        )

    async def last_written(
        self, target: str, source: str, entity: str, entity_id: str
    ) -> tuple[str, float] | None:
        """The digest of the document last written for an entity into ``target``, and when."""
        state = await self._turn()
        return state.written.get((target, source, entity, entity_id))
