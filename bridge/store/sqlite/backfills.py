"""SQL of the backfill table (called from ``SQLiteStore`` on its writer or readers)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import date
from typing import Any

from bridge.errors import NotFound
from bridge.store.backfills import (
    OPEN,
    Backfill,
    BackfillSpec,
    BackfillStatus,
    backfill_ref,
)
from bridge.store.records import NewEvent, Status, Stored
from bridge.store.refs import parse_ref
from bridge.store.sqlite.intake import insert_event

_COLUMNS = (
    "id, source, entity, targets, since, status, cursor, listed, total, error, actor,"
    " created_at, updated_at, finished_at"
)
_OPEN_SQL = "status IN ('listing', 'delivering')"


def _load(conn: sqlite3.Connection, row: Sequence[Any]) -> Backfill:
    (bid, source, entity, targets, since, status, cursor, listed, total, error, actor) = row[:11]
    counts = conn.execute(
        "SELECT status, count(*) FROM events WHERE backfill = ? GROUP BY status", (bid,)
    ).fetchall()
    spec = BackfillSpec(
        source, entity, tuple(targets.split(",")), date.fromisoformat(since) if since else None
    )
    return Backfill(
        id=backfill_ref(bid),
        spec=spec,
        status=BackfillStatus(status),
        cursor=cursor,
        listed=listed,
        total=total,
        error=error,
        actor=actor,
        created_at=row[11],
        updated_at=row[12],
        finished_at=row[13],
        events={Status(s): n for s, n in counts},
    )


def _targets(spec: BackfillSpec) -> str:
    return ",".join(sorted(set(spec.targets)))


def open_(
    conn: sqlite3.Connection, spec: BackfillSpec, actor: str, now: float
) -> tuple[Backfill, bool]:
    since = spec.since.isoformat() if spec.since else None
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM backfills WHERE source = ? AND entity = ? AND targets = ?"
        f" AND ifnull(since, '') = ifnull(?, '') AND {_OPEN_SQL}",
        (spec.source, spec.entity, _targets(spec), since),
    ).fetchone()
    if row is not None:
        return _load(conn, row), False
    # -> listing: a new backfill, its first page not yet listed.
    bid = conn.execute(
        "INSERT INTO backfills (source, entity, targets, since, status, actor, created_at,"
        " updated_at) VALUES (?, ?, ?, ?, 'listing', ?, ?, ?) RETURNING id",
        (spec.source, spec.entity, _targets(spec), since, actor, now, now),
    ).fetchone()[0]
    return get(conn, backfill_ref(bid)), True


def get(conn: sqlite3.Connection, backfill_id: str) -> Backfill:
    bid = parse_ref(backfill_id, "bf")
    row = conn.execute(f"SELECT {_COLUMNS} FROM backfills WHERE id = ?", (bid,)).fetchone()
    if row is None:
        raise NotFound(f"no backfill {backfill_id}")
    return _load(conn, row)


def listing(conn: sqlite3.Connection, open_only: bool, limit: int) -> list[Backfill]:
    where = f"WHERE {_OPEN_SQL}" if open_only else ""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM backfills {where} ORDER BY id DESC LIMIT ?", (limit,)
    ).fetchall()
    return [_load(conn, row) for row in rows]


def append(
    conn: sqlite3.Connection,
    backfill_id: str,
    events: Sequence[NewEvent],
    cursor: str | None,
    total: int | None,
    now: float,
) -> list[Stored]:
    bid = parse_ref(backfill_id, "bf")
    # listing -> listing (a page stored, more to list) | delivering (that was the last page).
    moved = conn.execute(
        "UPDATE backfills SET cursor = ?, listed = listed + ?, total = ifnull(?, total),"
        " status = ?, error = NULL, updated_at = ? WHERE id = ? AND status = 'listing'",
        (
            cursor,
            len(events),
            total,
            BackfillStatus.LISTING if cursor is not None else BackfillStatus.DELIVERING,
            now,
            bid,
        ),
    ).rowcount
    if not moved:  # cancelled (or finished) meanwhile: the page is not stored
        return []
    stored = [insert_event(conn, e, now) for e in events]
    duplicates = sum(1 for s in stored if s.duplicate)
    if duplicates:  # a page listed again after an interruption counts once
        conn.execute("UPDATE backfills SET listed = listed - ? WHERE id = ?", (duplicates, bid))
    return stored


def set_status(
    conn: sqlite3.Connection,
    backfill_id: str,
    status: BackfillStatus,
    error: str | None,
    now: float,
) -> bool:
    bid = parse_ref(backfill_id, "bf")
    finished = None if status in OPEN else now
    # listing|delivering -> done | cancelled | failed (finished), or the same status with a
    # listing error recorded; a finished backfill does not move again.
    return bool(
        conn.execute(
            f"UPDATE backfills SET status = ?, error = ?, updated_at = ?, finished_at = ?"
            f" WHERE id = ? AND {_OPEN_SQL}",
            (status, error, now, finished, bid),
        ).rowcount
    )
