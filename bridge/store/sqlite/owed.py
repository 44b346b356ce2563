"""Owed calls in SQLite (``bridge.store.owed.OwedStore``), on the store's own writer.

The SQL functions take a connection so a domain write and the calls it owes share one
transaction (``update_reservation_owing``). Each UPDATE is commented with the transition
it makes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from bridge.errors import NotFound
from bridge.owed.calls import (
    NewOwedCall,
    OwedCall,
    OwedOutcome,
    OwedStatus,
    owed_ref,
    parse_owed_ref,
)
from bridge.store.reservations import Reservation, Step
from bridge.store.sqlite import reservations as rsv_io
from bridge.store.sqlite.store import SQLiteStore

_COLUMNS = (
    "id, system, operation, operation_id, arguments, subject, status, attempts, due_at,"
    " created_at, updated_at, last_error, owner, lease_until, note"
)
_SELECT = f"SELECT {_COLUMNS} FROM owed_calls"
T = TypeVar("T")


def _from_row(row: Sequence[Any]) -> OwedCall:
    return OwedCall(
        id=owed_ref(int(row[0])),
        system=row[1],
        operation=row[2],
        operation_id=row[3],
        arguments=json.loads(row[4]),
        subject=row[5],
        status=OwedStatus(row[6]),
        attempts=int(row[7]),
        due_at=float(row[8]),
        created_at=float(row[9]),
        updated_at=float(row[10]),
        last_error=row[11],
        owner=row[12],
        lease_until=row[13],
        note=row[14],
    )


def _number(call_id: str) -> int:
    number = parse_owed_ref(call_id)
    if number is None:
        raise NotFound(f"no owed call {call_id!r}")
    return number


def get(conn: sqlite3.Connection, call_id: str) -> OwedCall:
    """One call or NotFound."""
    row = conn.execute(f"{_SELECT} WHERE id = ?", (_number(call_id),)).fetchone()
    if row is None:
        raise NotFound(f"no owed call {call_id!r}")
    return _from_row(row)


def owe(
    conn: sqlite3.Connection,
    calls: Sequence[NewOwedCall],
    now: float,
    lease: tuple[str, float] | None = None,
) -> list[OwedCall]:
    """Insert each call, or find it by (system, operation_id)."""
    owed = []
    for call in calls:
        due = now if call.due_at is None else call.due_at
        status, owner, until = OwedStatus.PENDING, None, None
        if lease is not None:
            status, owner, until = OwedStatus.IN_FLIGHT, lease[0], lease[1]
        args = json.dumps(dict(call.arguments), sort_keys=True)
        key = (call.system, call.operation_id)
        # (new) -> pending, or -> in_flight leased to the caller who tries it at once.
        conn.execute(
            "INSERT INTO owed_calls (system, operation, operation_id, arguments, subject,"
            " status, attempts, due_at, created_at, updated_at, owner, lease_until)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (system, operation_id) DO NOTHING",
            (
                call.system,
                call.operation,
                call.operation_id,
                args,
                call.subject,
                str(status),
                0 if lease is None else 1,
                due,
                now,
                now,
                owner,
                until,
            ),
        )
        # dead -> pending (or in_flight): owed again, with the new arguments; the attempt
        # count restarts and the last error stays until the next attempt.
        conn.execute(
            "UPDATE owed_calls SET status = ?, attempts = ?, due_at = ?, arguments = ?,"
            " owner = ?, lease_until = ?, updated_at = ?, note = NULL"
            " WHERE system = ? AND operation_id = ? AND status = 'dead'",
            (str(status), 0 if lease is None else 1, due, args, owner, until, now, *key),
        )
        row = conn.execute(
            f"{_SELECT} WHERE system = ? AND operation_id = ?", (call.system, call.operation_id)
        ).fetchone()
        owed.append(_from_row(row))
    return owed


def claim(
    conn: sqlite3.Connection, owner: str, now: float, lease_seconds: float, limit: int
) -> list[OwedCall]:
    """Lease the due calls, oldest due first."""
    rows = conn.execute(
        "SELECT id FROM owed_calls WHERE (status = 'pending' AND due_at <= ?)"
        " OR (status = 'in_flight' AND lease_until <= ?) ORDER BY due_at, id LIMIT ?",
        (now, now, limit),
    ).fetchall()
    ids = [r[0] for r in rows]
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    # pending (due) | in_flight (lease ran out) -> in_flight under this owner's lease.
    conn.execute(
        f"UPDATE owed_calls SET status = 'in_flight', owner = ?, lease_until = ?,"
        f" attempts = attempts + 1, updated_at = ? WHERE id IN ({marks})",
        (owner, now + lease_seconds, now, *ids),
    )
    found = conn.execute(f"{_SELECT} WHERE id IN ({marks}) ORDER BY due_at, id", ids).fetchall()
    return [_from_row(r) for r in found]


def lease_one(
    conn: sqlite3.Connection, call_id: str, owner: str, now: float, lease_seconds: float
) -> OwedCall | None:
    """Lease one pending call at once (whatever its due time)."""
    # pending -> in_flight: the caller attempts it now.
    cursor = conn.execute(
        "UPDATE owed_calls SET status = 'in_flight', owner = ?, lease_until = ?,"
        " attempts = attempts + 1, updated_at = ? WHERE id = ? AND status = 'pending'",
        (owner, now + lease_seconds, now, _number(call_id)),
    )
    return get(conn, call_id) if cursor.rowcount == 1 else None


def finish(
    conn: sqlite3.Connection, call_id: str, owner: str, outcome: OwedOutcome, now: float
) -> OwedCall | None:
    """End the attempt the owner holds."""
    due = outcome.due_at if outcome.due_at is not None else now
    # in_flight -> done | pending (retry at due_at) | dead, only under the owner's lease.
    cursor = conn.execute(
        "UPDATE owed_calls SET status = ?, due_at = ?, last_error = coalesce(?, last_error),"
        " note = ?, owner = NULL, lease_until = NULL, updated_at = ?"
        " WHERE id = ? AND status = 'in_flight' AND owner = ?",
        (str(outcome.status), due, outcome.error, outcome.note, now, _number(call_id), owner),
    )
    return get(conn, call_id) if cursor.rowcount == 1 else None


def recover(conn: sqlite3.Connection, owner: str, now: float) -> int:
    """Return every call another (gone) process held to pending."""
    # in_flight -> pending: its holder stopped before finishing (SQLite: one instance).
    cursor = conn.execute(
        "UPDATE owed_calls SET status = 'pending', owner = NULL, lease_until = NULL,"
        " due_at = min(due_at, ?), updated_at = ? WHERE status = 'in_flight' AND owner != ?",
        (now, now, owner),
    )
    return int(cursor.rowcount)


def replay(conn: sqlite3.Connection, call_id: str, actor: str, now: float) -> OwedCall:
    """Requeue a dead call."""
    # dead -> pending by a replay: attempts restart, last_error stays for the record.
    conn.execute(
        "UPDATE owed_calls SET status = 'pending', attempts = 0, due_at = ?, note = ?,"
        " updated_at = ? WHERE id = ? AND status = 'dead'",
        (now, f"replayed by {actor}", now, _number(call_id)),
    )
    return get(conn, call_id)


def next_due(conn: sqlite3.Connection) -> float | None:
    """The earliest due pending call or lease end."""
    row = conn.execute(
        "SELECT min(t) FROM (SELECT min(due_at) AS t FROM owed_calls WHERE status = 'pending'"
        " UNION ALL SELECT min(lease_until) FROM owed_calls WHERE status = 'in_flight')"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def for_subject(conn: sqlite3.Connection, subject: str) -> list[OwedCall]:
    """A subject's calls, oldest first."""
    rows = conn.execute(f"{_SELECT} WHERE subject = ? ORDER BY id", (subject,)).fetchall()
    return [_from_row(r) for r in rows]


def listing(
    conn: sqlite3.Connection, status: OwedStatus | None, system: str | None, limit: int
) -> list[OwedCall]:
    """Newest first."""
    where, args = [], []
    if status is not None:
        where.append("status = ?")
        args.append(str(status))
    if system is not None:
        where.append("system = ?")
        args.append(system)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(f"{_SELECT}{clause} ORDER BY id DESC LIMIT ?", (*args, limit))
    return [_from_row(r) for r in rows.fetchall()]


def counts(conn: sqlite3.Connection) -> dict[tuple[str, OwedStatus], int]:
    """Calls per (system, status)."""
    rows = conn.execute(
        "SELECT system, status, count(*) FROM owed_calls GROUP BY system, status"
    ).fetchall()
    return {(str(r[0]), OwedStatus(r[1])): int(r[2]) for r in rows}


class SQLiteOwedStore:
    """Implements :class:`bridge.store.owed.OwedStore` beside a :class:`SQLiteStore`, on
    its writer and readers (so a reservation and its owed calls commit together)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    # The store's writer and readers are its own business; this module is its sibling in
    # the same engine folder and shares them rather than opening a second connection.
    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await self.store._write(job)

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await self.store._read(job)

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
        return await self._write(lambda conn: owe(conn, calls, now, lease))

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

        def job(conn: sqlite3.Connection) -> tuple[Reservation, list[OwedCall]]:
            return rsv_io.update(conn, rsv, steps, now), owe(conn, calls, now, lease)

        return await self._write(job)

    async def claim_owed(
        self, owner: str, now: float, lease_seconds: float, limit: int
    ) -> list[OwedCall]:
        """Lease the due calls."""
        return await self._write(lambda conn: claim(conn, owner, now, lease_seconds, limit))

    async def lease_owed(
        self, call_id: str, owner: str, now: float, lease_seconds: float
    ) -> OwedCall | None:
        """Lease one pending call now."""
        return await self._write(lambda conn: lease_one(conn, call_id, owner, now, lease_seconds))

    async def finish_owed(self, call_id: str, owner: str, outcome: OwedOutcome) -> OwedCall | None:
        """End an attempt; None when the lease was lost."""
        now = self._now()
        return await self._write(lambda conn: finish(conn, call_id, owner, outcome, now))

    async def recover_owed(self, owner: str, now: float) -> int:
        """Return calls a gone process held to pending."""
        return await self._write(lambda conn: recover(conn, owner, now))

    async def next_owed_due(self) -> float | None:
        """The earliest due moment."""
        return await self._read(next_due)

    async def get_owed(self, call_id: str) -> OwedCall:
        """One call; NotFound."""
        return await self._read(lambda conn: get(conn, call_id))

    async def owed_for(self, subject: str) -> list[OwedCall]:
        """A subject's calls."""
        return await self._read(lambda conn: for_subject(conn, subject))

    async def list_owed(
        self, status: OwedStatus | None = None, system: str | None = None, limit: int = 50
    ) -> list[OwedCall]:
        """Newest first."""
        return await self._read(lambda conn: listing(conn, status, system, limit))

    async def count_owed(self) -> dict[tuple[str, OwedStatus], int]:
        """Per (system, status)."""
        return await self._read(counts)

    async def replay_owed(self, call_id: str, actor: str, now: float) -> OwedCall:
        """Requeue a dead call."""
        return await self._write(lambda conn: replay(conn, call_id, actor, now))
