"""SQL of the reservation tables (called from ``SQLiteStore`` on its writer or readers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import fields, replace
from decimal import Decimal
from typing import Any

from bridge.errors import NotFound
from bridge.store.reservations import (
    OrderTaken,
    Reservation,
    RsvStatus,
    SandboxMessage,
    Step,
    VersionConflict,
)

COLUMNS = tuple(f.name for f in fields(Reservation))
_DECIMALS = frozenset(
    {"amount", "committed", "order_total", "pending_amount", "return_target", "returned"}
)
_STATUSES = frozenset({"status", "pending_then"})
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM reservations"


def _to_row(rsv: Reservation) -> tuple[Any, ...]:
    values = []
    for name in COLUMNS:
        value = getattr(rsv, name)
        if (name in _DECIMALS and value is not None) or (name in _STATUSES and value is not None):
            value = str(value)
        values.append(value)
    return tuple(values)


def _from_row(row: Sequence[Any]) -> Reservation:
    data: dict[str, Any] = dict(zip(COLUMNS, row, strict=True))
    for name in _DECIMALS:
        if data[name] is not None:
            data[name] = Decimal(data[name])
    for name in _STATUSES:
        if data[name] is not None:
            data[name] = RsvStatus(data[name])
    return Reservation(**data)


def _append(conn: sqlite3.Connection, rsv_id: str, steps: Sequence[Step], now: float) -> None:
    conn.executemany(
        "INSERT INTO reservation_history (reservation_id, at, kind, status, detail, actor)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        [(rsv_id, now, s.kind, str(s.status), s.detail, s.actor) for s in steps],
    )


_OPEN = (
    "(status IN ('creating', 'awaiting_code', 'held', 'commit_pending', 'release_pending',"
    " 'committed') OR pending IS NOT NULL)"
)


def create(conn: sqlite3.Connection, rsv: Reservation, step: Step, now: float) -> Reservation:
    """Insert, or return the reservation that already holds the idempotency key; raise
    OrderTaken if the order already has an open reservation."""
    if rsv.idempotency_key is not None:
        found = by_key(conn, rsv.client, rsv.idempotency_key)
        if found is not None:
            return found
    taken = conn.execute(
        f"SELECT id FROM reservations WHERE master = ? AND master_order_id = ? AND {_OPEN}",
        (rsv.master, rsv.master_order_id),
    ).fetchone()
    if taken is not None:
        raise OrderTaken(str(taken[0]))
    marks = ", ".join("?" for _ in COLUMNS)
    conn.execute(
        f"INSERT INTO reservations ({', '.join(COLUMNS)}) VALUES ({marks})",
        _to_row(rsv),
    )
    _append(conn, rsv.id, [step], now)
    return rsv


def by_key(conn: sqlite3.Connection, client: str, key: str) -> Reservation | None:
    """The reservation a client made with this Idempotency-Key, if any."""
    row = conn.execute(
        f"{_SELECT} WHERE client = ? AND idempotency_key = ?", (client, key)
    ).fetchone()
    return None if row is None else _from_row(row)


def get(conn: sqlite3.Connection, rsv_id: str) -> Reservation:
    """One reservation or NotFound."""
    row = conn.execute(f"{_SELECT} WHERE id = ?", (rsv_id,)).fetchone()
    if row is None:
        raise NotFound(f"no reservation {rsv_id!r}")
    return _from_row(row)


def update(
    conn: sqlite3.Connection, rsv: Reservation, steps: Sequence[Step], now: float
) -> Reservation:
    """Compare-and-set on version."""
    moved = replace(rsv, version=rsv.version + 1, updated_at=now)
    names = [c for c in COLUMNS if c != "id"]
    row = dict(zip(COLUMNS, _to_row(moved), strict=True))
    # any -> any status the bonus service decided (bridge.bonus), only from the version it
    # read: the row is the state machine, the service its transitions.
    cursor = conn.execute(
        f"UPDATE reservations SET {', '.join(f'{n} = ?' for n in names)}"
        " WHERE id = ? AND version = ?",
        [row[n] for n in names] + [rsv.id, rsv.version],
    )
    if cursor.rowcount != 1:
        raise VersionConflict(rsv.id)
    _append(conn, rsv.id, steps, now)
    return moved


def listing(conn: sqlite3.Connection, status: str | None, limit: int) -> list[Reservation]:
    """Newest first, optionally one status."""
    if status is None:
        rows = conn.execute(f"{_SELECT} ORDER BY created_at DESC LIMIT ?", (limit,))
    else:
        rows = conn.execute(
            f"{_SELECT} WHERE status = ? ORDER BY created_at DESC LIMIT ?", (status, limit)
        )
    return [_from_row(r) for r in rows.fetchall()]


def history(conn: sqlite3.Connection, rsv_id: str) -> list[Step]:
    """Oldest first."""
    rows = conn.execute(
        "SELECT kind, status, detail, actor, at FROM reservation_history"
        " WHERE reservation_id = ? ORDER BY id",
        (rsv_id,),
    ).fetchall()
    return [Step(r[0], RsvStatus(r[1]), r[2], r[3], r[4]) for r in rows]


def due(conn: sqlite3.Connection, now: float, stuck_before: float, limit: int) -> list[str]:
    """Ids the sweeper must look at (each query runs on its own index)."""
    found: list[str] = []
    queries = (
        (
            "SELECT id FROM reservations WHERE status = 'held' AND expires_at <= ? LIMIT ?",
            (now, limit),
        ),
        (
            "SELECT id FROM reservations WHERE status = 'awaiting_code'"
            " AND (code_expires_at <= ? OR expires_at <= ?) LIMIT ?",
            (now, now, limit),
        ),
        (
            "SELECT id FROM reservations WHERE status = 'creating' AND created_at <= ? LIMIT ?",
            (stuck_before, limit),
        ),
    )
    for sql, args in queries:
        for (rsv_id,) in conn.execute(sql, args).fetchall():
            if rsv_id not in found:
                found.append(rsv_id)
    return found[:limit]


def next_due(conn: sqlite3.Connection) -> float | None:
    """The earliest due moment of any sweeper work."""
    row = conn.execute(
        "SELECT min(t) FROM ("
        " SELECT min(expires_at) AS t FROM reservations WHERE status = 'held'"
        " UNION ALL SELECT min(min(code_expires_at, expires_at)) FROM reservations"
        "  WHERE status = 'awaiting_code'"
        " UNION ALL SELECT min(created_at) FROM reservations WHERE status = 'creating')"
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Reservations per status."""
    rows = conn.execute("SELECT status, count(*) FROM reservations GROUP BY status").fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def claim_sms(
    conn: sqlite3.Connection, phone_key: str, now: float, window: float, cap: int, rsv_id: str
) -> bool:
    """Count and record in one transaction, so concurrent sends cannot pass the cap."""
    conn.execute("DELETE FROM sms_sends WHERE phone_key = ? AND at < ?", (phone_key, now - window))
    (sent,) = conn.execute(
        "SELECT count(*) FROM sms_sends WHERE phone_key = ? AND at >= ?",
        (phone_key, now - window),
    ).fetchone()
    if sent >= cap:
        return False
    conn.execute("INSERT INTO sms_sends VALUES (?, ?, ?)", (phone_key, now, rsv_id))
    return True


def add_message(
    conn: sqlite3.Connection, phone: str, text: str, reference: str | None, now: float
) -> int:
    """Keep a sandbox message."""
    cursor = conn.execute(
        "INSERT INTO sandbox_messages (at, phone, text, reference) VALUES (?, ?, ?, ?)",
        (now, phone, text, reference),
    )
    return int(cursor.lastrowid or 0)


def list_messages(conn: sqlite3.Connection, phone: str | None, limit: int) -> list[SandboxMessage]:
    """Newest first."""
    if phone is None:
        rows = conn.execute(
            "SELECT id, at, phone, text, reference FROM sandbox_messages ORDER BY id DESC LIMIT ?",
            (limit,),
        )
    else:
        rows = conn.execute(
            "SELECT id, at, phone, text, reference FROM sandbox_messages WHERE phone = ?"
            " ORDER BY id DESC LIMIT ?",
            (phone, limit),
        )
    return [SandboxMessage(*r) for r in rows.fetchall()]


def secret(conn: sqlite3.Connection, name: str, made: str) -> str:
    """The stored secret ``name``, inserting ``made`` if there is none."""
    conn.execute("INSERT INTO secrets VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, made))
    (value,) = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
    return str(value)


def for_order(conn: sqlite3.Connection, order_system: str, order_ids: Sequence[str]) -> list[str]:
    """Ids of the reservations made for an order (by any of the ids it is known by)."""
    if not order_ids:
        return []
    marks = ", ".join("?" for _ in order_ids)
    rows = conn.execute(
        f"SELECT id FROM reservations WHERE order_system = ? AND order_id IN ({marks})"
        " ORDER BY created_at",
        (order_system, *order_ids),
    ).fetchall()
    return [str(r[0]) for r in rows]
