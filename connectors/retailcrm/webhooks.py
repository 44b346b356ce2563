"""RetailCRM trigger calls: a hint that an order or customer changed, that wakes the poller.

retailcrm-api.md §5: v5 has no webhook-subscription API; a trigger (set up in the UI) can
send an HTTP request whose method, URL and parameters the integrator chooses, with no
documented signing or encoding. Sender auth is the core's ``?token=`` check
(``webhook.auth: query``).

A trigger also fires for the bridge's own writes, and it cannot tell them apart, so its
event is stored for the record under the entity ``trigger`` (never routed) and only wakes
the history poller, which drops the bridge's own changes by ``apiKey.current`` (§2.5).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.mirror.generic_webhook import loads_strict
from bridge.store.records import InboundEvent

TRIGGER_ENTITY = "trigger"
# retailcrm-api.md §5: trigger events are "order changed" / "customer changed"; each has its
# own history feed (§2.5 orders/history, §3 customers/history) and its own id sequence.
ENTITIES = frozenset({"order", "customer"})
MAX_FIELDS = 50
MAX_TEXT = 500
_NUMBER = re.compile(r"[0-9]{1,20}")  # internal ids and history ids are integers (§2.2, §2.5)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]\-]{0,63}")  # also PHP-style a[b]


def parse_trigger(request: WebhookRequest) -> list[InboundEvent]:
    """One ``trigger`` event naming the changed entity, from a JSON, form or query call."""
    fields = read_trigger_fields(request)
    entity = _required(fields, "entity")
    if entity not in ENTITIES:
        allowed = ", ".join(sorted(ENTITIES))
        raise WebhookRejected(f"entity: {entity!r} is not one of {allowed}")
    entity_id = _required(fields, "id")
    if not _NUMBER.fullmatch(entity_id):
        raise WebhookRejected("id: must be the RetailCRM internal id (digits)")
    history_id = fields.get("historyId")
    if history_id is not None and not _NUMBER.fullmatch(history_id):
        raise WebhookRejected("historyId: must be a history record id (digits)")
    return [
        InboundEvent(
            source_key=_source_key(request, entity, history_id, fields),
            entity=TRIGGER_ENTITY,
            entity_id=f"{entity}/{entity_id}",
            payload=dict(fields),
        )
    ]


def read_trigger_fields(request: WebhookRequest) -> dict[str, str]:
    """The call's parameters: from a JSON or form body, else from the query string."""
    body = request.body.strip()
    if not body:
        # A trigger may put every parameter in the URL; ``token`` is the core's credential.
        pairs: list[tuple[str, Any]] = [(k, v) for k, v in request.query.items() if k != "token"]
        where = "query"
    elif "json" in request.content_type or body.startswith(b"{"):
        pairs, where = list(_json_object(body).items()), "body"
    else:
        pairs, where = _form_pairs(body), "body"
    if len(pairs) > MAX_FIELDS:
        raise WebhookRejected(f"{where}: at most {MAX_FIELDS} parameters")
    fields: dict[str, str] = {}
    for name, value in pairs:
        if not _NAME.fullmatch(name):
            raise WebhookRejected(f"{name[:64]!r}: is not a parameter name the bridge accepts")
        if name in fields:
            raise WebhookRejected(f"{name}: given more than once")
        text = _scalar_text(name, value)
        if text is not None:
            fields[name] = text
    return fields


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        doc = loads_strict(body)
    except ValueError as exc:  # also bad UTF-8, NaN, absurd nesting and 4300+ digit numbers
        raise WebhookRejected(f"body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise WebhookRejected("body: must be a JSON object")
    return doc


def _form_pairs(body: bytes) -> list[tuple[str, Any]]:
    try:
        text = body.decode("utf-8")
        return list(
            parse_qsl(text, keep_blank_values=True, errors="strict", max_num_fields=MAX_FIELDS)
        )
    except UnicodeDecodeError as exc:
        raise WebhookRejected(f"body: is not UTF-8 form data: {exc}") from exc
    except ValueError as exc:  # raised by parse_qsl past max_num_fields
        raise WebhookRejected(f"body: at most {MAX_FIELDS} parameters") from exc


def _scalar_text(name: str, value: Any) -> str | None:
    """A parameter as text; ``None`` for null or empty (an unset template, e.g. externalId)."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise WebhookRejected(f"{name}: must be a string or an integer")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise WebhookRejected(f"{name}: at most {MAX_TEXT} characters")
    return text


def _required(fields: dict[str, str], name: str) -> str:
    value = fields.get(name)
    if value is None:
        raise WebhookRejected(f"{name}: is required")
    return value


def _source_key(
    request: WebhookRequest, entity: str, history_id: str | None, fields: dict[str, str]
) -> str:
    """De-duplication key: the history record id, else a delivery id header, else a digest.

    The digest (``bridge.mirror.generic_webhook``'s rule) makes a repeated identical call a
    duplicate, so a trigger must send a change id or a timestamp for two changes to count as two.
    """
    if history_id is not None:
        # Orders and customers have separate history feeds, so the id alone is not unique.
        return f"{entity}-history:{history_id}"
    header = request.headers.get("webhook-id") or request.headers.get("Idempotency-Key")
    if header:
        return header
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()
