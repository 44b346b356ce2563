"""Records as JSON-ready dicts, one shape for the CLI's ``--json`` and the admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from bridge.store.records import (
    Cursor,
    DeliveryRecord,
    EventDetail,
    EventRecord,
    HistoryEntry,
    QueueDepth,
    ReplayResult,
)


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
