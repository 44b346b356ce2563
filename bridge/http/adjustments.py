"""``/api/v1/bonus/operations``: manual accruals and write-offs (issue 18), for support
(``admin``) and for a sales system's own calls (``bonus:adjust``)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, field_validator

from bridge.bonus.adjustments import Adjustments, NewAdjustment
from bridge.bonus.phones import mask
from bridge.bonus.reservation_rules import ReservationProblem, request_digest
from bridge.http.auth import Client
from bridge.http.bonus import CustomerIn, parse_model, positive_money
from bridge.http.problems import Problem, json_response
from bridge.http.reservations import IDEMPOTENCY_KEY, refused
from bridge.http.state import AUTH, RUNTIME
from bridge.http.text import plain_text
from bridge.ledger import LedgerRefused
from bridge.owed.calls import OwedCall
from bridge.store.customer_records import CustomerRecord
from bridge.views import iso

OPERATION_ID = re.compile(r"^adj_[0-9a-f]{20}$")
SCOPES = frozenset({"admin", "bonus:adjust"})
STATUS = {"idempotency_key_reused": 422, "operation_not_found": 404, "not_supported": 501}


class AdjustOrderIn(BaseModel):
    """The order an adjustment belongs to (optional): its system and its id there."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    system: str
    id: str

    @field_validator("system", "id")
    @classmethod
    def _text(cls, value: str) -> str:
        if not 1 <= len(value) <= 64:
            raise ValueError("must be 1 to 64 characters")
        return plain_text(value)


class AdjustIn(BaseModel):
    """``POST /api/v1/bonus/operations``."""

    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn
    kind: Literal["accrue", "write_off"]
    amount: Decimal
    reason: str
    order: AdjustOrderIn | None = None

    _amount = field_validator("amount", mode="before")(positive_money)

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        value = plain_text(value.strip())
        if not 1 <= len(value) <= 200:
            raise ValueError("must be 1 to 200 characters")
        return value


def adjuster(request: web.Request) -> Client:
    """The caller, if it holds ``admin`` or ``bonus:adjust``; 401/403 otherwise."""
    client = request.app[AUTH].authenticate(request)
    if not SCOPES & client.scopes:
        raise Problem(403, "forbidden", "this token lacks the 'bonus:adjust' scope")
    return client


def service(request: web.Request) -> Adjustments:
    """The adjustments, or 404 when there is no bonus master."""
    found = request.app[RUNTIME].adjustments
    if found is None:
        raise Problem(404, "no_bonus_master", "bonus.master is not configured")
    return found


def owner(client: Client) -> str | None:
    """Whose adjustments a client sees: its own; ``admin`` all."""
    return None if "admin" in client.scopes else client.name


async def create(request: web.Request) -> web.Response:
    """``POST /api/v1/bonus/operations``: 202 a new one, 200 the same key and body again."""
    client = adjuster(request)
    svc = service(request)
    raw = await request.read()  # first: an oversized or unreadable body says so
    key = request.headers.get("Idempotency-Key")
    if key is None or not IDEMPOTENCY_KEY.match(key):
        raise Problem(
            422,
            "invalid_request",
            "Idempotency-Key: required, 1 to 128 printable ASCII characters without spaces",
            field="Idempotency-Key",
        )
    body: AdjustIn = parse_model(raw, AdjustIn)
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True)
    req = NewAdjustment(
        client=client.name,
        kind=body.kind,
        amount=body.amount,
        reason=body.reason,
        customer=body.customer.ref(),
        order_system=body.order.system if body.order else None,
        order_id=body.order.id if body.order else None,
        idempotency_key=key,
        request_hash=request_digest(canonical),
    )
    try:
        record, created = await svc.request(req)
    except ReservationProblem as exc:
        raise refused(exc, STATUS) from exc
    except LedgerRefused as exc:  # the master cannot do it at all (not_supported)
        raise Problem(STATUS.get(str(exc.code), 409), str(exc.code), exc.detail) from exc
    view = adjustment_view(record, await svc.calls(record.key))
    return json_response(view, 202 if created else 200)


async def show(request: web.Request) -> web.Response:
    """``GET /api/v1/bonus/operations/{id}``: the adjustment and its owed call."""
    client = adjuster(request)
    svc = service(request)
    adj_id = request.match_info["id"]
    if not OPERATION_ID.match(adj_id):
        raise Problem(404, "operation_not_found", f"no operation {adj_id[:40]!r}")
    try:
        record = await svc.get(adj_id, owner(client))
    except ReservationProblem as exc:
        raise refused(exc, STATUS) from exc
    return json_response(adjustment_view(record, await svc.calls(adj_id)))


def adjustment_view(record: CustomerRecord, calls: list[OwedCall]) -> dict[str, Any]:
    """An adjustment as the API shows it: a masked phone, never the key."""
    body = record.body
    customer = dict(body.get("customer", {}))
    if "phone" in customer:
        customer["phone"] = mask(str(customer["phone"]))
    out: dict[str, Any] = {
        "operation_id": record.key,
        "status": record.status,
        "kind": body.get("kind"),
        "amount": body.get("amount"),
        "customer": customer,
        "order": body.get("order"),
        "reason": body.get("reason"),
        "requested_by": body.get("client"),
        "created_at": iso(record.created_at),
        "updated_at": iso(record.updated_at),
    }
    if body.get("customer_id") is not None:
        out["customer"]["id_at_master"] = body["customer_id"]
    if body.get("balance") is not None:
        out["balance"] = body["balance"]
    if body.get("error_code"):
        out["error"] = {"code": body["error_code"], "detail": body.get("error")}
    if calls:
        call = calls[-1]
        out["master_call"] = {
            "id": call.id,
            "status": str(call.status),
            "attempts": call.attempts,
            "last_error": call.last_error,
            "next_attempt_at": iso(call.due_at) if call.status == "pending" else None,
        }
    return out


def add_routes(app: web.Application) -> None:
    """Mount the adjustment endpoints."""
    base = "/api/v1/bonus/operations"
    app.router.add_post(base, create)
    app.router.add_get(base + "/{id}", show)
