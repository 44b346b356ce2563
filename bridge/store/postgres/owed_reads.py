"""Owed calls as support and the sweeper read them: rows into records, the next due moment,
a subject's calls, listings and counts (``bridge.store.postgres.owed`` writes them)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bridge.owed.calls import OwedCall, OwedStatus, owed_ref
from bridge.store.postgres.engine import Conn, fetchall, fetchone

COLUMNS = (
    "id, system, operation, operation_id, arguments, subject, status, attempts, due_at,"
    " created_at, updated_at, last_error, owner, lease_until, note"
)
SELECT = f"SELECT {COLUMNS} FROM owed_calls"


def owed_row(row: Sequence[Any]) -> OwedCall:
    """An owed_calls row as a record."""
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


async def next_due(conn: Conn) -> float | None:
    """The earliest due pending call or lease end."""
    row = await fetchone(
        conn,
        "SELECT min(t) FROM (SELECT min(due_at) AS t FROM owed_calls WHERE status = 'pending'"
        " UNION ALL SELECT min(lease_until) FROM owed_calls WHERE status = 'in_flight') AS due",
    )
    return None if row is None or row[0] is None else float(row[0])


async def for_subject(conn: Conn, subject: str) -> list[OwedCall]:
    """A subject's calls, oldest first."""
    rows = await fetchall(conn, f"{SELECT} WHERE subject = %s ORDER BY id", (subject,))
    return [owed_row(r) for r in rows]


async def listing(
    conn: Conn, status: OwedStatus | None, system: str | None, limit: int
) -> list[OwedCall]:
    """Newest first."""
    where: list[str] = []
    args: list[Any] = []
    if status is not None:
        where.append("status = %s")
        args.append(str(status))
    if system is not None:
        where.append("system = %s")
        args.append(system)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = await fetchall(conn, f"{SELECT}{clause} ORDER BY id DESC LIMIT %s", (*args, limit))
    return [owed_row(r) for r in rows]


async def counts(conn: Conn) -> dict[tuple[str, OwedStatus], int]:
    """Calls per (system, status)."""
    rows = await fetchall(
        conn, "SELECT system, status, count(*) FROM owed_calls GROUP BY system, status"
    )
    return {(str(r[0]), OwedStatus(r[1])): int(r[2]) for r in rows}
