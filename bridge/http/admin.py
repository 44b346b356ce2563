"""Admin API (scope ``admin``): the same reads and replays as the CLI."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from bridge.errors import NotFound
from bridge.filters import FilterError, parse_filter
from bridge.http.problems import Problem, json_response
from bridge.http.state import AUTH, RUNTIME
from bridge.http.text import refuse_surrogates
from bridge.mirror.generic_webhook import loads_strict
from bridge.store.records import Status
from bridge.views import detail_view, event_view, replay_view

MAX_REPLAY_IDS = 1000
EVENT_REF = re.compile(r"^(evt_)?[0-9]{1,18}$", re.ASCII)  # as `events list --after`


async def list_events(request: web.Request) -> web.Response:
    """``GET /api/v1/events?status=&source=&target=&since=&until=&limit=&after=``: a page,
    newest first; ``next_after`` (when the page is full) asks for the next one."""
    request.app[AUTH].require(request, "admin")
    query = dict(request.query)
    after = query.pop("after", None) or None
    try:
        flt = parse_filter(query)
    except FilterError as exc:
        raise Problem(400, "invalid_filter", str(exc), field=exc.field) from exc
    if after is not None and not EVENT_REF.match(after):
        raise Problem(400, "invalid_filter", "must be an event id like evt_42", field="after")
    try:
        events = await request.app[RUNTIME].store.list_events(flt, after)
    except NotFound as exc:  # the page's last event was pruned since: start again
        raise Problem(
            400, "invalid_filter", f"{exc}; list again without after", field="after"
        ) from exc
    full = len(events) == flt.limit
    return json_response(
        {
            "events": [event_view(e) for e in events],
            "next_after": events[-1].id if full else None,
        }
    )


async def show_event(request: web.Request) -> web.Response:
    """``GET /api/v1/events/{id}``."""
    request.app[AUTH].require(request, "admin")
    try:
        detail = await request.app[RUNTIME].store.get_event(request.match_info["id"])
    except NotFound as exc:
        raise Problem(404, "not_found", str(exc)) from exc
    return json_response(detail_view(detail))


async def replay(request: web.Request) -> web.Response:
    """``POST /api/v1/events/replay`` with ``{"ids": [...]}`` or ``{"filter": {...}}``."""
    client = request.app[AUTH].require(request, "admin")
    body = await _json_object(request)
    unknown = set(body) - {"ids", "filter", "dry_run"}
    if unknown:
        raise Problem(400, "invalid_request", f"{sorted(unknown)[0]}: unknown field")
    ids = body.get("ids", [])
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise Problem(400, "invalid_request", "ids: must be a list of strings", field="ids")
    if len(ids) > MAX_REPLAY_IDS:
        raise Problem(400, "invalid_request", f"ids: at most {MAX_REPLAY_IDS}", field="ids")
    raw_filter = body.get("filter")
    if raw_filter is not None and not isinstance(raw_filter, dict):
        raise Problem(400, "invalid_request", "filter: must be an object", field="filter")
    if not ids and raw_filter is None:
        raise Problem(400, "invalid_request", "give ids or a filter", field="ids")
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise Problem(400, "invalid_request", "dry_run: must be true or false", field="dry_run")
    flt = None
    if raw_filter is not None:
        try:
            flt = parse_filter(
                {k: None if v is None else str(v) for k, v in raw_filter.items()},
                default_limit=10_000,
            )
        except FilterError as exc:
            raise Problem(400, "invalid_filter", str(exc), field=f"filter.{exc.field}") from exc
        if flt.status not in (None, Status.DEAD, Status.DONE):
            raise Problem(
                400,
                "invalid_filter",
                "filter.status: only dead or done can be replayed",
                field="filter.status",
            )
    try:
        result = await request.app[RUNTIME].store.replay(ids, flt, f"api:{client.name}", dry_run)
    except NotFound as exc:
        raise Problem(400, "invalid_request", f"ids: {exc}", field="ids") from exc
    return json_response(replay_view(result, dry_run))


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = loads_strict(raw or b"{}")
    except ValueError as exc:
        raise Problem(400, "invalid_json", f"body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Problem(400, "invalid_json", "body must be a JSON object")
    refuse_surrogates(body)
    return body
