"""``/api/v1/bonus/reservations``: SMS-confirmed write-offs (PRODUCT 3.2 and 4.1)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from bridge.bonus.balance import MasterUnavailable
from bridge.bonus.reservations import (
    NewReservation,
    ReservationProblem,
    ReservationService,
    refusal_code,
    request_digest,
)
from bridge.deadline import deadline_within
from bridge.http.auth import Client
from bridge.http.bonus import read_model, unavailable
from bridge.http.problems import Problem, json_response
from bridge.http.reservation_bodies import CommitIn, ConfirmIn, EmptyIn, ReserveIn
from bridge.http.state import AUTH, RUNTIME
from bridge.ledger import LedgerErrorCode, LedgerRefused
from bridge.store.reservations import Reservation
from bridge.views import reservation_view

RESERVATION_ID = re.compile(r"^rsv_[0-9a-f]{20}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces

# The HTTP status of each refusal (PRODUCT 4.1); anything else is 409.
STATUS = {
    "invalid_request": 422,
    "invalid_code": 422,
    "amount_exceeds_reservation": 422,
    "no_phone_on_file": 422,
    "idempotency_key_reused": 422,
    "reservation_not_found": 404,
    "resend_too_soon": 429,
    "too_many_codes": 429,
    "sms_unavailable": 503,
    "partial_commit_unsupported": 422,
    # a master's refusal replayed for a repeated Idempotency-Key
    "insufficient_balance": 422,
    "unknown_order": 422,
    "unknown_customer": 404,
    "not_supported": 501,  # the master cannot do it at all (a 1C service declaring no reserve)
}
LEDGER_STATUS = {
    LedgerErrorCode.UNKNOWN_CUSTOMER: 404,
    LedgerErrorCode.INSUFFICIENT_BALANCE: 422,
    LedgerErrorCode.INVALID_REQUEST: 422,
    LedgerErrorCode.RESERVATION_NOT_FOUND: 422,  # at create: the master has no such order
    LedgerErrorCode.OPERATION_CONFLICT: 409,
    LedgerErrorCode.CUSTOMER_MISMATCH: 409,
    LedgerErrorCode.NOT_SUPPORTED: 501,
}


def service(request: web.Request) -> ReservationService:
    """The reservation service, or 404 when there is no bonus master."""
    found = request.app[RUNTIME].reservations
    if found is None:
        raise Problem(404, "no_bonus_master", "bonus.master is not configured")
    return found


def owner(client: Client) -> str | None:
    """Whose reservations a client may see and move: its own; ``admin`` sees all."""
    return None if "admin" in client.scopes else client.name


def reservation_id(request: web.Request) -> str:
    """The ``{id}`` of the path, checked."""
    rsv_id = request.match_info["id"]
    if not RESERVATION_ID.match(rsv_id):
        raise Problem(404, "reservation_not_found", f"no reservation {rsv_id[:40]!r}")
    return rsv_id


async def read_optional(request: web.Request, model: type[BaseModel]) -> Any:
    """Like ``read_model``, but an empty body is ``{}``."""
    if not request.body_exists or request.content_length == 0:
        return model.model_validate({})
    return await read_model(request, model)


async def answer(svc: ReservationService, rsv: Reservation, created: bool = False) -> web.Response:
    """201 for a new one, 202 while a master call is still owed, else 200."""
    status = 200
    if created:
        status = 201
    elif rsv.pending is not None:  # a commit or release is owed to the master: accepted
        status = 202
    later = await svc.next_attempt_at(rsv)
    return json_response(reservation_view(rsv, svc.rules.max_attempts, None, later), status)


def refused(exc: ReservationProblem, status: Mapping[str, int]) -> Problem:
    """A service's refusal as a problem: its status by ``status`` (else 409), ``Retry-After``,
    the field named and whatever else the refusal carries (shared with the customer API)."""
    headers = {}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    extra = dict(exc.extra)
    if exc.field is not None:
        extra["field"] = exc.field
    return Problem(status.get(exc.code, 409), exc.code, exc.detail, headers=headers, **extra)


def problem(exc: Exception) -> Problem:
    """The problem document of a refusal."""
    if isinstance(exc, ReservationProblem):
        return refused(exc, STATUS)
    if isinstance(exc, MasterUnavailable):
        return unavailable(exc)
    if isinstance(exc, LedgerRefused):
        code = refusal_code(exc.code)
        return Problem(LEDGER_STATUS.get(exc.code, 409), code, exc.detail)
    raise exc


async def create(request: web.Request) -> web.Response:
    """``POST /api/v1/bonus/reservations``."""
    client = request.app[AUTH].require(request, "bonus:reserve")
    svc = service(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise Problem(
            422,
            "invalid_request",
            "Idempotency-Key: must be 1 to 128 printable ASCII characters without spaces",
            field="Idempotency-Key",
        )
    body: ReserveIn = await read_model(request, ReserveIn)
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True)
    req = NewReservation(
        customer=body.customer.ref(),
        amount=body.amount,
        order_system=body.order.system,
        order_id=body.order.id,
        client=client.name,
        order_total=body.order.total,
        channel=body.channel,
        idempotency_key=key,
        request_hash=request_digest(canonical) if key is not None else None,
    )
    try:
        with deadline_within(svc.bonus.settings.timeout_seconds):  # one budget, all calls
            rsv, created = await svc.create(req)
    except ReservationProblem as exc:
        if exc.code == "order_has_reservation":
            raise await order_taken(svc, exc, body.order.id, client) from exc
        raise problem(exc) from exc
    except (MasterUnavailable, LedgerRefused) as exc:
        raise problem(exc) from exc
    return await answer(svc, rsv, created)


async def order_taken(
    svc: ReservationService, exc: ReservationProblem, order_id: str, client: Client
) -> Problem:
    """409 ``order_has_reservation``: which reservation holds the order is told only to
    the client that made it (or ``admin``); to another client it is another's data."""
    try:
        await svc.get(str(exc.extra.get("reservation_id")), owner(client))
    except ReservationProblem:
        return Problem(
            409,
            "order_has_reservation",
            f"order {order_id} already has a reservation made by another client",
        )
    return problem(exc)


async def show(request: web.Request) -> web.Response:
    """``GET /api/v1/bonus/reservations/{id}``: state, amounts, times, history."""
    client = request.app[AUTH].authenticate(request)
    if not {"bonus:read", "admin"} & client.scopes:
        raise Problem(403, "forbidden", "this token lacks the 'bonus:read' scope")
    svc = service(request)
    try:
        rsv, history = await svc.get(reservation_id(request), owner(client))
    except ReservationProblem as exc:
        raise problem(exc) from exc
    later = await svc.next_attempt_at(rsv)
    return json_response(reservation_view(rsv, svc.rules.max_attempts, history, later))


Move = Callable[[ReservationService, str, Any, Client], Awaitable[Reservation]]


async def _move(
    request: web.Request, model: type[BaseModel], move: Move, *, optional: bool = False
) -> web.Response:
    """One state-machine call on ``{id}``: auth, the id, the body, the call, the answer."""
    client = request.app[AUTH].require(request, "bonus:reserve")
    svc = service(request)
    rsv_id = reservation_id(request)
    body = await (read_optional if optional else read_model)(request, model)
    try:
        with deadline_within(svc.bonus.settings.timeout_seconds):
            rsv = await move(svc, rsv_id, body, client)
    except (ReservationProblem, MasterUnavailable, LedgerRefused) as exc:
        raise problem(exc) from exc
    return await answer(svc, rsv)


async def confirm(request: web.Request) -> web.Response:
    """``POST …/{id}/confirm``: 200 held · 422 invalid_code · 409 locked/expired."""
    return await _move(
        request, ConfirmIn, lambda svc, rid, body, c: svc.confirm(rid, body.code, owner(c))
    )


async def resend(request: web.Request) -> web.Response:
    """``POST …/{id}/resend``: 200 · 429 resend_too_soon/too_many_codes."""
    return await _move(
        request, EmptyIn, lambda svc, rid, _body, c: svc.resend(rid, owner(c)), optional=True
    )


async def commit(request: web.Request) -> web.Response:
    """``POST …/{id}/commit``: 200 committed, 202 commit_pending."""
    return await _move(
        request,
        CommitIn,
        lambda svc, rid, body, c: svc.commit(rid, body.amount, owner(c)),
        optional=True,
    )


async def cancel(request: web.Request) -> web.Response:
    """``POST …/{id}/cancel``: 200 released/cancelled, 202 release_pending."""
    return await _move(
        request,
        EmptyIn,
        lambda svc, rid, _body, c: svc.cancel(rid, f"client:{c.name}", owner(c)),
        optional=True,
    )


def add_routes(app: web.Application) -> None:
    """Mount the reservation endpoints."""
    base = "/api/v1/bonus/reservations"
    app.router.add_post(base, create)
    app.router.add_get(base + "/{id}", show)
    app.router.add_post(base + "/{id}/confirm", confirm)
    app.router.add_post(base + "/{id}/resend", resend)
    app.router.add_post(base + "/{id}/commit", commit)
    app.router.add_post(base + "/{id}/cancel", cancel)
