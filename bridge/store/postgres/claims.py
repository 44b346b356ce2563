"""Deliveries out: claimed under a lease in entity order (``FOR UPDATE SKIP LOCKED``, so
instances never wait on each other's claims), finished by one attempt, released when their
lease ran out, and what the last write of an entity was."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.store.postgres import rows as row_io
from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn, Engine, fetchall, fetchone, rowcount
from bridge.store.records import AttemptOutcome, Claimed, Status
from bridge.store.refs import parse_ref


async def claim(
    conn: Conn, target: str, owner: str, limit: int, now: float, lease_until: float
) -> list[Claimed]:
    """Lease the due deliveries of ``target`` no other instance is claiming."""
    ids = [r[0] for r in await fetchall(conn, q.CLAIM_DUE, (target, now, limit))]
    if not ids:
        return []
    await conn.execute(q.MARK_IN_FLIGHT, (owner, lease_until, now, ids))
    await row_io.refresh_events(conn, ids, now)
    claimed = []
    for did in ids:
        delivery = await row_io.load_delivery(conn, did)
        events = await row_io.load_events_of(conn, did)
        claimed.append(Claimed(delivery, events, delivery.attempts))
    return claimed


async def finish(
    conn: Conn, claimed: Claimed, owner: str, outcome: AttemptOutcome, now: float
) -> bool:
    """Move a delivery to the outcome's status if ``owner`` still holds this attempt; the
    attempt goes into history either way."""
    did = parse_ref(claimed.delivery.id, "dlv")
    args = (str(outcome.status), outcome.due_at, outcome.error_class, outcome.message, now)
    held = await rowcount(conn, q.FINISH, (*args, did, owner, claimed.attempt)) == 1
    message = outcome.message
    if not held:
        message = f"{message or ''} (lease lost before the result was recorded)".strip()
    await conn.execute(
        q.INSERT_HISTORY,
        (
            now,
            "attempt",
            did,
            None,
            claimed.attempt,
            str(outcome.status),
            outcome.error_class,
            message,
            outcome.duration_ms,
            owner,
        ),
    )
    if held:
        await row_io.refresh_events(conn, [did], now)
        if outcome.written is not None:
            d = claimed.delivery
            await conn.execute(
                "INSERT INTO written VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (target, source, entity, entity_id)"
                " DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
                (d.target, d.source, d.entity, d.entity_id, outcome.written, now),
            )
    return held


async def release_leases(conn: Conn, actor: str | None, now: float) -> int:
    """Return in-flight deliveries whose lease ran out to ``pending``, with history."""
    expired = await fetchall(conn, q.EXPIRED_LEASES, (now,))
    if not expired:
        return 0
    ids = [did for did, _attempts, _held_by in expired]
    await conn.execute(q.RELEASE_LEASE, (now, now, ids))
    async with conn.cursor() as cur:
        await cur.executemany(
            q.INSERT_HISTORY,
            [
                (
                    now,
                    "lease_expired",
                    did,
                    None,
                    attempts,
                    str(Status.PENDING),
                    "lease_expired",
                    f"holder {held_by} stopped before finishing; back to pending",
                    None,
                    actor,
                )
                for did, attempts, held_by in expired
            ],
        )
    await row_io.refresh_events(conn, ids, now)
    return len(expired)


class PostgresClaims(Engine):
    """Claiming, finishing and releasing deliveries."""

    async def claim_due(self, target: str, owner: str, limit: int) -> list[Claimed]:
        """Lease due deliveries of ``target`` and load the events each carries."""
        now = self._clock()
        until = now + self.lease_seconds
        return await self._write(lambda conn: claim(conn, target, owner, limit, now, until))

    async def finish_attempt(self, claimed: Claimed, owner: str, outcome: AttemptOutcome) -> bool:
        """Record the attempt in history and move the delivery to the outcome's status."""
        now = self._clock()
        return await self._write(lambda conn: finish(conn, claimed, owner, outcome, now))

    async def finish_attempts(
        self, finished: Sequence[tuple[Claimed, AttemptOutcome]], owner: str
    ) -> list[bool]:
        """Several attempts in one transaction: each as :meth:`finish_attempt`."""
        if not finished:
            return []
        now = self._clock()

        async def job(conn: Conn) -> list[bool]:
            return [await finish(conn, c, owner, outcome, now) for c, outcome in finished]

        return await self._write(job)

    async def extend_leases(self, claimed: Sequence[Claimed], owner: str) -> None:
        """Push the leases of deliveries still in flight with ``owner`` a full period out."""
        until = self._clock() + self.lease_seconds
        ids = [parse_ref(c.delivery.id, "dlv") for c in claimed]
        if ids:
            await self._write(lambda conn: conn.execute(q.EXTEND_LEASE, (until, ids, owner)))

    async def release_expired_leases(self) -> int:
        """Return in-flight deliveries whose lease ran out to ``pending``."""
        now = self._clock()
        return await self._write(lambda conn: release_leases(conn, None, now))

    async def recover_leases(self, owner: str) -> int:
        """At start-up: only leases that ran out return. Other instances may be serving
        the same database, so a lease not ours is not proof that its holder is gone."""
        now = self._clock()
        return await self._write(lambda conn: release_leases(conn, owner, now))

    async def next_due_at(self, target: str, after: float) -> float | None:
        """Earliest due time after ``after`` among waiting deliveries of ``target``."""
        row = await self._read(
            lambda conn: fetchone(
                conn,
                "SELECT MIN(due_at) FROM deliveries WHERE status IN ('pending', 'retry')"
                " AND target = %s AND due_at > %s",
                (target, after),
            )
        )
        return float(row[0]) if row and row[0] is not None else None

    async def last_written(
        self, target: str, source: str, entity: str, entity_id: str
    ) -> tuple[str, float] | None:
        """The digest of the document last written for this entity into ``target``, and
        when it was written."""
        row = await self._read(
            lambda conn: fetchone(
                conn,
                "SELECT digest, updated_at FROM written WHERE target = %s AND source = %s"
                " AND entity = %s AND entity_id = %s",
                (target, source, entity, entity_id),
            )
        )
        return None if row is None else (str(row[0]), float(row[1]))
