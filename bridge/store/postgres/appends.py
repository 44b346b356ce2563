"""One event's append on PostgreSQL: the call of ``append_event`` (migration 0005) and the
advisory-lock key of each entity it touches; shared by intake's transactions and its group
commit (``bridge.store.postgres.group``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bridge.store.postgres import sql as q
from bridge.store.postgres.engine import Conn
from bridge.store.records import NewEvent, Stored, event_ref, first_status, payload_text


def entity_key(new: NewEvent) -> str:
    """How deliveries name the entity an event changes."""
    return f"{new.source}/{new.event.entity}/{new.event.entity_id}"


def lock_key(target: str, key: str) -> int:
    """A signed 64-bit advisory-lock key for one entity's deliveries to one target."""
    digest = hashlib.blake2b(f"{target}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# One call per event (migration 0005): the event, and per target its delivery (joined or
# new) and the link, under the entity locks the caller took first (:func:`lock_entities`).
APPEND_EVENT = """
SELECT event_id, duplicate FROM append_event(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                                             %s::text[], %s)
"""


def append_args(new: NewEvent, now: float) -> tuple[object, ...]:
    """The arguments of :data:`APPEND_EVENT` for one event."""
    ev = new.event
    status, reason = first_status(new)
    priority = 0 if new.backfill is None else 1
    return (
        new.source,
        ev.source_key,
        ev.entity,
        ev.entity_id,
        ev.action,
        payload_text(ev),
        str(status),
        reason,
        now,
        new.backfill,
        entity_key(new),
        list(new.targets),
        priority,
    )


def stored(row: Sequence[object] | None) -> Stored:
    """What :data:`APPEND_EVENT` answered, as the store protocol says it."""
    assert row is not None
    eid, duplicate = row
    assert isinstance(eid, int)
    return Stored(event_ref(eid), bool(duplicate))


async def lock_entities(conn: Conn, events: Sequence[NewEvent]) -> None:
    """Take the entity locks of a batch of events, in key order, until commit."""
    keys = sorted({lock_key(t, entity_key(e)) for e in events for t in e.targets})
    if keys:
        await conn.execute(q.LOCK_ENTITIES, (keys,))
