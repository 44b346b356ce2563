"""The generic JSON webhook format, for connectors without a parser of their own.

One change::

    {"event_id": "1c-doc-77-v3", "entity": "order", "id": "77", "action": "changed",
     "data": {...}}

or up to 500 of them as ``{"events": [...]}``. The de-duplication key is ``event_id``,
else the Standard Webhooks ``webhook-id`` (or ``Idempotency-Key``) header, else a digest
of the change itself, so a sender that repeats an identical body for a *new* change must
send an ``event_id``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from typing import Any

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.store.records import InboundEvent, payload_text

MAX_EVENTS = 500
_TEXT_FIELDS = ("entity", "id", "action", "event_id")


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(body: bytes) -> Any:
    """``json.loads`` that refuses NaN/Infinity and absurd nesting with a ValueError."""
    try:
        return json.loads(body, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc


def check_storable(events: list[InboundEvent]) -> list[InboundEvent]:
    """Reject events the store could not write: lone surrogates (``"\\ud800"`` is valid
    JSON but not UTF-8), NaN, or values JSON cannot hold; the message names the field.
    The events come back with their payload serialised as the store writes it (once)."""
    checked = []
    for index, event in enumerate(events):
        where = f"events[{index}]." if len(events) > 1 else ""
        for name in ("source_key", "entity", "entity_id", "action"):
            try:
                getattr(event, name).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise WebhookRejected(f"{where}{name}: is not valid UTF-8 text") from exc
        try:
            text = payload_text(event)
            text.encode("utf-8")
        except (UnicodeEncodeError, ValueError, TypeError, RecursionError) as exc:
            raise WebhookRejected(f"{where}data: cannot be stored ({exc})") from exc
        checked.append(replace(event, text=text))
    return checked


def parse_generic_webhook(request: WebhookRequest) -> list[InboundEvent]:
    """Parse the generic JSON format; WebhookRejected names the offending field."""
    try:
        doc = loads_strict(request.body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise WebhookRejected(f"body is not JSON: {exc}") from exc
    if isinstance(doc, dict) and "events" in doc:
        items = doc["events"]
        if not isinstance(items, list) or not items:
            raise WebhookRejected("events: must be a non-empty list")
        if len(items) > MAX_EVENTS:
            raise WebhookRejected(f"events: at most {MAX_EVENTS} per request")
        prefix = "events"
    else:
        items, prefix = [doc], ""
    header_key = request.headers.get("webhook-id") or request.headers.get("Idempotency-Key")
    out = []
    for index, item in enumerate(items):
        where = f"{prefix}[{index}]." if prefix else ""
        out.append(_parse_one(item, where, header_key, index, len(items)))
    return out


def _parse_one(
    item: Any, where: str, header_key: str | None, index: int, count: int
) -> InboundEvent:
    if not isinstance(item, dict):
        raise WebhookRejected(f"{where or 'body'}: must be a JSON object")
    for name in _TEXT_FIELDS:
        value = item.get(name)
        if value is None:
            if name in ("entity", "id"):
                raise WebhookRejected(f"{where}{name}: is required")
            continue
        if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
            raise WebhookRejected(f"{where}{name}: must be a non-empty string")
        if len(str(value)) > 200:
            raise WebhookRejected(f"{where}{name}: at most 200 characters")
    data = item.get("data", {})
    if not isinstance(data, dict):
        raise WebhookRejected(f"{where}data: must be a JSON object")
    if item.get("event_id") is not None:
        key = str(item["event_id"])
    elif header_key:
        key = header_key if count == 1 else f"{header_key}#{index}"
    else:
        canonical = json.dumps(item, sort_keys=True, ensure_ascii=False).encode()
        key = "sha256:" + hashlib.sha256(canonical).hexdigest()
    return InboundEvent(
        source_key=key,
        entity=str(item["entity"]),
        entity_id=str(item["id"]),
        action=str(item.get("action") or "changed"),
        payload=data,
    )
