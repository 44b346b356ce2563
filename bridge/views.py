"""Records as JSON-ready dicts, one shape for the CLI's ``--json`` and the admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.bonus.phones import mask
from bridge.store.backfills import Backfill
from bridge.store.records import (
    Cursor,
    DeliveryRecord,
    EventDetail,
    EventRecord,
    HistoryEntry,
    QueueDepth,
    ReplayResult,
    Status,
)
from bridge.store.reservations import Reservation, SandboxMessage, Step


def iso(ts: float | None) -> str | None:
    """UNIX seconds → ISO 8601 in UTC with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event_view(e: EventRecord, *, with_payload: bool = False) -> dict[str, Any]:
    """An event without (or with) its payload."""
    out: dict[str, Any] = {
        "id": e.id,
        "source": e.source,
        "source_key": e.source_key,
        "entity": e.entity,
        "entity_id": e.entity_id,
        "action": e.action,
        "status": e.status.value,
        "reason": e.reason,
        "targets": list(e.targets),
        "received_at": iso(e.received_at),
        "updated_at": iso(e.updated_at),
    }
    if with_payload:
        out["payload"] = e.payload
    return out


def delivery_view(d: DeliveryRecord) -> dict[str, Any]:
    """A delivery."""
    return {
        "id": d.id,
        "target": d.target,
        "source": d.source,
        "entity": d.entity,
        "entity_id": d.entity_id,
        "status": d.status.value,
        "attempts": d.attempts,
        "due_at": iso(d.due_at),
        "last_error_class": d.last_error_class,
        "last_error": d.last_error,
        "events": list(d.event_ids),
        "created_at": iso(d.created_at),
        "updated_at": iso(d.updated_at),
    }


def history_view(h: HistoryEntry) -> dict[str, Any]:
    """One history line."""
    return {
        "at": iso(h.at),
        "kind": h.kind,
        "delivery_id": h.delivery_id,
        "event_id": h.event_id,
        "attempt": h.attempt,
        "outcome": h.outcome,
        "error_class": h.error_class,
        "message": h.message,
        "duration_ms": None if h.duration_ms is None else round(h.duration_ms, 1),
        "actor": h.actor,
    }


def detail_view(detail: EventDetail) -> dict[str, Any]:
    """An event with payload, deliveries and history."""
    return {
        **event_view(detail.event, with_payload=True),
        "deliveries": [delivery_view(d) for d in detail.deliveries],
        "history": [history_view(h) for h in detail.history],
    }


def replay_view(result: ReplayResult, dry_run: bool) -> dict[str, Any]:
    """What a replay did."""
    return {
        "dry_run": dry_run,
        "requeued": len(result.requeued),
        "deliveries": result.requeued,
        "skipped": result.skipped,
    }


def queue_view(depth: list[QueueDepth], now: float) -> list[dict[str, Any]]:
    """Queue cells with the age of the oldest waiting delivery."""
    return [
        {
            "target": c.target,
            "status": c.status.value,
            "count": c.count,
            "oldest_age_s": None if c.oldest_at is None else round(now - c.oldest_at, 1),
        }
        for c in depth
    ]


def cursor_view(c: Cursor) -> dict[str, Any]:
    """A poll cursor."""
    return {"source": c.source, "name": c.name, "value": c.value, "updated_at": iso(c.updated_at)}


def reservation_view(
    rsv: Reservation,
    attempts: int,
    history: list[Step] | None = None,
    next_attempt_at: float | None = None,
) -> dict[str, Any]:
    """A reservation as the API shows it; never a code, a digest, or a full phone."""
    out: dict[str, Any] = {
        "id": rsv.id,
        "status": str(rsv.status),
        "master": rsv.master,
        "amount": str(rsv.amount),
        "customer": {"id": rsv.customer_id},
        "order": {"system": rsv.order_system, "id": rsv.order_id},
        "code_sent_to": mask(rsv.phone) if rsv.phone else None,
        "code_expires_at": iso(rsv.code_expires_at) if rsv.code_expires_at else None,
        "attempts_left": max(0, attempts - rsv.attempts),
        "expires_at": iso(rsv.expires_at),
        "created_at": iso(rsv.created_at),
        "updated_at": iso(rsv.updated_at),
    }
    if rsv.order_total is not None:
        out["order"]["total"] = str(rsv.order_total)
    if rsv.channel is not None:
        out["channel"] = rsv.channel
    if rsv.committed is not None:
        out["committed"] = str(rsv.committed)
    if rsv.returned is not None:
        out["returned"] = str(rsv.returned)  # given back at the master on returns so far
    if rsv.pending is not None:
        out["master_call_pending"] = rsv.pending  # a release or commit still owed
        if next_attempt_at is not None:  # when its owed call (bridge.owed) is tried next
            out["next_attempt_at"] = iso(next_attempt_at)
    if rsv.error_code is not None:
        out["error"] = {"code": rsv.error_code, "detail": rsv.error_detail}
    if history is not None:
        out["history"] = [
            {"at": iso(s.at or 0), "kind": s.kind, "status": str(s.status), "detail": s.detail}
            | ({"actor": s.actor} if s.actor else {})
            for s in history
        ]
    return out


def message_view(m: SandboxMessage) -> dict[str, Any]:
    """A sandbox SMS (sandbox only: the text holds the code)."""
    return {"id": m.id, "at": iso(m.at), "phone": m.phone, "text": m.text, "reference": m.reference}


def backfill_view(b: Backfill) -> dict[str, Any]:
    """A backfill with its progress: listed (of the source's total), delivered, dead."""
    return {
        "id": b.id,
        "source": b.spec.source,
        "entity": b.spec.entity,
        "targets": list(b.spec.targets),
        "since": b.spec.since.isoformat() if b.spec.since else None,
        "status": b.status.value,
        "listed": b.listed,
        "total": b.total,
        "delivered": b.events.get(Status.DONE, 0),
        "dead": b.events.get(Status.DEAD, 0),
        "waiting": b.waiting,
        "error": b.error,
        "actor": b.actor,
        "created_at": iso(b.created_at),
        "updated_at": iso(b.updated_at),
        "finished_at": iso(b.finished_at),
    }
