"""Replay: which deliveries a replay takes (by delivery id, by event id, by filter) and
why it skips the others; requeued with a new generation and a history line."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bridge.store.postgres import rows as row_io
from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone
from bridge.store.records import EventFilter, ReplayResult, Status, delivery_ref
from bridge.store.refs import parse_ref

_REPLAYABLE = (Status.DEAD, Status.DONE)

Chosen = dict[int, None]  # delivery ids in the order they were chosen


async def _choose_delivery(conn: Conn, ref: str, chosen: Chosen) -> str | None:
    """Choose one delivery named by id; the reason it is skipped, if it is."""
    did = parse_ref(ref, "dlv")
    row = await fetchone(conn, "SELECT status FROM deliveries WHERE id = %s FOR UPDATE", (did,))
    if row is None:
        return "not found"
    if row[0] not in _REPLAYABLE:
        return f"is {row[0]}: already queued"
    chosen[did] = None
    return None


async def _choose_event(conn: Conn, ref: str, chosen: Chosen) -> str | None:
    """Choose the deliveries of one event named by id; the reason it is skipped, if it is."""
    eid = parse_ref(ref, "evt")
    event = await fetchone(conn, "SELECT status FROM events WHERE id = %s", (eid,))
    if event is None:
        return "not found"
    if event[0] == Status.REJECTED:
        return "is rejected: its body could not be parsed, so it has no deliveries"
    rows = await fetchall(
        conn,
        "SELECT d.id, d.status FROM delivery_events de JOIN deliveries d"
        " ON d.id = de.delivery_id WHERE de.event_id = %s ORDER BY d.id FOR UPDATE OF d",
        (eid,),
    )
    # An event replays its dead deliveries; if none is dead, all its finished ones.
    dead = [r[0] for r in rows if r[1] == Status.DEAD]
    picked = dead or [r[0] for r in rows if r[1] == Status.DONE]
    chosen.update(dict.fromkeys(picked))
    if not rows:
        return "has no deliveries (no route matched it)"
    if not picked:
        return "its deliveries are already queued"
    return None


async def _choose_filtered(conn: Conn, flt: EventFilter, chosen: Chosen) -> None:
    """Choose the deliveries a filter matches (dead unless it names another status)."""
    clauses = ["d.status = %s"]
    args: list[Any] = [str(flt.status or Status.DEAD)]
    for column, value in (("d.target", flt.target), ("d.source", flt.source)):
        if value is not None:
            clauses.append(f"{column} = %s")
            args.append(value)
    if flt.since is not None:
        clauses.append("d.created_at >= %s")
        args.append(flt.since)
    if flt.until is not None:
        clauses.append("d.created_at < %s")
        args.append(flt.until)
    rows = await fetchall(
        conn,
        f"SELECT d.id FROM deliveries d WHERE {' AND '.join(clauses)} ORDER BY d.id LIMIT %s"
        " FOR UPDATE OF d",
        (*args, flt.limit),
    )
    chosen.update(dict.fromkeys(r[0] for r in rows))


async def select_for_replay(
    conn: Conn, ids: Sequence[str], flt: EventFilter | None
) -> tuple[list[int], dict[str, str]]:
    """Delivery ids a replay would requeue (locked until the transaction ends), and why
    the others were skipped."""
    chosen: Chosen = {}
    skipped: dict[str, str] = {}
    for ref in ids:
        choose = _choose_delivery if ref.startswith("dlv_") else _choose_event
        reason = await choose(conn, ref, chosen)
        if reason is not None:
            skipped[ref] = reason
    if flt is not None:
        await _choose_filtered(conn, flt, chosen)
    return list(chosen), skipped


async def requeue(conn: Conn, dids: Sequence[int], actor: str, now: float) -> None:
    """Requeue deliveries by a replay, each with its history line."""
    if not dids:
        return
    await conn.execute(q.REQUEUE, (now, now, list(dids)))
    line = ("replayed", str(Status.PENDING), None, "requeued by replay", None, actor)
    async with conn.cursor() as cur:
        await cur.executemany(
            q.INSERT_HISTORY,
            [(now, line[0], did, None, None, *line[1:]) for did in dids],
        )
    await row_io.refresh_events(conn, dids, now)


class PostgresReplay(Engine):
    """Requeueing finished deliveries."""

    async def replay(
        self, ids: Sequence[str], flt: EventFilter | None, actor: str, dry_run: bool
    ) -> ReplayResult:
        """Requeue deliveries by id (dead or done) or by filter; history records who did it."""
        now = self._clock()

        async def job(conn: Conn) -> ReplayResult:
            chosen, skipped = await select_for_replay(conn, ids, flt)
            if not dry_run:
                await requeue(conn, chosen, actor, now)
            return ReplayResult([delivery_ref(d) for d in chosen], skipped)

        return await self._write(job)
