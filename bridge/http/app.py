"""The aiohttp application: routes, the problem/metrics middleware, health and readiness."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.bonus.phones import normalize_phone
from bridge.errors import StoreError
from bridge.http import adjustments, admin, bonus, calculate, customers, hooks, reservations
from bridge.http.auth import ClientAuth
from bridge.http.problems import Problem, http_problem, json_response, problem_response
from bridge.http.protocol import (
    answer_parser_errors_with_problems,
    check_content_encoding,
    unreadable_body,
)
from bridge.http.state import AUTH, RUNTIME
from bridge.http.text import plain_text
from bridge.logs import get_logger
from bridge.runtime import Runtime
from bridge.views import message_view

log = get_logger("bridge.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_and_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes problem+json; every answer is counted and timed."""
    started = time.perf_counter()
    route = request.match_info.route.resource
    route_name = route.canonical if route is not None else "unmatched"
    try:
        if request.body_exists:
            check_content_encoding(request)
        response = await handler(request)
    except Problem as exc:
        response = problem_response(exc)
    except web.HTTPException as exc:
        response = problem_response(http_problem(exc))
    except (web.RequestPayloadError, HttpProcessingError) as exc:
        # A body that is not what its headers say (not gzip, cut short): 400, and the
        # connection closes, its remaining bytes unread.
        response = problem_response(unreadable_body(request, exc))
        response.force_close()
    except StoreError as exc:
        log.warning("store_unavailable", path=request.path, error=str(exc))
        response = problem_response(
            Problem(
                503,
                "store_unavailable",
                "the event store is not available; retry",
                headers={"Retry-After": "5"},
            )
        )
    except Exception:
        log.exception("request_failed", path=request.path, method=request.method)
        response = problem_response(Problem(500, "internal_error", "an internal error occurred"))
    request.app[RUNTIME].metrics.observe_request(
        route_name, request.method, response.status, time.perf_counter() - started
    )
    return response


async def health(_request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Readiness: the store answers (connector breaker states join with the connectors)."""
    rt = request.app[RUNTIME]
    checks: dict[str, str] = {}
    try:
        await rt.store.ping()
        checks["store"] = "ok"
    except StoreError as exc:
        checks["store"] = f"unavailable: {exc}"
    ok = all(v == "ok" for v in checks.values())
    systems = dict.fromkeys(rt.connectors.by_system, "configured")
    if rt.bonus is not None:
        systems[rt.bonus.master] = f"breaker {rt.bonus.breaker.state}"
    return json_response({"ready": ok, "checks": checks, "systems": systems}, 200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format."""
    rt = request.app[RUNTIME]
    if rt.bonus is not None:
        state = rt.bonus.breaker.state
        rt.metrics.breaker_open.labels(rt.bonus.master).set(0 if state == "closed" else 1)
    body = await rt.metrics.render(rt.store)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def sandbox_messages(request: web.Request) -> web.Response:
    """``GET /sandbox/messages[?phone=…&limit=…]``: what the sandbox SMS gateway received
    (sandbox only; any client token)."""
    request.app[AUTH].authenticate(request)
    phone = request.query.get("phone")
    if phone is not None:
        try:
            phone = normalize_phone(plain_text(phone))
        except ValueError as exc:  # PhoneError, or a control character
            raise Problem(422, "invalid_request", f"phone: {exc}", field="phone") from exc
    try:
        limit = int(request.query.get("limit", "20"))
    except ValueError:
        limit = -1
    if not 1 <= limit <= 1000:
        raise Problem(422, "invalid_request", "limit: must be 1 to 1000", field="limit")
    found = await request.app[RUNTIME].store.list_sandbox_messages(phone, limit)
    return json_response({"messages": [message_view(m) for m in found]})


def build_app(runtime: Runtime, *, manage_runtime: bool = True) -> web.Application:
    """The app; with ``manage_runtime`` the runtime starts and stops with it."""
    app = web.Application(
        middlewares=[problems_and_metrics],
        client_max_size=runtime.settings.http.max_body_bytes,
    )
    answer_parser_errors_with_problems(app)
    app[RUNTIME] = runtime
    app[AUTH] = ClientAuth(runtime.settings.clients)
    if manage_runtime:

        async def lifecycle(_app: web.Application):  # type: ignore[no-untyped-def]
            await runtime.start()
            yield
            await runtime.stop()

        app.cleanup_ctx.append(lifecycle)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    app.router.add_post("/hooks/{system}", hooks.receive_webhook)
    app.router.add_post("/api/v1/bonus/balance", bonus.balance)
    app.router.add_post("/api/v1/bonus/calculate", calculate.calculate)
    reservations.add_routes(app)
    adjustments.add_routes(app)
    customers.add_routes(app)
    if runtime.settings.sandbox.enabled:
        app.router.add_get("/sandbox/messages", sandbox_messages)
    app.router.add_get("/api/v1/events", admin.list_events)
    app.router.add_get("/api/v1/events/{id}", admin.show_event)
    app.router.add_post("/api/v1/events/replay", admin.replay)
    return app
