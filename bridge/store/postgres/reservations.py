"""SQL of the reservation tables (called from ``PostgresStore`` in its write or read jobs).

Several instances may take the same request at once: the unique indexes decide. The loser
of a race on ``(client, idempotency_key)`` or on the one open reservation per order gets a
UniqueViolation, its transaction runs again (``engine``), and this time it finds the
winner's row: the same reservation, or OrderTaken.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields, replace
from typing import Any

from bridge.errors import NotFound
from bridge.store.postgres.engine import Conn, fetchall, fetchone, rowcount
from bridge.store.reservations import (
    OrderTaken,
    Reservation,
    RsvStatus,
    Step,
    VersionConflict,
)

COLUMNS = tuple(f.name for f in fields(Reservation))
_STATUSES = frozenset({"status", "pending_then"})
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM reservations"


def _to_row(rsv: Reservation) -> tuple[Any, ...]:
    values = []
    for name in COLUMNS:
        value = getattr(rsv, name)
        if name in _STATUSES and value is not None:
            value = str(value)
        values.append(value)
    return tuple(values)


def _from_row(row: Sequence[Any]) -> Reservation:
    data: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
    for name in _STATUSES:
        if data[name] is not None:
            data[name] = RsvStatus(data[name])
    return Reservation(**data)


async def _append(conn: Conn, rsv_id: str, steps: Sequence[Step], now: float) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO reservation_history (reservation_id, at, kind, status, detail, actor)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            [(rsv_id, now, s.kind, str(s.status), s.detail, s.actor) for s in steps],
        )


_OPEN = (
    "(status IN ('creating', 'awaiting_code', 'held', 'commit_pending', 'release_pending',"
    " 'committed') OR pending IS NOT NULL)"
)


async def create(conn: Conn, rsv: Reservation, step: Step, now: float) -> Reservation:
    """Insert, or return the reservation that already holds the idempotency key; raise
    OrderTaken if the order already has an open reservation."""
    if rsv.idempotency_key is not None:
        found = await by_key(conn, rsv.client, rsv.idempotency_key)
        if found is not None:
            return found
    taken = await fetchone(
        conn,
        f"SELECT id FROM reservations WHERE master = %s AND master_order_id = %s AND {_OPEN}",
        (rsv.master, rsv.master_order_id),
    )
    if taken is not None:
        raise OrderTaken(str(taken[0]))
    marks = ", ".join("%s" for _ in COLUMNS)
    await conn.execute(
        f"INSERT INTO reservations ({', '.join(COLUMNS)}) VALUES ({marks})", _to_row(rsv)
    )
    await _append(conn, rsv.id, [step], now)
    return rsv


async def by_key(conn: Conn, client: str, key: str) -> Reservation | None:
    """The reservation a client made with this Idempotency-Key, if any."""
    row = await fetchone(
        conn, f"{_SELECT} WHERE client = %s AND idempotency_key = %s", (client, key)
    )
    return None if row is None else _from_row(row)


async def get(conn: Conn, rsv_id: str) -> Reservation:
    """One reservation or NotFound."""
    row = await fetchone(conn, f"{_SELECT} WHERE id = %s", (rsv_id,))
    if row is None:
        raise NotFound(f"no reservation {rsv_id!r}")
    return _from_row(row)


async def update(conn: Conn, rsv: Reservation, steps: Sequence[Step], now: float) -> Reservation:
    """Compare-and-set on version."""
    moved = replace(rsv, version=rsv.version + 1, updated_at=now)
    names = [c for c in COLUMNS if c != "id"]
    row = dict(zip(COLUMNS, _to_row(moved), strict=True))
    # any -> any status the bonus service decided (bridge.bonus), only from the version it
    # read: the row is the state machine, the service its transitions. Two instances moving
    # one reservation: the second waits for the first's row lock, then finds the version
    # moved on (0 rows) and gets VersionConflict.
    changed = await rowcount(
        conn,
        f"UPDATE reservations SET {', '.join(f'{n} = %s' for n in names)}"
        " WHERE id = %s AND version = %s",
        [row[n] for n in names] + [rsv.id, rsv.version],
    )
    if changed != 1:
        raise VersionConflict(rsv.id)
    await _append(conn, rsv.id, steps, now)
    return moved


async def listing(conn: Conn, status: str | None, limit: int) -> list[Reservation]:
    """Newest first, optionally one status."""
    if status is None:
        rows = await fetchall(conn, f"{_SELECT} ORDER BY created_at DESC LIMIT %s", (limit,))
    else:
        rows = await fetchall(
            conn, f"{_SELECT} WHERE status = %s ORDER BY created_at DESC LIMIT %s", (status, limit)
        )
    return [_from_row(r) for r in rows]


async def history(conn: Conn, rsv_id: str) -> list[Step]:
    """Oldest first."""
    rows = await fetchall(
        conn,
        "SELECT kind, status, detail, actor, at FROM reservation_history"
        " WHERE reservation_id = %s ORDER BY id",
        (rsv_id,),
    )
    return [Step(r[0], RsvStatus(r[1]), r[2], r[3], r[4]) for r in rows]


async def due(conn: Conn, now: float, stuck_before: float, limit: int) -> list[str]:
    """Ids the sweeper must look at (each query runs on its own index)."""
    found: list[str] = []
    queries: tuple[tuple[str, tuple[Any, ...]], ...] = (
        (
            "SELECT id FROM reservations WHERE status = 'held' AND expires_at <= %s LIMIT %s",
            (now, limit),
        ),
        (
            "SELECT id FROM reservations WHERE status = 'awaiting_code'"
            " AND (code_expires_at <= %s OR expires_at <= %s) LIMIT %s",
            (now, now, limit),
        ),
        (
            "SELECT id FROM reservations WHERE status = 'creating' AND created_at <= %s LIMIT %s",
            (stuck_before, limit),
        ),
    )
    for sql, args in queries:
        for (rsv_id,) in await fetchall(conn, sql, args):
            if rsv_id not in found:
                found.append(rsv_id)
    return found[:limit]


async def next_due(conn: Conn) -> float | None:
    """The earliest due moment of any sweeper work."""
    row = await fetchone(
        conn,
        "SELECT min(t) FROM ("
        " SELECT min(expires_at) AS t FROM reservations WHERE status = 'held'"
        " UNION ALL SELECT min(least(code_expires_at, expires_at)) FROM reservations"
        "  WHERE status = 'awaiting_code'"
        " UNION ALL SELECT min(created_at) FROM reservations WHERE status = 'creating') AS due",
    )
    return None if row is None or row[0] is None else float(row[0])


async def counts(conn: Conn) -> dict[str, int]:
    """Reservations per status."""
    rows = await fetchall(conn, "SELECT status, count(*) FROM reservations GROUP BY status")
    return {str(r[0]): int(r[1]) for r in rows}


async def for_order(conn: Conn, order_system: str, order_ids: Sequence[str]) -> list[str]:
    """Ids of the reservations made for an order (by any of the ids it is known by)."""
    if not order_ids:
        return []
    rows = await fetchall(
        conn,
        "SELECT id FROM reservations WHERE order_system = %s AND order_id = ANY(%s)"
        " ORDER BY created_at",
        (order_system, list(order_ids)),
    )
    return [str(r[0]) for r in rows]
