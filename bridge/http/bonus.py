"""``/api/v1/bonus/*``: balance look-ups (reservations follow), PRODUCT 4.1."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bridge.bonus.balance import BalanceAnswer, CustomerRef, MasterUnavailable
from bridge.bonus.phones import PhoneError, mask, normalize_phone
from bridge.errors import InvalidAnswer
from bridge.http.problems import Problem, json_response
from bridge.http.state import AUTH, RUNTIME
from bridge.http.text import plain_text, refuse_surrogates
from bridge.ledger import LedgerErrorCode, LedgerRefused
from bridge.mirror.generic_webhook import loads_strict
from bridge.views import iso

MAX_MONEY = Decimal("100000000")


class CustomerIn(BaseModel):
    """``{"phone"}`` | ``{"card"}`` | ``{"system", "id"}``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = None
    card: str | None = None
    system: str | None = None
    id: str | None = None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_phone(plain_text(value))
        except PhoneError as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("card", "system", "id")
    @classmethod
    def _short_text(cls, value: str | None) -> str | None:
        if value is not None and not 1 <= len(value) <= 64:
            raise ValueError("must be 1 to 64 characters")
        return None if value is None else plain_text(value)

    def ref(self) -> CustomerRef:
        """The service's view of the same customer."""
        return CustomerRef(self.phone, self.card, self.system, self.id)

    @model_validator(mode="after")
    def _exactly_one(self) -> CustomerIn:
        given = [
            self.phone is not None,
            self.card is not None,
            self.system is not None or self.id is not None,
        ]
        if sum(given) != 1:
            raise ValueError("give exactly one of phone, card, or system and id")
        if (self.system is None) != (self.id is None):
            raise ValueError("system and id go together")
        return self


def money(value: Any) -> Decimal:
    """A decimal string (or integer) of points or roubles, 0 ≤ value < 10⁸, 2 places."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be a decimal string such as '1500.00'")  # noqa: TRY004 - pydantic reports ValueError
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError("must be a decimal string such as '1500.00'") from exc
    if not amount.is_finite() or amount < 0 or amount >= MAX_MONEY:
        raise ValueError("must be between 0 and 100000000")
    if amount != amount.quantize(Decimal("0.01")):
        raise ValueError("at most 2 decimal places")
    return amount.quantize(Decimal("0.01"))


def positive_money(value: Any) -> Decimal:
    """``money`` above 0 (an amount to hold, commit or adjust)."""
    amount = money(value)
    if amount <= 0:
        raise ValueError("must be more than 0")
    return amount


class CartIn(BaseModel):
    """The cart a write-off would apply to; only its total matters to the master today."""

    model_config = ConfigDict(extra="forbid")

    total: Decimal
    items: list[dict[str, Any]] | None = None

    @field_validator("total", mode="before")
    @classmethod
    def _total(cls, value: Any) -> Decimal:
        return money(value)


class BalanceIn(BaseModel):
    """``POST /api/v1/bonus/balance``."""

    model_config = ConfigDict(extra="forbid")

    customer: CustomerIn
    cart: CartIn | None = None


def field_problem(error: ValidationError) -> Problem:
    """A 422 naming every bad field (the first one in ``detail``)."""
    errors = []
    for item in error.errors(include_url=False):
        field = ".".join(str(p) for p in item["loc"]) or "body"
        message = "unknown field" if item["type"] == "extra_forbidden" else item["msg"]
        message = message.removeprefix("Value error, ")
        errors.append({"field": field, "message": message})
    first = errors[0]
    return Problem(
        422,
        "invalid_request",
        f"{first['field']}: {first['message']}",
        field=first["field"],
        errors=errors,
    )


async def read_model(request: web.Request, model: type[BaseModel]) -> Any:
    """The body as ``model``, or a 400/422 problem naming what is wrong."""
    return parse_model(await request.read(), model)


def parse_model(raw: bytes, model: type[BaseModel]) -> Any:
    """``raw`` as ``model``, or a 400/422 problem naming what is wrong."""
    if b"NaN" not in raw and b"Infinity" not in raw:
        # pydantic's own JSON reader, in one step (a till's hot path). What it takes, the
        # reading below takes alike, but for NaN and Infinity (hence the guard); anything
        # it refuses is read again below, which names the field as the bridge always has.
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            pass
    return parse_model_slowly(raw, model)


def parse_model_slowly(raw: bytes, model: type[BaseModel]) -> Any:
    """``parse_model`` by ``json``, the surrogate check and pydantic, step by step."""
    try:
        data = loads_strict(raw)
    except ValueError as exc:
        raise Problem(400, "invalid_json", f"body is not JSON: {exc}") from exc
    refuse_surrogates(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise field_problem(exc) from exc


def balance_view(answer: BalanceAnswer) -> dict[str, Any]:
    """The answer of PRODUCT 4.1: decimal strings, a masked phone."""
    b, c = answer.balance, answer.customer
    out: dict[str, Any] = {
        "master": answer.master,
        "customer": {
            "id": c.customer_id,
            "phone": mask(c.phone) if c.phone else None,
            "card": c.card,
        },
        "balance": str(b.balance),
        "available": str(b.available),
        "reserved": str(b.reserved),
        "as_of": iso(b.as_of.timestamp()),
        "stale": answer.stale,
        "spendable": answer.spendable,
    }
    if b.max_redeemable is not None:
        out["max_redeemable"] = str(b.max_redeemable)
    if b.level is not None:
        out["level"] = b.level
    if b.pending:
        out["pending"] = str(b.pending)
    if b.expiring:
        out["expiring"] = [{"amount": str(a), "date": d.isoformat()} for a, d in b.expiring]
    return out


# The status of a look-up the master refused (shared with /calculate); others are 422.
REFUSAL_STATUS = {LedgerErrorCode.UNKNOWN_CUSTOMER: 404, LedgerErrorCode.NOT_SUPPORTED: 501}


def unavailable(exc: MasterUnavailable) -> Problem:
    """503 ``master_unavailable``; 502 ``master_invalid_answer`` naming the ``field`` when the
    master answered a value the bridge cannot read (its fault, not the caller's)."""
    headers = {"Retry-After": str(max(1, round(exc.retry_after)))}
    cause = exc.__cause__
    if isinstance(cause, InvalidAnswer):
        detail = f"the bonus master answered a {cause.field!r} the bridge cannot read"
        return Problem(502, "master_invalid_answer", detail, headers=headers, field=cause.field)
    return Problem(503, "master_unavailable", str(exc), headers=headers)


async def balance(request: web.Request) -> web.Response:
    """``POST /api/v1/bonus/balance``."""
    request.app[AUTH].require(request, "bonus:read")
    service = request.app[RUNTIME].bonus
    if service is None:
        raise Problem(404, "no_bonus_master", "bonus.master is not configured")
    body = await read_model(request, BalanceIn)
    ref = body.customer.ref()
    total = body.cart.total if body.cart else None
    try:
        answer = await service.balance(ref, total)
    except MasterUnavailable as exc:
        raise unavailable(exc) from exc
    except LedgerRefused as exc:
        status = REFUSAL_STATUS.get(exc.code, 422)
        raise Problem(status, str(exc.code), exc.detail) from exc
    view = balance_view(answer)
    customers = request.app[RUNTIME].customers
    if customers is not None and answer.spendable and customers.profiles.gates:
        reason = await customers.profiles.spend_reason(answer.customer.customer_id)
        if reason is not None:  # customers.accumulate_only_until_profile (issue 17)
            view |= {"spendable": False, "reason": reason[0]}
            if reason[1]:
                view["missing"] = reason[1]
    return json_response(view)
