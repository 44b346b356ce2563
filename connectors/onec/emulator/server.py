"""A faithful 1C on loopback: the contract over SOAP 1.1/1.2 and as an HTTP service.

``OnecEmulator`` publishes one infobase (``OnecLedger``) the way the 1C web extension does
(onec.md §1.1): ``/<publication>/ws/<Service>.1cws`` for SOAP (``?wsdl`` for the WSDL) and
``/<publication>/hs/loyalty/v1/<operation>`` for JSON, both behind HTTP Basic (§1.4). The
names are a ``Naming``'s, so a Cyrillic-named service is served as easily as the reference
one. ``faults`` injects latency, SOAP faults, HTTP errors, hangs, outages and values in 1C's own
spellings (``faults.py``, over the shared ``connectors/_emulator/faults.py``) at run time;
``POST /__emulator__/faults`` does the same over HTTP (unauthenticated, loopback only).
Changes "made in 1C" — an order entered or its status changed, a customer edited — go
through ``POST /__emulator__/orders`` and ``/__emulator__/customers`` (or the ledger's
``enter_order``, ``change_order``, ``change_customer``); ``/__emulator__/changes`` appends a
bare change to the feed; ``/__emulator__/cards`` issues a loyalty card (``issue_card``).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections import Counter
from collections.abc import Collection, Mapping
from contextvars import ContextVar
from dataclasses import asdict
from datetime import datetime, tzinfo
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import yaml
from aiohttp import hdrs, web

from connectors._emulator.faults import ADMIN, answer_faults
from connectors._emulator.served import ServedEmulator
from connectors._emulator.web import serve
from connectors.onec.contract import (
    HTTP_ROOT,
    OPERATIONS,
    ErrorCode,
    Record,
    XsdType,
    fault_text,
    optional_only,
)
from connectors.onec.emulator import soap
from connectors.onec.emulator.faults import OnecFaults, respell
from connectors.onec.emulator.ledger import LedgerError, OnecLedger
from connectors.onec.naming import Naming
from connectors.onec.wsdl import render_wsdl

log = logging.getLogger("connectors.onec.emulator")

CYRILLIC_EXAMPLE = Path(__file__).parents[1] / "wsdl" / "cyrillic_example.yaml"
# The current request's share of the injected faults, from the middleware to the handler.
_REQUEST_FAULTS: ContextVar[OnecFaults | None] = ContextVar("onec_faults", default=None)
_BY_PATH = {op.http_path: op for op in OPERATIONS.values()}


def naming_from_yaml(path: Path | str = CYRILLIC_EXAMPLE) -> Naming:
    """A ``Naming`` read from a YAML file such as ``wsdl/cyrillic_example.yaml``."""
    return Naming.model_validate(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


class OnecEmulator(ServedEmulator):
    """One 1C infobase published over SOAP and HTTP on loopback, with fault injection."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        publication: str = "base",
        naming: Naming | None = None,
        username: str = "bridge",
        password: str = "sandbox",  # noqa: S107 - the sandbox's documented credentials
        ledger: OnecLedger | None = None,
        unpublished: Collection[str] = (),
        timezone: str = "Europe/Moscow",
    ) -> None:
        if not publication or "/" in publication:
            raise ValueError("publication must be one URL path segment, e.g. 'base'")
        self.naming = naming or Naming()
        # Optional operations (logical names) this 1C lacks, as one published before they
        # were added to the contract: left out of the WSDL, unknown to SOAP and HTTP alike.
        self.unpublished = optional_only(unpublished)
        if ledger is None:
            ledger = OnecLedger()
            ledger.seed_sandbox()
        self.ledger = ledger
        self.faults = OnecFaults()
        # 1C keeps a Дата as local time without an offset (onec.md §5.3): answers write
        # dateTime values so in this zone, and offset-less ones sent in are read in it.
        self.zone = ZoneInfo(timezone)
        self.calls: Counter[str] = Counter()  # operations called, by logical name
        self.host, self.port, self.publication = host, port, publication
        self.url = self.wsdl_url = self.hs_url = ""  # set by start(), once the port is known
        # requests sends Basic credentials as latin-1; a Latin-named user keeps it plain (§1.4).
        self._credentials = f"{username}:{password}".encode()
        self._runner: web.AppRunner | None = None
        self._wsdl = b""

    async def start(self) -> None:
        """Listen on host:port (a free port when 0) and publish the URLs."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._gate])
        ws = f"/{self.publication}/ws/{self.naming.service}"
        # Both publication forms occur: by alias (…/ws/x.1cws) and by name (…/ws/X) (§1.1).
        for path in (f"{ws}.1cws", ws):
            app.router.add_route("GET", path, self._wsdl_get)
            app.router.add_route("POST", path, self._soap)
        app.router.add_route("*", f"/{self.publication}/hs/{HTTP_ROOT}/{{tail:.*}}", self._hs)
        app.router.add_route("GET", f"{ADMIN}/faults", self._faults_get)
        app.router.add_route("POST", f"{ADMIN}/faults", self._faults_post)
        app.router.add_route("GET", f"{ADMIN}/state", self._state)
        app.router.add_route("POST", f"{ADMIN}/changes", self._push_change)
        app.router.add_route("POST", f"{ADMIN}/orders", self._order_in_1c)
        app.router.add_route("POST", f"{ADMIN}/customers", self._customer_in_1c)
        app.router.add_route("POST", f"{ADMIN}/cards", self._card_in_1c)
        self._runner, self.port, base = await serve(app, self.host, self.port)
        root = f"{base}/{self.publication}"
        self.url = f"{root}/ws/{quote(self.naming.service)}.1cws"
        self.wsdl_url = f"{self.url}?wsdl"
        self.hs_url = f"{root}/hs/{HTTP_ROOT}"
        self._wsdl = render_wsdl(self.naming, self.url, omit=self.unpublished).encode()

    async def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        """Injected faults as a web server in front of 1C would show them, then Basic auth."""
        faults = self.faults.take(call=request.method == hdrs.METH_POST)
        refused = await answer_faults(request, faults, html_page)
        if refused is not None:
            return refused
        # Everything, the WSDL included, needs the infobase user's credentials (§1.4).
        if not basic_authorized(request.headers.get(hdrs.AUTHORIZATION, ""), self._credentials):
            return html_page(HTTPStatus.UNAUTHORIZED)
        _REQUEST_FAULTS.set(faults)  # the handler runs in this task, so it sees this value
        return None

    async def _wsdl_get(self, request: web.Request) -> web.Response:
        if "wsdl" not in {key.lower() for key in request.query}:
            return html_page(HTTPStatus.METHOD_NOT_ALLOWED)
        return web.Response(body=self._wsdl, content_type="text/xml", charset="utf-8")

    async def _soap(self, request: web.Request) -> web.Response:
        version, action = soap.detect_version(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if version is soap.SOAP11:
            action = request.headers.get("SOAPAction", "").strip().strip('"') or None
        try:
            call = self._parse(await request.read(), version, action)
            logical = call.operation.contract.name
            self._inject()
            record = self._spelled(self._call(logical, call.params, dict(call.operation.params)))
            namespace = self.naming.namespace
            body = soap.render_result(version, call.operation, namespace, record, self.zone)
            status = HTTPStatus.OK
        except soap.SoapFault as bad_request:
            body = soap.render_fault(version, bad_request)
            status = HTTPStatus.INTERNAL_SERVER_ERROR
        except Exception as exc:
            # ВызватьИсключение in the service module → a Server fault with its text (§1.5).
            body = soap.render_fault(version, soap.SoapFault(_exception_text(exc)))
            status = HTTPStatus.INTERNAL_SERVER_ERROR
        headers = {hdrs.CONTENT_TYPE: version.content_type}
        return web.Response(body=body, status=status, headers=headers)

    def _parse(
        self, body: bytes, version: soap.SoapVersion, action: str | None
    ) -> soap.SoapRequest:
        """A call of an operation this 1C publishes; SoapFault otherwise."""
        call = soap.parse_request(body, version, self.naming, action)
        if call.operation.contract.name in self.unpublished:
            raise soap.SoapFault(f"Unknown operation {call.operation.name}", client=True)
        return call

    async def _hs(self, request: web.Request) -> web.Response:
        operation = _BY_PATH.get("/" + request.match_info["tail"])
        if operation is None or operation.name in self.unpublished:
            return _json_error(404, "not_found", f"no HTTP service template {request.path}")
        if request.method != hdrs.METH_POST:
            return _json_error(405, "method_not_allowed", f"{operation.http_path} takes POST")
        try:
            params = _json_object(await request.read())
        except ValueError as exc:
            return _json_error(400, "invalid_request", str(exc))
        try:
            self._inject()
            given = {key: value for key, value in params.items() if value is not None}
            record = self._spelled(
                self._call(operation.name, given, {p.name: p.name for p in operation.params})
            )
        except LedgerError as exc:
            return _json_error(ErrorCode(exc.code).http_status, exc.code, exc.message)
        except Exception as exc:
            # Any other exception in the module: 1C answers 500 with its text.
            return web.Response(status=500, text=_exception_text(exc))
        return web.json_response(_jsonable(record, self.zone), dumps=_dumps)

    def _inject(self) -> None:
        """Fail this call as the 1C module would if soap_fault is injected."""
        faults = _REQUEST_FAULTS.get()
        text = None if faults is None else faults.soap_fault
        if text is None:
            return
        if text in frozenset(ErrorCode):
            raise LedgerError(text, "injected by the emulator")
        code, _, message = text.partition(":")
        if code.strip() in frozenset(ErrorCode):
            raise LedgerError(code.strip(), message.strip())
        raise _HandlerException(text)

    @staticmethod
    def _spelled(record: Any) -> Any:
        """The answer with the fields ``faults.values`` names spelled as given."""
        faults = _REQUEST_FAULTS.get()
        return respell(record, None if faults is None else faults.values)

    def _call(self, logical: str, params: dict[str, Any], names: Mapping[str, str]) -> Any:
        """Run one operation on the ledger; ``names`` name the parameters in error messages."""
        operation = OPERATIONS[logical]
        self.calls[logical] += 1
        if unknown := sorted(set(params) - set(names)):
            raise LedgerError("invalid_request", f"unknown parameter {', '.join(unknown)}")
        required = [p.name for p in operation.params if not p.optional]
        if missing := [names[name] for name in required if name not in params]:
            raise LedgerError("invalid_request", f"{', '.join(missing)}: required")
        for param in operation.params:
            if param.type is XsdType.DATETIME and param.name in params:
                params[param.name] = zoned(params[param.name], self.zone)
        # Logical names are the ledger's method and argument names (ledger.py).
        result = getattr(self.ledger, logical)(**params)
        return _record_values(operation.result, result)

    async def _faults_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.snapshot())

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            self.faults.set(**_json_object(await request.read() or b"{}"))
        except (TypeError, ValueError) as exc:  # TypeError: an unknown setting
            return _json_error(400, "invalid_request", str(exc))
        return web.json_response(self.faults.snapshot())

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response(self.ledger.snapshot(), dumps=_dumps)

    async def _push_change(self, request: web.Request) -> web.Response:
        try:
            change = self.ledger.push_change(**_json_object(await request.read()))
            return web.json_response(asdict(change))
        except LedgerError as exc:
            return _json_error(422, exc.code, exc.message)
        except (TypeError, ValueError) as exc:
            return _json_error(400, "invalid_request", str(exc))

    async def _order_in_1c(self, request: web.Request) -> web.Response:
        """``{"document": {...}, "status"?}`` enters an order in 1C; with ``"id"`` (the feed's
        id) it changes that one: ``{"id": "crm-1", "status": "shipped"}``."""
        try:
            body = _json_object(await request.read())
            if "id" in body:
                order = self.ledger.change_order(**body)
            else:
                order = self.ledger.enter_order(**body)
            return web.json_response(asdict(order), dumps=_dumps)
        except LedgerError as exc:
            return _json_error(ErrorCode(exc.code).http_status, exc.code, exc.message)
        except (TypeError, ValueError) as exc:
            return _json_error(400, "invalid_request", str(exc))

    async def _customer_in_1c(self, request: web.Request) -> web.Response:
        """``{"id": "<customer id or external id>", "name"?, "phone"?, "card"?}`` edits a
        customer in 1C."""
        try:
            customer = self.ledger.change_customer(**_json_object(await request.read()))
            return web.json_response(asdict(customer), dumps=_dumps)
        except LedgerError as exc:
            return _json_error(ErrorCode(exc.code).http_status, exc.code, exc.message)
        except (TypeError, ValueError) as exc:
            return _json_error(400, "invalid_request", str(exc))

    async def _card_in_1c(self, request: web.Request) -> web.Response:
        """``{"number", "points"?, "phone"?}`` issues a card in 1C: ownerless without a
        phone, else the phone's (a new customer's first, main card, or one more)."""
        try:
            card = self.ledger.issue_card(**_json_object(await request.read()))
            return web.json_response(asdict(card), dumps=_dumps)
        except LedgerError as exc:
            return _json_error(ErrorCode(exc.code).http_status, exc.code, exc.message)
        except (TypeError, ValueError) as exc:
            return _json_error(400, "invalid_request", str(exc))


class _HandlerException(Exception):
    """A non-business exception raised in the 1C module (e.g. "Ошибка СУБД")."""


def _exception_text(exc: Exception) -> str:
    """What 1C would show of an exception in the module: never a stack trace."""
    if isinstance(exc, LedgerError):
        return fault_text(ErrorCode(exc.code), exc.message)
    if isinstance(exc, _HandlerException):
        return str(exc)
    log.exception("onec_emulator_error")
    return "Ошибка при вызове метода контекста: внутренняя ошибка эмулятора"


def _record_values(record: Record, result: Any) -> dict[str, Any]:
    """A ledger result as a logical dict, nested records as dicts too."""
    values: dict[str, Any] = {}
    for field in record.fields:
        value = getattr(result, field.name)
        if isinstance(field.type, Record) and value is not None:
            nested = field.type
            if field.repeated:
                value = [_record_values(nested, item) for item in value]
            else:
                value = _record_values(nested, value)
        values[field.name] = value
    return values


def _jsonable(value: Any, zone: tzinfo | None = None) -> Any:
    """JSON values; a datetime local in ``zone`` without an offset (None: UTC with a Z)."""
    if isinstance(value, Mapping):
        return {key: _jsonable(item, zone) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item, zone) for item in value]
    if isinstance(value, Decimal):
        return format(value, "f")  # amounts as strings, "150.00" (CONTRACT.md "Conventions")
    if isinstance(value, datetime):
        return soap.iso_utc(value) if zone is None else soap.iso_local(value, zone)
    return value


def zoned(value: Any, zone: tzinfo) -> Any:
    """An ISO dateTime text without an offset read as local time in ``zone`` (as 1C reads
    one into a Дата); anything else unchanged, for the ledger to check."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return value
    if moment.tzinfo is not None or "T" not in value:
        return value  # a bare date stays refused: a moment needs its time
    return moment.replace(tzinfo=zone).isoformat()


def basic_authorized(header: str, credentials: bytes) -> bool:
    """An Authorization header carrying exactly ``credentials`` (``user:password``)."""
    scheme, _, token = header.partition(" ")
    try:
        given = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    # Constant time: the comparison must not tell how much of a guess was right.
    return scheme.lower() == "basic" and hmac.compare_digest(given, credentials)


def _dumps(value: Any) -> str:
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


def _json_object(body: bytes) -> dict[str, Any]:
    """A JSON object from a request body; ValueError when it is not one."""
    try:
        # Numbers as decimals: 1C's ЧитатьJSON reads them into Число, never a float.
        value = json.loads(body, parse_float=Decimal, parse_constant=_nan)
    except ValueError as exc:
        raise ValueError(f"the body is not JSON: {exc}") from exc
    _check(isinstance(value, dict), "the body must be a JSON object")
    return dict(value)


def _nan(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def _json_error(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"code": code, "message": message}}
    return web.json_response(body, status=status, dumps=_dumps)


def html_page(status: int) -> web.Response:
    """An error page as the web server in front of 1C (Apache, IIS) writes it."""
    phrase = HTTPStatus(status).phrase if status in set(HTTPStatus) else "Error"
    page = (
        f'<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
        f"<title>{status} {phrase}</title>\n</head><body>\n<h1>{phrase}</h1>\n<hr>\n"
        f"<address>Apache Server at 127.0.0.1</address>\n</body></html>\n"
    )
    headers = {}
    if status == HTTPStatus.UNAUTHORIZED:
        headers[hdrs.WWW_AUTHENTICATE] = 'Basic realm="1C"'
    return web.Response(status=status, text=page, content_type="text/html", headers=headers)
