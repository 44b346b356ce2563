"""Deliveries out: claimed under a lease in entity order, finished by one attempt,
released when their holder is gone, and what the last write of an entity was."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from bridge.store.records import AttemptOutcome, Claimed, Status
from bridge.store.refs import parse_ref
from bridge.store.sqlite import rows as row_io
from bridge.store.sqlite import sql as q
from bridge.store.sqlite.engine import Engine


def finish(
    conn: sqlite3.Connection,
    claimed: Claimed,
    owner: str,
    outcome: AttemptOutcome,
    now: float,
) -> bool:
    """Move a delivery to the outcome's status if ``owner`` still holds this attempt; the
    attempt goes into history either way."""
    did = parse_ref(claimed.delivery.id, "dlv")
    held = (
        conn.execute(
            q.FINISH,
            (
                outcome.status,
                outcome.due_at,
                outcome.error_class,
                outcome.message,
                now,
                did,
                owner,
                claimed.attempt,
            ),
        ).rowcount
        == 1
    )
    message = outcome.message
    if not held:
        message = f"{message or ''} (lease lost before the result was recorded)".strip()
    conn.execute(
        q.INSERT_HISTORY,
        (
            now,
            "attempt",
            did,
            None,
            claimed.attempt,
            outcome.status,
            outcome.error_class,
            message,
            outcome.duration_ms,
            owner,
        ),
    )
    if held:
        conn.execute(q.REFRESH_EVENTS, (now, did))
        if outcome.written is not None:
            d = claimed.delivery
            conn.execute(
                "INSERT INTO written VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (target, source, entity, entity_id)"
                " DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                (d.target, d.source, d.entity, d.entity_id, outcome.written, now),
            )
    return held


def release_leases(conn: sqlite3.Connection, owner: str | None, now: float) -> int:
    """Return in-flight deliveries whose holder is gone to ``pending``, with history."""
    rows = conn.execute(q.EXPIRED_LEASES, (now, owner, owner)).fetchall()
    for did, attempts, held_by in rows:
        conn.execute(q.RELEASE_LEASE, (now, now, did))
        conn.execute(
            q.INSERT_HISTORY,
            (
                now,
                "lease_expired",
                did,
                None,
                attempts,
                Status.PENDING,
                "lease_expired",
                f"holder {held_by} stopped before finishing; back to pending",
                None,
                owner,
            ),
        )
        conn.execute(q.REFRESH_EVENTS, (now, did))
    return len(rows)


class SQLiteClaims(Engine):
    """Claiming, finishing and releasing deliveries."""

    async def claim_due(self, target: str, owner: str, limit: int) -> list[Claimed]:
        """Lease due deliveries of ``target`` and load the events each carries."""
        now = self._clock()
        lease_until = now + self.lease_seconds

        def job(conn: sqlite3.Connection) -> list[Claimed]:
            ids = [row[0] for row in conn.execute(q.CLAIM_DUE, (target, now, limit))]
            claimed = []
            for did in ids:
                conn.execute(q.MARK_IN_FLIGHT, (owner, lease_until, now, did))
                conn.execute(q.REFRESH_EVENTS, (now, did))
                delivery = row_io.load_delivery(conn, did)
                events = row_io.load_events_of(conn, did)
                claimed.append(Claimed(delivery, events, delivery.attempts))
            return claimed

        return await self._write(job)

    async def finish_attempt(self, claimed: Claimed, owner: str, outcome: AttemptOutcome) -> bool:
        """Record the attempt in history and move the delivery to the outcome's status."""
        now = self._clock()
        return await self._write(lambda conn: finish(conn, claimed, owner, outcome, now))

    async def finish_attempts(
        self, finished: Sequence[tuple[Claimed, AttemptOutcome]], owner: str
    ) -> list[bool]:
        """Several attempts in one writer job (one commit): each as :meth:`finish_attempt`."""
        if not finished:
            return []
        now = self._clock()
        return await self._write(
            lambda conn: [finish(conn, c, owner, outcome, now) for c, outcome in finished]
        )

    async def extend_leases(self, claimed: Sequence[Claimed], owner: str) -> None:
        """Push the leases of deliveries still in flight with ``owner`` a full period out."""
        until = self._clock() + self.lease_seconds
        ids = [parse_ref(c.delivery.id, "dlv") for c in claimed]

        def job(conn: sqlite3.Connection) -> None:
            conn.executemany(q.EXTEND_LEASE, [(until, did, owner) for did in ids])

        if ids:
            await self._write(job)

    async def release_expired_leases(self) -> int:
        """Return in-flight deliveries whose lease ran out to ``pending``."""
        now = self._clock()
        return await self._write(lambda conn: release_leases(conn, None, now))

    async def recover_leases(self, owner: str) -> int:
        """At start-up: under the instance lock every lease not ours is a dead process's,
        so it returns at once; without the lock only expired ones do."""
        now = self._clock()
        holder = owner if self._lock is not None else None
        return await self._write(lambda conn: release_leases(conn, holder, now))

    async def next_due_at(self, target: str, after: float) -> float | None:
        """Earliest due time after ``after`` among waiting deliveries of ``target``."""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT MIN(due_at) FROM deliveries WHERE status IN ('pending', 'retry')"
                " AND target = ? AND due_at > ?",
                (target, after),
            ).fetchone()
        )
        return float(row[0]) if row and row[0] is not None else None

    async def last_written(
        self, target: str, source: str, entity: str, entity_id: str
    ) -> tuple[str, float] | None:
        """The digest of the document last written for this entity into ``target``, and
        when it was written."""
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT digest, updated_at FROM written WHERE target = ? AND source = ?"
                " AND entity = ? AND entity_id = ?",
                (target, source, entity, entity_id),
            ).fetchone()
        )
        return None if row is None else (str(row[0]), float(row[1]))
