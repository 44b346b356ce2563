"""``/api/v1/customers``: a customer who proved their phone by SMS sees and merges the
cards the master ties to it and fills the questionnaire (issue 17).

Every route needs the ``customers`` scope (the shop's back end calls them for its
customer); all but the two that make the proof need ``X-Customer-Proof``, and act for the
proof's phone only: there is no phone to name, so a proof of phone A can neither read nor
move phone B's cards (another phone's card or merge is not found, as one that never was).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, field_validator

from bridge.bonus.balance import MasterUnavailable
from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.bonus.reservation_rules import ReservationProblem
from bridge.customers.merges import merge_view
from bridge.customers.profiles import missing
from bridge.customers.proofs import ProofRefused
from bridge.customers.service import CustomerService
from bridge.http.bonus import parse_model, unavailable
from bridge.http.problems import Problem, json_response
from bridge.http.reservation_bodies import ConfirmIn
from bridge.http.reservations import refused
from bridge.http.state import AUTH, RUNTIME
from bridge.http.text import plain_text
from bridge.ledger import LedgerErrorCode, LedgerRefused
from bridge.mirror.generic_webhook import loads_strict
from bridge.views import iso

SCOPE = "customers"
PROOF_HEADER = "X-Customer-Proof"
VERIFICATION_ID = re.compile(r"^vrf_[0-9a-f]{20}$")
MERGE_ID = re.compile(r"^mrg_[0-9a-f]{20}$")
# The HTTP status of each refusal; anything else is 409.
STATUS = {
    "invalid_request": 422,
    "invalid_code": 422,
    "verification_not_found": 404,
    "merge_not_found": 404,
    "unknown_card": 404,
    "unknown_customer": 404,
    "resend_too_soon": 429,
    "too_many_codes": 429,
    "sms_unavailable": 503,
    "sms_refused": 422,  # the provider refused the text (a blocked number): not a retry
    "not_supported": 501,
    "insufficient_balance": 422,
}


class PhoneIn(BaseModel):
    """``POST /api/v1/customers/verify``."""

    model_config = ConfigDict(extra="forbid")

    phone: str

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        try:
            return normalize_phone(plain_text(value))
        except PhoneError as exc:
            raise ValueError(str(exc)) from exc


def card_number(value: str) -> str:
    """A card number as given: 1 to 64 characters of plain text."""
    if not 1 <= len(value) <= 64:
        raise ValueError("must be 1 to 64 characters")
    return plain_text(value)


class CardIn(BaseModel):
    """``POST …/cards/attach``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    card: str

    _card = field_validator("card")(card_number)


class MergeIn(BaseModel):
    """``POST …/cards/merge``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    main_card: str

    _card = field_validator("main_card")(card_number)


def service(request: web.Request) -> CustomerService:
    """The customer service, after the caller's scope is checked; 404 without a master."""
    request.app[AUTH].require(request, SCOPE)
    found = request.app[RUNTIME].customers
    if found is None:
        raise Problem(404, "no_bonus_master", "bonus.master is not configured")
    return found


def proven_phone(request: web.Request, svc: CustomerService) -> str:
    """The phone the caller's proof is for; 401 for a missing, bad or expired one."""
    try:
        return svc.proofs.check(request.headers.get(PROOF_HEADER)).phone
    except ProofRefused as exc:
        raise Problem(401, exc.code, exc.detail) from exc


def problem(exc: Exception) -> Problem:
    """The problem document of a refusal."""
    if isinstance(exc, ReservationProblem):
        return refused(exc, STATUS)
    if isinstance(exc, MasterUnavailable):
        return unavailable(exc)
    if isinstance(exc, LedgerRefused):
        code = str(exc.code)
        status = 501 if exc.code is LedgerErrorCode.NOT_SUPPORTED else STATUS.get(code, 409)
        return Problem(status, code, exc.detail)
    raise exc


async def verify(request: web.Request) -> web.Response:
    """``POST /api/v1/customers/verify``: a code to the phone."""
    svc = service(request)
    body: PhoneIn = parse_model(await request.read(), PhoneIn)
    if svc.verifications is None:
        raise Problem(501, "not_supported", "no SMS gateway: bonus.sms.sender is master")
    try:
        started = await svc.verifications.start(body.phone)
    except ReservationProblem as exc:
        raise problem(exc) from exc
    view = {
        "verification_id": started.verification_id,
        "code_sent_to": started.code_sent_to,
        "expires_at": iso(started.expires_at),
    }
    return json_response(view, 201)


async def confirm(request: web.Request) -> web.Response:
    """``POST /api/v1/customers/verify/{id}/confirm``: the code for a proof."""
    svc = service(request)
    body: ConfirmIn = parse_model(await request.read(), ConfirmIn)
    verification_id = request.match_info["id"]
    if not VERIFICATION_ID.match(verification_id) or svc.verifications is None:
        raise Problem(404, "verification_not_found", f"no verification {verification_id[:40]!r}")
    try:
        proof, expires = await svc.verifications.confirm(verification_id, body.code)
    except ReservationProblem as exc:
        raise problem(exc) from exc
    return json_response({"proof": proof, "expires_at": iso(expires)})


async def cards(request: web.Request) -> web.Response:
    """``GET /api/v1/customers/cards``: every card the master ties to the proven phone."""
    svc = service(request)
    phone = proven_phone(request, svc)
    try:
        found = await svc.cards(phone)
        blocked = await _spend_blocked(svc, found)
    except (ReservationProblem, MasterUnavailable, LedgerRefused) as exc:
        raise problem(exc) from exc
    views = [await svc.card_view(card, blocked) for card in found]
    return json_response({"phone": mask(phone), "cards": views})


async def _spend_blocked(svc: CustomerService, found: list[Any]) -> list[str]:
    owner = next((c.customer_id for c in found if c.customer_id), None)
    return [] if owner is None else await svc.profiles.spend_blocked(owner)


async def attach(request: web.Request) -> web.Response:
    """``POST /api/v1/customers/cards/attach``: an ownerless card given to the phone."""
    svc = service(request)
    phone = proven_phone(request, svc)
    body: CardIn = parse_model(await request.read(), CardIn)
    try:
        card = await svc.attach(phone, body.card)
    except (ReservationProblem, MasterUnavailable, LedgerRefused) as exc:
        raise problem(exc) from exc
    return json_response(await svc.card_view(card, []))


async def merge(request: web.Request) -> web.Response:
    """``POST /api/v1/customers/cards/merge``: the phone's other cards into one (202)."""
    svc = service(request)
    phone = proven_phone(request, svc)
    body: MergeIn = parse_model(await request.read(), MergeIn)
    try:
        record = await svc.merges.start(phone, body.main_card)
    except (ReservationProblem, MasterUnavailable, LedgerRefused) as exc:
        raise problem(exc) from exc
    return json_response({"merge_id": record.key, "status": record.status}, 202)


async def merge_status(request: web.Request) -> web.Response:
    """``GET /api/v1/customers/merges/{id}``."""
    svc = service(request)
    phone = proven_phone(request, svc)
    merge_id = request.match_info["id"]
    if not MERGE_ID.match(merge_id):
        raise Problem(404, "merge_not_found", f"no merge {merge_id[:40]!r}")
    try:
        record = await svc.merges.get(merge_id, phone)
    except ReservationProblem as exc:
        raise problem(exc) from exc
    return json_response(merge_view(record))


async def profile(request: web.Request) -> web.Response:
    """``GET`` / ``PUT /api/v1/customers/profile``: the questionnaire of the proven phone."""
    svc = service(request)
    phone = proven_phone(request, svc)
    given = None
    if request.method == "PUT":
        try:
            given = loads_strict(await request.read())
        except ValueError as exc:
            raise Problem(400, "invalid_json", f"body is not JSON: {exc}") from exc
        if not isinstance(given, dict):
            raise Problem(422, "invalid_request", "body: must be an object", field="body")
    try:
        customer = await svc.profiles.customer(phone)
        if given is None:
            found = await svc.profiles.read(customer.customer_id)
        else:
            found = await svc.profiles.save(customer.customer_id, given)
    except (ReservationProblem, MasterUnavailable, LedgerRefused) as exc:
        raise problem(exc) from exc
    lacking = missing(found, list(svc.profiles.settings.profile.required))
    return json_response({"profile": found, "missing": lacking, "complete": not lacking})


def add_routes(app: web.Application) -> None:
    """Mount the customer endpoints."""
    base = "/api/v1/customers"
    app.router.add_post(base + "/verify", verify)
    app.router.add_post(base + "/verify/{id}/confirm", confirm)
    app.router.add_get(base + "/cards", cards)
    app.router.add_post(base + "/cards/attach", attach)
    app.router.add_post(base + "/cards/merge", merge)
    app.router.add_get(base + "/merges/{id}", merge_status)
    app.router.add_get(base + "/profile", profile)
    app.router.add_put(base + "/profile", profile)
