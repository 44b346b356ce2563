"""SQL of the backfill table (called from ``PostgresStore`` in its write or read jobs).

Two instances opening the same backfill at once: the unique index on open backfills lets
one insert, the other's transaction runs again (``engine``) and resumes that one.
"""

from __future__ import annotations

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
from bridge.store.postgres.engine import Conn, fetchall, fetchone, rowcount
from bridge.store.postgres.intake import insert_events
from bridge.store.records import NewEvent, Status, Stored
from bridge.store.refs import parse_ref

_COLUMNS = (
    "id, source, entity, targets, since, status, cursor, listed, total, error, actor,"
    " created_at, updated_at, finished_at"
)
_OPEN_SQL = "status IN ('listing', 'delivering')"


async def _load(conn: Conn, row: Sequence[Any]) -> Backfill:
    (bid, source, entity, targets, since, status, cursor, listed, total, error, actor) = row[:11]
    counts = await fetchall(
        conn, "SELECT status, count(*) FROM events WHERE backfill = %s GROUP BY status", (bid,)
    )
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


async def open_(conn: Conn, spec: BackfillSpec, actor: str, now: float) -> tuple[Backfill, bool]:
    """The open backfill of ``spec`` (False), or a new one (True)."""
    since = spec.since.isoformat() if spec.since else None
    row = await fetchone(
        conn,
        f"SELECT {_COLUMNS} FROM backfills WHERE source = %s AND entity = %s AND targets = %s"
        f" AND coalesce(since, '') = coalesce(%s::text, '') AND {_OPEN_SQL}",
        (spec.source, spec.entity, _targets(spec), since),
    )
    if row is not None:
        return await _load(conn, row), False
    # -> listing: a new backfill, its first page not yet listed.
    made = await fetchone(
        conn,
        "INSERT INTO backfills (source, entity, targets, since, status, actor, created_at,"
        " updated_at) VALUES (%s, %s, %s, %s, 'listing', %s, %s, %s) RETURNING id",
        (spec.source, spec.entity, _targets(spec), since, actor, now, now),
    )
    assert made is not None
    return await get(conn, backfill_ref(made[0])), True


async def get(conn: Conn, backfill_id: str) -> Backfill:
    """One backfill; NotFound if there is none."""
    bid = parse_ref(backfill_id, "bf")
    row = await fetchone(conn, f"SELECT {_COLUMNS} FROM backfills WHERE id = %s", (bid,))
    if row is None:
        raise NotFound(f"no backfill {backfill_id}")
    return await _load(conn, row)


async def listing(conn: Conn, open_only: bool, limit: int) -> list[Backfill]:
    """Newest first."""
    where = f"WHERE {_OPEN_SQL}" if open_only else ""
    rows = await fetchall(
        conn, f"SELECT {_COLUMNS} FROM backfills {where} ORDER BY id DESC LIMIT %s", (limit,)
    )
    return [await _load(conn, row) for row in rows]


async def append(
    conn: Conn,
    backfill_id: str,
    events: Sequence[NewEvent],
    cursor: str | None,
    total: int | None,
    now: float,
) -> list[Stored]:
    """A listed page and the cursor after it, together."""
    bid = parse_ref(backfill_id, "bf")
    status = BackfillStatus.LISTING if cursor is not None else BackfillStatus.DELIVERING
    # listing -> listing (a page stored, more to list) | delivering (that was the last page).
    moved = await rowcount(
        conn,
        "UPDATE backfills SET cursor = %s, listed = listed + %s,"
        " total = coalesce(%s::integer, total), status = %s, error = NULL, updated_at = %s"
        " WHERE id = %s AND status = 'listing'",
        (cursor, len(events), total, str(status), now, bid),
    )
    if not moved:  # cancelled (or finished) meanwhile: the page is not stored
        return []
    stored = await insert_events(conn, events, now)
    duplicates = sum(1 for s in stored if s.duplicate)
    if duplicates:  # a page listed again after an interruption counts once
        await conn.execute(
            "UPDATE backfills SET listed = listed - %s WHERE id = %s", (duplicates, bid)
        )
    return stored


async def set_status(
    conn: Conn, backfill_id: str, status: BackfillStatus, error: str | None, now: float
) -> bool:
    """Move an open backfill on; False when it was no longer open."""
    bid = parse_ref(backfill_id, "bf")
    finished = None if status in OPEN else now
    # listing|delivering -> done | cancelled | failed (finished), or the same status with a
    # listing error recorded; a finished backfill does not move again.
    return bool(
        await rowcount(
            conn,
            "UPDATE backfills SET status = %s, error = %s, updated_at = %s, finished_at = %s"
            f" WHERE id = %s AND {_OPEN_SQL}",
            (str(status), error, now, finished, bid),
        )
    )
