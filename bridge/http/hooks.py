"""``POST /hooks/{system}``: authenticate, parse, store durably, then answer 202.

Order of checks: known system (404) → body size (413) → sender auth (401) → parse (422 and
the body kept as a ``rejected`` event) → durable commit (:mod:`bridge.mirror.intake`: routed,
stored, the targets' lanes woken) → 202 ``{"event_id", "duplicate"}``.
The answer is sent only after the commit, so an acknowledged event survives a crash.
"""

from __future__ import annotations

import hashlib
import time

from aiohttp import web

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.errors import AuthError
from bridge.http.problems import Problem, json_response
from bridge.http.state import RUNTIME
from bridge.logs import get_logger
from bridge.mirror.generic_webhook import check_storable, parse_generic_webhook
from bridge.redact import redact_body
from bridge.store.records import Rejected
from bridge.webhook_auth import WebhookUnauthorized, verify_webhook

log = get_logger("bridge.hooks")


async def read_body(request: web.Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes; a larger body is a 413 problem, not a dropped socket."""
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "payload_too_large", f"the body exceeds {limit} bytes")
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > limit:
            raise Problem(413, "payload_too_large", f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def receive_webhook(request: web.Request) -> web.Response:
    """Handle one inbound webhook."""
    rt = request.app[RUNTIME]
    system = request.match_info["system"]
    cfg = rt.settings.systems.get(system)
    if cfg is None or not cfg.enabled or cfg.webhook is None:
        raise Problem(404, "unknown_system", f"no webhook is configured for {system!r}")
    body = await read_body(request, rt.settings.http.max_body_bytes)
    try:
        verify_webhook(cfg.webhook, request.headers, request.query, body, time.time())
    except WebhookUnauthorized as exc:
        rt.metrics.events.labels(system, "unauthorized").inc()
        log.warning("webhook_unauthorized", system=system, reason=str(exc))
        raise Problem(401, "unauthorized", str(exc)) from exc
    parser = rt.connectors.parser(system)
    inbound = WebhookRequest(
        system=system,
        headers=request.headers,
        query=request.query,
        content_type=request.content_type,
        body=body,
    )
    try:
        events = parser.parse_webhook(inbound) if parser else parse_generic_webhook(inbound)
        events = check_storable(events)
    except AuthError as exc:  # a token carried inside the body did not match
        rt.metrics.events.labels(system, "unauthorized").inc()
        log.warning("webhook_unauthorized", system=system, reason=str(exc))
        raise Problem(401, "unauthorized", str(exc)) from exc
    except WebhookRejected as exc:
        stored = await rt.store.append_rejected(
            Rejected(
                system,
                "sha256:" + hashlib.sha256(body).hexdigest(),
                redact_body(body, request.content_type),
                exc.reason,
            )
        )
        rt.metrics.events.labels(system, "rejected").inc()
        log.warning("event_rejected", system=system, event_id=stored.event_id, reason=exc.reason)
        raise Problem(
            422, "unparsable_body", exc.reason, event_id=stored.event_id, duplicate=stored.duplicate
        ) from exc
    received = await rt.intake.receive(system, events)
    if rt.poller is not None:
        rt.poller.wake(system)  # a webhook from a polled system: read its feed now
    for item, result in received.pairs():
        outcome = "duplicate" if result.duplicate else "stored"
        rt.metrics.events.labels(system, outcome).inc()
        log.info(
            "event_received",
            system=system,
            event_id=result.event_id,
            entity=item.event.entity,
            entity_id=item.event.entity_id,
            duplicate=result.duplicate,
            targets=list(item.targets),
        )
    stored_all = received.stored
    if not stored_all:
        return json_response({"event_id": None, "duplicate": False, "events": []}, 202)
    answer: dict[str, object] = {
        "event_id": stored_all[0].event_id,
        "duplicate": all(s.duplicate for s in stored_all),
    }
    if len(stored_all) > 1:
        answer["events"] = [{"event_id": s.event_id, "duplicate": s.duplicate} for s in stored_all]
    return json_response(answer, 202)
