"""Retention in memory of what grows beside the log (``bridge.store.retention_sql``, read
kind by kind): final reservations with their history and owed calls, done or dead owed
calls, SMS sends and the sandbox outbox."""

from __future__ import annotations

from collections.abc import Callable

from bridge.owed.calls import OwedCall, OwedStatus
from bridge.store.memory.log import State
from bridge.store.memory.owed import MemoryOwedStore
from bridge.store.reservations import FINAL, Reservation
from bridge.store.retention import Records

Aged = tuple[float, str]  # (age, key) of a record that may go


def _owing(rsv: Reservation, calls: list[OwedCall]) -> bool:
    """Whether a reservation still waits on a master call (``retention_sql``'s rule)."""
    if rsv.status not in FINAL or rsv.pending is not None:
        return True
    return any(c.subject == rsv.id and c.status is not OwedStatus.DONE for c in calls)


def _reservations(state: State, calls: list[OwedCall], before: float) -> list[Aged]:
    return [
        (r.updated_at, r.id)
        for r in state.reservations.values()
        if r.updated_at < before and not _owing(r, calls)
    ]


def _owed(state: State, calls: list[OwedCall], status: OwedStatus, before: float) -> list[Aged]:
    def kept(call: OwedCall) -> bool:
        rsv = state.reservations.get(call.subject or "")
        if rsv is None:
            return False
        return status is OwedStatus.DONE or _owing(rsv, [])

    return [
        (c.updated_at, c.id)
        for c in calls
        if c.status is status and c.updated_at < before and not kept(c)
    ]


def chosen(state: State, owed: MemoryOwedStore, kind: Records, before: float) -> list[Aged]:
    """Every record of ``kind`` that may go, oldest first."""
    calls = owed.stored()
    found: dict[Records, Callable[[], list[Aged]]] = {
        Records.RESERVATIONS: lambda: _reservations(state, calls, before),
        Records.OWED_DONE: lambda: _owed(state, calls, OwedStatus.DONE, before),
        Records.OWED_DEAD: lambda: _owed(state, calls, OwedStatus.DEAD, before),
        Records.SMS_SENDS: lambda: [
            (at, str(i)) for i, (_, at, _) in enumerate(state.sms_sends) if at < before
        ],
        Records.SANDBOX_MESSAGES: lambda: [
            (m.at, str(m.id)) for m in state.sandbox if m.at < before
        ],
    }
    return sorted(found[kind](), key=lambda aged: aged[0])


def drop(state: State, owed: MemoryOwedStore, kind: Records, keys: list[str]) -> None:
    """Delete the chosen records and what hangs off them."""
    gone = set(keys)
    if kind is Records.RESERVATIONS:
        owed.forget([c.id for c in owed.stored() if c.subject in gone])
        for rsv_id in keys:
            del state.reservations[rsv_id]
            state.reservation_steps.pop(rsv_id, None)
    elif kind in (Records.OWED_DONE, Records.OWED_DEAD):
        owed.forget(keys)
    elif kind is Records.SMS_SENDS:
        state.sms_sends[:] = [s for i, s in enumerate(state.sms_sends) if str(i) not in gone]
    else:
        state.sandbox[:] = [m for m in state.sandbox if str(m.id) not in gone]
