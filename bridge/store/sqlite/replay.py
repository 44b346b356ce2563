"""Replay: which deliveries a replay takes (by delivery id, by event id, by filter) and
why it skips the others; requeued with a new generation and a history line."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from bridge.store.records import EventFilter, ReplayResult, Status, delivery_ref
from bridge.store.refs import parse_ref
from bridge.store.sqlite import sql as q
from bridge.store.sqlite.engine import Engine

_REPLAYABLE = (Status.DEAD, Status.DONE)

Chosen = dict[int, None]  # delivery ids in the order they were chosen


def _choose_delivery(conn: sqlite3.Connection, ref: str, chosen: Chosen) -> str | None:
    """Choose one delivery named by id; the reason it is skipped, if it is."""
    did = parse_ref(ref, "dlv")
    row = conn.execute("SELECT status FROM deliveries WHERE id = ?", (did,)).fetchone()
    if row is None:
        return "not found"
    if row[0] not in _REPLAYABLE:
        return f"is {row[0]}: already queued"
    chosen[did] = None
    return None


def _choose_event(conn: sqlite3.Connection, ref: str, chosen: Chosen) -> str | None:
    """Choose the deliveries of one event named by id; the reason it is skipped, if it is."""
    eid = parse_ref(ref, "evt")
    event = conn.execute("SELECT status FROM events WHERE id = ?", (eid,)).fetchone()
    if event is None:
        return "not found"
    if event[0] == Status.REJECTED:
        return "is rejected: its body could not be parsed, so it has no deliveries"
    rows = conn.execute(
        "SELECT d.id, d.status FROM delivery_events de JOIN deliveries d"
        " ON d.id = de.delivery_id WHERE de.event_id = ? ORDER BY d.id",
        (eid,),
    ).fetchall()
    # An event replays its dead deliveries; if none is dead, all its finished ones.
    dead = [r[0] for r in rows if r[1] == Status.DEAD]
    picked = dead or [r[0] for r in rows if r[1] == Status.DONE]
    chosen.update(dict.fromkeys(picked))
    if not rows:
        return "has no deliveries (no route matched it)"
    if not picked:
        return "its deliveries are already queued"
    return None


def _choose_filtered(conn: sqlite3.Connection, flt: EventFilter, chosen: Chosen) -> None:
    """Choose the deliveries a filter matches (dead unless it names another status)."""
    clauses = ["d.status = ?"]
    args: list[Any] = [flt.status or Status.DEAD]
    for column, value in (("d.target", flt.target), ("d.source", flt.source)):
        if value is not None:
            clauses.append(f"{column} = ?")
            args.append(value)
    if flt.since is not None:
        clauses.append("d.created_at >= ?")
        args.append(flt.since)
    if flt.until is not None:
        clauses.append("d.created_at < ?")
        args.append(flt.until)
    rows = conn.execute(
        f"SELECT d.id FROM deliveries d WHERE {' AND '.join(clauses)} ORDER BY d.id LIMIT ?",
        (*args, flt.limit),
    ).fetchall()
    chosen.update(dict.fromkeys(r[0] for r in rows))


def select_for_replay(
    conn: sqlite3.Connection, ids: Sequence[str], flt: EventFilter | None
) -> tuple[list[int], dict[str, str]]:
    """Delivery ids a replay would requeue, and why the others were skipped."""
    chosen: Chosen = {}
    skipped: dict[str, str] = {}
    for ref in ids:
        choose = _choose_delivery if ref.startswith("dlv_") else _choose_event
        reason = choose(conn, ref, chosen)
        if reason is not None:
            skipped[ref] = reason
    if flt is not None:
        _choose_filtered(conn, flt, chosen)
    return list(chosen), skipped


def requeue(conn: sqlite3.Connection, did: int, actor: str, now: float) -> None:
    """Requeue one delivery by a replay, with its history line."""
    conn.execute(q.REQUEUE, (now, now, did))
    conn.execute(
        q.INSERT_HISTORY,
        (now, "replayed", did, None, None, Status.PENDING, None, "requeued by replay", None, actor),
    )
    conn.execute(q.REFRESH_EVENTS, (now, did))


class SQLiteReplay(Engine):
    """Requeueing finished deliveries."""

    async def replay(
        self, ids: Sequence[str], flt: EventFilter | None, actor: str, dry_run: bool
    ) -> ReplayResult:
        """Requeue deliveries by id (dead or done) or by filter; history records who did it."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> ReplayResult:
            chosen, skipped = select_for_replay(conn, ids, flt)
            if not dry_run:
                for did in chosen:
                    requeue(conn, did, actor, now)
            return ReplayResult([delivery_ref(d) for d in chosen], skipped)

        return await self._write(job)
