"""Owed calls in PostgreSQL (``bridge.store.owed.OwedStore``), in the store's own jobs.

The SQL functions take a connection so a domain write and the calls it owes share one
transaction (``update_reservation_owing``). Claims take their rows with ``FOR UPDATE SKIP
LOCKED``, so two instances' sweepers never lease one call together. Each UPDATE is
commented with the transition it makes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from bridge.errors import NotFound
from bridge.owed.calls import (
    NewOwedCall,
    OwedCall,
    OwedOutcome,
    OwedStatus,
    parse_owed_ref,
)
from bridge.store.postgres import reservations as rsv_io
from bridge.store.postgres.engine import Conn, fetchall, fetchone, rowcount
from bridge.store.postgres.owed_reads import (
    SELECT,
    counts,
    for_subject,
    listing,
    next_due,
    owed_row,
)
from bridge.store.postgres.store import PostgresStore
from bridge.store.reservations import Reservation, Step


def _number(call_id: str) -> int:
    number = parse_owed_ref(call_id)
    if number is None:
        raise NotFound(f"no owed call {call_id!r}")
    return number


async def get(conn: Conn, call_id: str) -> OwedCall:
    """One call or NotFound."""
    row = await fetchone(conn, f"{SELECT} WHERE id = %s", (_number(call_id),))
    if row is None:
        raise NotFound(f"no owed call {call_id!r}")
    return owed_row(row)


async def owe(
    conn: Conn, calls: Sequence[NewOwedCall], now: float, lease: tuple[str, float] | None = None
) -> list[OwedCall]:
    """Insert each call, or find it by (system, operation_id)."""
    owed = []
    for call in calls:
        due = now if call.due_at is None else call.due_at
        status, owner, until = OwedStatus.PENDING, None, None
        if lease is not None:
            status, owner, until = OwedStatus.IN_FLIGHT, lease[0], lease[1]
        args = json.dumps(dict(call.arguments), sort_keys=True)
        attempts = 0 if lease is None else 1
        # (new) -> pending, or -> in_flight leased to the caller who tries it at once.
        await conn.execute(
            "INSERT INTO owed_calls (system, operation, operation_id, arguments, subject,"
            " status, attempts, due_at, created_at, updated_at, owner, lease_until)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (system, operation_id) DO NOTHING",
            (
                call.system,
                call.operation,
                call.operation_id,
                args,
                call.subject,
                str(status),
                attempts,
                due,
                now,
                now,
                owner,
                until,
            ),
        )
        # dead -> pending (or in_flight): owed again, with the new arguments; the attempt
        # count restarts and the last error stays until the next attempt.
        await conn.execute(
            "UPDATE owed_calls SET status = %s, attempts = %s, due_at = %s, arguments = %s,"
            " owner = %s, lease_until = %s, updated_at = %s, note = NULL"
            " WHERE system = %s AND operation_id = %s AND status = 'dead'",
            (str(status), attempts, due, args, owner, until, now, call.system, call.operation_id),
        )
        row = await fetchone(
            conn,
            f"{SELECT} WHERE system = %s AND operation_id = %s",
            (call.system, call.operation_id),
        )
        assert row is not None
        owed.append(owed_row(row))
    return owed


async def claim(
    conn: Conn, owner: str, now: float, lease_seconds: float, limit: int
) -> list[OwedCall]:
    """Lease the due calls no other instance is claiming, oldest due first."""
    rows = await fetchall(
        conn,
        "SELECT id FROM owed_calls WHERE (status = 'pending' AND due_at <= %s)"
        " OR (status = 'in_flight' AND lease_until <= %s) ORDER BY due_at, id LIMIT %s"
        " FOR UPDATE SKIP LOCKED",
        (now, now, limit),
    )
    ids = [r[0] for r in rows]
    if not ids:
        return []
    # pending (due) | in_flight (lease ran out) -> in_flight under this owner's lease.
    await conn.execute(
        "UPDATE owed_calls SET status = 'in_flight', owner = %s, lease_until = %s,"
        " attempts = attempts + 1, updated_at = %s WHERE id = ANY(%s)",
        (owner, now + lease_seconds, now, ids),
    )
    found = await fetchall(conn, f"{SELECT} WHERE id = ANY(%s) ORDER BY due_at, id", (ids,))
    return [owed_row(r) for r in found]


async def lease_one(
    conn: Conn, call_id: str, owner: str, now: float, lease_seconds: float
) -> OwedCall | None:
    """Lease one pending call at once (whatever its due time)."""
    # pending -> in_flight: the caller attempts it now.
    changed = await rowcount(
        conn,
        "UPDATE owed_calls SET status = 'in_flight', owner = %s, lease_until = %s,"
        " attempts = attempts + 1, updated_at = %s WHERE id = %s AND status = 'pending'",
        (owner, now + lease_seconds, now, _number(call_id)),
    )
    return await get(conn, call_id) if changed == 1 else None


async def finish(
    conn: Conn, call_id: str, owner: str, outcome: OwedOutcome, now: float
) -> OwedCall | None:
    """End the attempt the owner holds."""
    due = outcome.due_at if outcome.due_at is not None else now
    # in_flight -> done | pending (retry at due_at) | dead, only under the owner's lease.
    changed = await rowcount(
        conn,
        "UPDATE owed_calls SET status = %s, due_at = %s,"
        " last_error = coalesce(%s::text, last_error), note = %s, owner = NULL,"
        " lease_until = NULL, updated_at = %s WHERE id = %s AND status = 'in_flight'"
        " AND owner = %s",
        (str(outcome.status), due, outcome.error, outcome.note, now, _number(call_id), owner),
    )
    return await get(conn, call_id) if changed == 1 else None


async def recover(conn: Conn, owner: str, now: float) -> int:
    """Return the calls whose lease ran out to pending (not ``owner``'s own)."""
    # in_flight -> pending: its holder stopped before finishing. Other instances share the
    # database, so only a lease that ran out says its holder is gone.
    return await rowcount(
        conn,
        "UPDATE owed_calls SET status = 'pending', owner = NULL, lease_until = NULL,"
        " due_at = least(due_at, %s), updated_at = %s"
        " WHERE status = 'in_flight' AND lease_until <= %s AND owner != %s",
        (now, now, now, owner),
    )


async def replay(conn: Conn, call_id: str, actor: str, now: float) -> OwedCall:
    """Requeue a dead call."""
    # dead -> pending by a replay: attempts restart, last_error stays for the record.
    await conn.execute(
        "UPDATE owed_calls SET status = 'pending', attempts = 0, due_at = %s, note = %s,"
        " updated_at = %s WHERE id = %s AND status = 'dead'",
        (now, f"replayed by {actor}", now, _number(call_id)),
    )
    return await get(conn, call_id)


class PostgresOwedStore:
    """Implements :class:`bridge.store.owed.OwedStore` beside a :class:`PostgresStore`, in
    its jobs (so a reservation and its owed calls commit together)."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def _now(self) -> float:
        return float(self.store._clock())

    def _lease(self, lease_to: str | None, now: float) -> tuple[str, float] | None:
        """(owner, until) for calls stored already leased to the one who owes them."""
        return None if lease_to is None else (lease_to, now + self.store.lease_seconds)

    async def owe(
        self, calls: Sequence[NewOwedCall], *, lease_to: str | None = None
    ) -> list[OwedCall]:
        """Store calls (or find them); ``lease_to``: leased to that owner at once."""
        now = self._now()
        lease = self._lease(lease_to, now)
        return await self.store._write(lambda conn: owe(conn, calls, now, lease))

    async def update_reservation_owing(
        self,
        rsv: Reservation,
        steps: Sequence[Step],
        calls: Sequence[NewOwedCall],
        *,
        lease_to: str | None = None,
    ) -> tuple[Reservation, list[OwedCall]]:
        """The reservation's change and the calls it owes, in one transaction."""
        now = self._now()
        lease = self._lease(lease_to, now)

        async def job(conn: Conn) -> tuple[Reservation, list[OwedCall]]:
            moved = await rsv_io.update(conn, rsv, steps, now)
            return moved, await owe(conn, calls, now, lease)

        return await self.store._write(job)

    async def claim_owed(
        self, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[OwedCall]:
        """Lease the due calls."""
        return await self.store._write(lambda conn: claim(conn, owner, now, lease_seconds, limit))

    async def lease_owed(
        self, call_id: str, owner: str, now: float, lease_seconds: float
    ) -> OwedCall | None:
        """Lease one pending call now."""
        return await self.store._write(
            lambda conn: lease_one(conn, call_id, owner, now, lease_seconds)
        )

    async def finish_owed(self, call_id: str, owner: str, outcome: OwedOutcome) -> OwedCall | None:
        """End an attempt; None when the lease was lost."""
        now = self._now()
        return await self.store._write(lambda conn: finish(conn, call_id, owner, outcome, now))

    async def recover_owed(self, owner: str, now: float) -> int:
        """Return calls whose lease ran out to pending (``owner``'s own stay leased)."""
        return await self.store._write(lambda conn: recover(conn, owner, now))

    async def next_owed_due(self) -> float | None:
        """The earliest due moment."""
        return await self.store._read(next_due)

    async def get_owed(self, call_id: str) -> OwedCall:
        """One call; NotFound."""
        return await self.store._read(lambda conn: get(conn, call_id))

    async def owed_for(self, subject: str) -> list[OwedCall]:
        """A subject's calls."""
        return await self.store._read(lambda conn: for_subject(conn, subject))

    async def list_owed(
        self, status: OwedStatus | None = None, system: str | None = None, limit: int = 50
    ) -> list[OwedCall]:
        """Newest first."""
        return await self.store._read(lambda conn: listing(conn, status, system, limit))

    async def count_owed(self) -> dict[tuple[str, OwedStatus], int]:
        """Per (system, status)."""
        return await self.store._read(counts)

    async def replay_owed(self, call_id: str, actor: str, now: float) -> OwedCall:
        """Requeue a dead call."""
        return await self.store._write(lambda conn: replay(conn, call_id, actor, now))
