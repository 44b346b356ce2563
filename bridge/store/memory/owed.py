"""Owed calls in memory (``bridge.store.owed.OwedStore``): the fake for fast tests.

Beside any reservation store (the memory store, or none): one event loop and no awaits
inside a step stand in for the SQLite store's transactions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from bridge.errors import NotFound
from bridge.owed.calls import (
    NewOwedCall,
    OwedCall,
    OwedOutcome,
    OwedStatus,
    owed_ref,
    parse_owed_ref,
)
from bridge.store.reservations import Reservation, ReservationStore, Step


class MemoryOwedStore:
    """Implements :class:`bridge.store.owed.OwedStore` in a dict."""

    def __init__(
        self,
        reservations: ReservationStore | None = None,
        *,
        lease_seconds: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reservations = reservations
        self.lease_seconds = lease_seconds
        self._clock = clock
        self._calls: dict[int, OwedCall] = {}
        self._by_operation: dict[tuple[str, str], int] = {}
        self._next = 1  # ids are never reused, also after retention dropped calls

    def stored(self) -> list[OwedCall]:
        """Every call kept, oldest first (what retention looks through)."""
        return [c for _, c in sorted(self._calls.items())]

    def forget(self, call_ids: Sequence[str]) -> None:
        """Drop finished calls (retention, ``bridge purge``)."""
        for call in [self._get(i) for i in call_ids]:
            del self._calls[parse_owed_ref(call.id) or 0]
            del self._by_operation[(call.system, call.operation_id)]

    def _get(self, call_id: str) -> OwedCall:
        number = parse_owed_ref(call_id)
        if number is None or number not in self._calls:
            raise NotFound(f"no owed call {call_id!r}")
        return self._calls[number]

    def _put(self, call: OwedCall) -> OwedCall:
        number = parse_owed_ref(call.id)
        assert number is not None
        self._calls[number] = call
        return call

    def _owe_one(self, call: NewOwedCall, now: float, lease_to: str | None) -> OwedCall:
        due = now if call.due_at is None else call.due_at
        status, until = OwedStatus.PENDING, None
        if lease_to is not None:
            status, until = OwedStatus.IN_FLIGHT, now + self.lease_seconds
        attempts = 0 if lease_to is None else 1
        key = (call.system, call.operation_id)
        if key in self._by_operation:
            found = self._calls[self._by_operation[key]]
            if found.status is not OwedStatus.DEAD:
                return found
            return self._put(
                replace(
                    found,
                    status=status,
                    attempts=attempts,
                    due_at=due,
                    arguments=dict(call.arguments),
                    owner=lease_to,
                    lease_until=until,
                    updated_at=now,
                    note=None,
                )
            )
        number, self._next = self._next, self._next + 1
        self._by_operation[key] = number
        return self._put(
            OwedCall(
                id=owed_ref(number),
                system=call.system,
                operation=call.operation,
                operation_id=call.operation_id,
                arguments=dict(call.arguments),
                subject=call.subject,
                status=status,
                attempts=attempts,
                due_at=due,
                created_at=now,
                updated_at=now,
                owner=lease_to,
                lease_until=until,
            )
        )

    async def owe(
        self, calls: Sequence[NewOwedCall], *, lease_to: str | None = None
    ) -> list[OwedCall]:
        """Store calls (or find them); ``lease_to``: leased to that owner at once."""
        now = self._clock()
        return [self._owe_one(call, now, lease_to) for call in calls]

    async def update_reservation_owing(
        self,
        rsv: Reservation,
        steps: Sequence[Step],
        calls: Sequence[NewOwedCall],
        *,
        lease_to: str | None = None,
    ) -> tuple[Reservation, list[OwedCall]]:
        """The reservation's change, then the calls (VersionConflict leaves both out)."""
        if self.reservations is None:
            raise NotFound("this owed-call store has no reservation store beside it")
        moved = await self.reservations.update_reservation(rsv, steps)
        return moved, await self.owe(calls, lease_to=lease_to)

    async def claim_owed(
        self, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[OwedCall]:
        """Lease the due calls, oldest due first."""
        due = sorted(
            (
                c
                for c in self._calls.values()
                if (c.status is OwedStatus.PENDING and c.due_at <= now)
                or (c.status is OwedStatus.IN_FLIGHT and (c.lease_until or 0) <= now)
            ),
            key=lambda c: (c.due_at, parse_owed_ref(c.id)),
        )[:limit]
        return [self._lease(c, owner, now, lease_seconds) for c in due]

    def _lease(self, call: OwedCall, owner: str, now: float, lease_seconds: float) -> OwedCall:
        return self._put(
            replace(
                call,
                status=OwedStatus.IN_FLIGHT,
                owner=owner,
                lease_until=now + lease_seconds,
                attempts=call.attempts + 1,
                updated_at=now,
            )
        )

    async def lease_owed(
        self, call_id: str, owner: str, now: float, lease_seconds: float
    ) -> OwedCall | None:
        """Lease one pending call now."""
        call = self._get(call_id)
        if call.status is not OwedStatus.PENDING:
            return None
        return self._lease(call, owner, now, lease_seconds)

    async def finish_owed(self, call_id: str, owner: str, outcome: OwedOutcome) -> OwedCall | None:
        """End an attempt; None when the lease was lost."""
        call = self._get(call_id)
        if call.status is not OwedStatus.IN_FLIGHT or call.owner != owner:
            return None
        now = self._clock()
        return self._put(
            replace(
                call,
                status=outcome.status,
                due_at=outcome.due_at if outcome.due_at is not None else now,
                last_error=outcome.error or call.last_error,
                note=outcome.note,
                owner=None,
                lease_until=None,
                updated_at=now,
            )
        )

    async def recover_owed(self, owner: str, now: float) -> int:
        """Return calls another (gone) process held to pending."""
        held = [
            c for c in self._calls.values() if c.status is OwedStatus.IN_FLIGHT and c.owner != owner
        ]
        for call in held:
            self._put(
                replace(
                    call,
                    status=OwedStatus.PENDING,
                    owner=None,
                    lease_until=None,
                    due_at=min(call.due_at, now),
                    updated_at=now,
                )
            )
        return len(held)

    async def next_owed_due(self) -> float | None:
        """The earliest due pending call or lease end."""
        moments = [c.due_at for c in self._calls.values() if c.status is OwedStatus.PENDING]
        moments += [
            c.lease_until
            for c in self._calls.values()
            if c.status is OwedStatus.IN_FLIGHT and c.lease_until is not None
        ]
        return min(moments, default=None)

    async def get_owed(self, call_id: str) -> OwedCall:
        """One call; NotFound."""
        return self._get(call_id)

    async def owed_for(self, subject: str) -> list[OwedCall]:
        """A subject's calls, oldest first."""
        return [c for _, c in sorted(self._calls.items()) if c.subject == subject]

    async def list_owed(
        self, status: OwedStatus | None = None, system: str | None = None, limit: int = 50
    ) -> list[OwedCall]:
        """Newest first, filtered."""
        found = [
            c
            for _, c in sorted(self._calls.items(), reverse=True)
            if (status is None or c.status is status) and (system is None or c.system == system)
        ]
        return found[:limit]

    async def count_owed(self) -> dict[tuple[str, OwedStatus], int]:
        """Calls per (system, status)."""
        counted: dict[tuple[str, OwedStatus], int] = {}
        for call in self._calls.values():
            key = (call.system, call.status)
            counted[key] = counted.get(key, 0) + 1
        return counted

    async def replay_owed(self, call_id: str, actor: str, now: float) -> OwedCall:
        """Requeue a dead call (others unchanged)."""
        call = self._get(call_id)
        if call.status is not OwedStatus.DEAD:
            return call
        return self._put(
            replace(
                call,
                status=OwedStatus.PENDING,
                attempts=0,
                due_at=now,
                note=f"replayed by {actor}",
                updated_at=now,
            )
        )
