"""Reservations that run out: codes past their TTL, holds past ``hold_ttl_seconds``, and
creations a crash interrupted. Each ends with its hold released through an owed call.

``ExpirySteps`` is the part of :class:`bridge.bonus.reservations.ReservationService` that
sweeps for time-outs (the master calls owed are swept by ``bridge.owed``).
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from bridge.bonus.confirmation import CodeSteps
from bridge.bonus.master_calls import ReservationLocks
from bridge.logs import get_logger
from bridge.store.reservations import Reservation, RsvStatus, VersionConflict

log = get_logger("bridge.reservations")


class ExpirySteps(CodeSteps):
    """Ends codes and holds past their time, and creations left half done."""

    locks: ReservationLocks

    async def sweep_once(self) -> int:
        """Do every time-out due once; how many reservations were touched."""
        now = self._clock()
        stuck = now - (2 * self.settings.timeout_seconds + self.settings.sms.timeout_seconds + 5)
        touched = 0
        for rsv_id in await self.store.due_reservations(now, stuck, 100):
            async with self.locks.hold(rsv_id):
                try:
                    rsv = await self.store.get_reservation(rsv_id)
                    touched += await self._sweep_one(rsv, now, stuck)
                except Exception:  # one bad row must not stall the others
                    log.exception("reservation_sweep_failed", reservation=rsv_id)
        return touched

    async def _sweep_one(self, rsv: Reservation, now: float, stuck: float) -> int:
        try:
            if rsv.status is RsvStatus.AWAITING_CODE and self._code_expired(rsv):
                await self._end_code(rsv)
            elif rsv.status is RsvStatus.HELD and rsv.expires_at <= now:
                await self._expire(rsv)
                log.info("hold_expired", reservation=rsv.id)
            elif rsv.status is RsvStatus.CREATING and rsv.created_at <= stuck:
                await self.calls.owe_release(
                    replace(rsv, idempotency_key=None, error_code="interrupted"),
                    then=RsvStatus.CANCELLED,
                    kind="interrupted",
                    detail="the process stopped while creating it",
                )
            else:
                return 0
        except VersionConflict:
            return 0
        return 1

    async def _expire(self, rsv: Reservation) -> Reservation:
        return await self.calls.owe_release(
            rsv, then=RsvStatus.EXPIRED, kind="expired", detail=None
        )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
                wait = self.rules.sweep_seconds
                due = await self.store.next_reservation_due()
                left = None if due is None else due - self._clock()
                if left is not None and left > 0:  # past ones were handled or must wait
                    wait = min(wait, left)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep sweeping; the store may come back
                log.exception("reservation_sweep_failed", error=str(exc))
                wait = self.rules.sweep_seconds
            await asyncio.sleep(max(wait, 0.05))
