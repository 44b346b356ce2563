"""Reservations in memory (``bridge.store.reservations.ReservationStore``): the rows, their
history, the per-phone SMS count, the sandbox outbox and the stored secrets."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

from bridge.errors import NotFound, StoreError
from bridge.store.memory.log import Log, State
from bridge.store.reservations import (
    OrderTaken,
    Reservation,
    RsvStatus,
    SandboxMessage,
    Step,
    VersionConflict,
)

# One order, one spend (the SQLite index reservations_one_per_order).
_OPEN = frozenset(
    {
        RsvStatus.CREATING,
        RsvStatus.AWAITING_CODE,
        RsvStatus.HELD,
        RsvStatus.COMMIT_PENDING,
        RsvStatus.RELEASE_PENDING,
        RsvStatus.COMMITTED,
    }
)


def _is_open(rsv: Reservation) -> bool:
    return rsv.status in _OPEN or rsv.pending is not None


def _taking(state: State, rsv: Reservation) -> Reservation | None:
    """Another open reservation of the same order at the same master, if any."""
    for other in state.reservations.values():
        same = (other.master, other.master_order_id) == (rsv.master, rsv.master_order_id)
        if same and other.id != rsv.id and _is_open(other):
            return other
    return None


def _newest_first(found: Iterable[Reservation]) -> list[Reservation]:
    return sorted(found, key=lambda r: r.created_at, reverse=True)


def due(state: State, now: float, stuck_before: float) -> list[str]:
    """Ids with sweeper work, in the order of the SQLite store's three queries."""
    rows = list(state.reservations.values())
    work = [
        sorted((r for r in rows if r.status is RsvStatus.HELD and r.expires_at <= now),
               key=lambda r: r.expires_at),
        [r for r in rows if r.status is RsvStatus.AWAITING_CODE
         and ((r.code_expires_at is not None and r.code_expires_at <= now) or r.expires_at <= now)],
        [r for r in rows if r.status is RsvStatus.CREATING and r.created_at <= stuck_before],
    ]  # fmt: skip
    return list(dict.fromkeys(r.id for found in work for r in found))


def next_due(state: State) -> float | None:
    """The earliest moment of any sweeper work."""
    moments: list[float] = []
    for r in state.reservations.values():
        if r.status is RsvStatus.HELD:
            moments.append(r.expires_at)
        if r.status is RsvStatus.AWAITING_CODE and r.code_expires_at is not None:
            moments.append(min(r.code_expires_at, r.expires_at))
        if r.status is RsvStatus.CREATING:
            moments.append(r.created_at)
    return min(moments, default=None)


class MemoryReservations(Log):
    """Reservation rows, their history, SMS accounting and the sandbox outbox."""

    def _steps(self, rsv_id: str, steps: Sequence[Step], now: float) -> None:
        kept = self._state.reservation_steps.setdefault(rsv_id, [])
        kept.extend(replace(step, at=now) for step in steps)

    async def create_reservation(self, rsv: Reservation, step: Step) -> Reservation:
        """Insert, or return the reservation holding the same idempotency key; OrderTaken
        if the order has an open one."""
        state = await self._turn()
        if rsv.idempotency_key is not None:
            found = self._by_key(rsv.client, rsv.idempotency_key)
            if found is not None:
                return found
        taken = _taking(state, rsv)
        if taken is not None:
            raise OrderTaken(taken.id)
        if rsv.id in state.reservations:
            raise StoreError(f"store write failed: reservation {rsv.id!r} exists already")
        state.reservations[rsv.id] = rsv
        self._steps(rsv.id, [step], self._clock())
        return rsv

    def _by_key(self, client: str, key: str) -> Reservation | None:
        for rsv in self._state.reservations.values():
            if (rsv.client, rsv.idempotency_key) == (client, key):
                return rsv
        return None

    async def find_reservation(self, client: str, idempotency_key: str) -> Reservation | None:
        """The reservation ``client`` made with this Idempotency-Key, if any."""
        await self._turn()
        return self._by_key(client, idempotency_key)

    async def get_reservation(self, reservation_id: str) -> Reservation:
        """One reservation; raises NotFound."""
        state = await self._turn()
        if reservation_id not in state.reservations:
            raise NotFound(f"no reservation {reservation_id!r}")
        return state.reservations[reservation_id]

    async def update_reservation(self, rsv: Reservation, steps: Sequence[Step]) -> Reservation:
        """Compare-and-set on version; VersionConflict when someone moved it first."""
        state = await self._turn()
        now = self._clock()
        stored = state.reservations.get(rsv.id)
        if stored is None or stored.version != rsv.version:
            raise VersionConflict(rsv.id)
        moved = replace(rsv, version=rsv.version + 1, updated_at=now)
        if _is_open(moved) and _taking(state, moved) is not None:
            raise StoreError(f"store write failed: the order of {rsv.id!r} is taken")
        state.reservations[rsv.id] = moved
        self._steps(rsv.id, steps, now)
        return moved

    async def list_reservations(
        self, status: str | None = None, limit: int = 50
    ) -> list[Reservation]:
        """Newest first, optionally of one status."""
        state = await self._turn()
        rows = state.reservations.values()
        return _newest_first(r for r in rows if status is None or r.status == status)[:limit]

    async def reservation_history(self, reservation_id: str) -> list[Step]:
        """Oldest first."""
        state = await self._turn()
        return list(state.reservation_steps.get(reservation_id, []))

    async def due_reservations(self, now: float, stuck_before: float, limit: int) -> list[str]:
        """Ids with work for the sweeper."""
        state = await self._turn()
        return due(state, now, stuck_before)[:limit]

    async def next_reservation_due(self) -> float | None:
        """The earliest moment the sweeper has something to do, if any."""
        return next_due(await self._turn())

    async def reservations_for_order(
        self, order_system: str, order_ids: Sequence[str]
    ) -> list[str]:
        """Ids of the reservations made for an order known by any of ``order_ids``."""
        state = await self._turn()
        found = [
            r
            for r in state.reservations.values()
            if r.order_system == order_system and r.order_id in order_ids
        ]
        return [r.id for r in sorted(found, key=lambda r: r.created_at)]

    async def count_reservations(self) -> dict[str, int]:
        """Reservations per status."""
        state = await self._turn()
        counts: dict[str, int] = {}
        for rsv in state.reservations.values():
            counts[str(rsv.status)] = counts.get(str(rsv.status), 0) + 1
        return counts

    async def claim_sms_slot(
        self, phone_key: str, now: float, window: float, cap: int, reservation_id: str
    ) -> bool:
        """Count one code to this phone unless ``cap`` were sent in the last ``window``."""
        state = await self._turn()
        since = now - window
        state.sms_sends[:] = [s for s in state.sms_sends if s[0] != phone_key or s[1] >= since]
        if sum(1 for s in state.sms_sends if s[0] == phone_key) >= cap:
            return False
        state.sms_sends.append((phone_key, now, reservation_id))
        return True

    async def add_sandbox_message(self, phone: str, text: str, reference: str | None) -> int:
        """Keep a text the sandbox gateway 'sent'; its id."""
        state = await self._turn()
        number, state.next_sandbox = state.next_sandbox, state.next_sandbox + 1
        state.sandbox.append(SandboxMessage(number, self._clock(), phone, text, reference))
        return number

    async def list_sandbox_messages(
        self, phone: str | None = None, limit: int = 20
    ) -> list[SandboxMessage]:
        """Newest first."""
        state = await self._turn()
        found = [m for m in reversed(state.sandbox) if phone is None or m.phone == phone]
        return found[:limit]

    async def secret(self, name: str, make: Callable[[], str]) -> str:
        """A stored secret, made by ``make`` the first time."""
        state = await self._turn()
        made = make()
        return state.secrets.setdefault(name, made)
