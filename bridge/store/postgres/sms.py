"""What sending codes keeps: the per-phone cap, the sandbox's outbox, and the stored secret
codes are hashed with (called from ``PostgresStore`` in its write or read jobs)."""

from __future__ import annotations

from bridge.store.postgres.appends import lock_key
from bridge.store.postgres.engine import Conn, fetchall, fetchone
from bridge.store.reservations import SandboxMessage


async def claim_sms(
    conn: Conn, phone_key: str, now: float, window: float, cap: int, rsv_id: str
) -> bool:
    """Count and record under the phone's advisory lock, so sends through several
    instances at once cannot pass the cap."""
    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key("sms", phone_key),))
    await conn.execute(
        "DELETE FROM sms_sends WHERE phone_key = %s AND at < %s", (phone_key, now - window)
    )
    row = await fetchone(
        conn,
        "SELECT count(*) FROM sms_sends WHERE phone_key = %s AND at >= %s",
        (phone_key, now - window),
    )
    if row is not None and row[0] >= cap:
        return False
    await conn.execute("INSERT INTO sms_sends VALUES (%s, %s, %s)", (phone_key, now, rsv_id))
    return True


async def add_message(conn: Conn, phone: str, text: str, reference: str | None, now: float) -> int:
    """Keep a sandbox message."""
    row = await fetchone(
        conn,
        "INSERT INTO sandbox_messages (at, phone, text, reference) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (now, phone, text, reference),
    )
    return int(row[0]) if row else 0


async def list_messages(conn: Conn, phone: str | None, limit: int) -> list[SandboxMessage]:
    """Newest first."""
    columns = "SELECT id, at, phone, text, reference FROM sandbox_messages"
    if phone is None:
        rows = await fetchall(conn, f"{columns} ORDER BY id DESC LIMIT %s", (limit,))
    else:
        rows = await fetchall(
            conn, f"{columns} WHERE phone = %s ORDER BY id DESC LIMIT %s", (phone, limit)
        )
    return [SandboxMessage(*r) for r in rows]


async def secret(conn: Conn, name: str, made: str) -> str:
    """The stored secret ``name``, inserting ``made`` if there is none (the first instance
    to ask wins; the others read its value)."""
    await conn.execute(
        "INSERT INTO secrets VALUES (%s, %s) ON CONFLICT (name) DO NOTHING", (name, made)
    )
    row = await fetchone(conn, "SELECT value FROM secrets WHERE name = %s", (name,))
    assert row is not None
    return str(row[0])
