"""``DescribedEmulator``: a 1C service described apart from the connector, served on
loopback over the same emulated infobase as the reference emulator.

SOAP services are published at ``/<publication>/ws/<publish>`` (the WSDL at ``?wsdl``,
its address rewritten to the endpoint), HTTP services under ``/<publication>/hs/<root>``
with one route per operation (onec.md §1.1, §2). Both behind HTTP Basic, with the same
faults as ``OnecEmulator`` (``POST /__emulator__/faults``) and its state page; holds a
service writes off "at the sale" are posted with ``POST /__emulator__/sales``.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import hdrs, web

from connectors._emulator.faults import ADMIN, answer_faults
from connectors._emulator.served import ServedEmulator
from connectors._emulator.web import json_object, serve
from connectors.onec.emulator import soap
from connectors.onec.emulator.described.behaviours import Behaviours, Values
from connectors.onec.emulator.described.description import (
    REASONS,
    DescribedOperation,
    Description,
    load_description,
)
from connectors.onec.emulator.described.http_calls import (
    json_answer,
    read_args,
    read_body,
)
from connectors.onec.emulator.described.soap_calls import read_call, refusal_fault, render_answer
from connectors.onec.emulator.described.template import render_json
from connectors.onec.emulator.described.wsdl import ServiceWsdl, read_wsdl
from connectors.onec.emulator.faults import OnecFaults, respell
from connectors.onec.emulator.ledger import LedgerError, OnecLedger
from connectors.onec.emulator.server import basic_authorized, html_page

log = logging.getLogger("connectors.onec.emulator.described")
_REQUEST_FAULTS: ContextVar[OnecFaults | None] = ContextVar("described_faults", default=None)
Outcome = tuple[str | None, Values]  # (the refusal's reason or None, the answer's values)


class ModuleException(Exception):
    """An exception raised in the 1C module that is no refusal of the service ("Ошибка СУБД")."""


class DescribedEmulator(ServedEmulator):
    """One 1C infobase behind a service its description file describes."""

    def __init__(
        self,
        description: Path | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        publication: str = "base",
        username: str = "bridge",
        password: str = "sandbox",  # noqa: S107 - the sandbox's documented credentials
        ledger: OnecLedger | None = None,
    ) -> None:
        if not publication or "/" in publication:
            raise ValueError("publication must be one URL path segment, e.g. 'base'")
        self.description: Description = load_description(description)
        self.wsdl: ServiceWsdl | None = None
        if self.description.wsdl is not None:
            self.wsdl = read_wsdl(self.description.wsdl)
            if missing := sorted(set(self.description.operations) - set(self.wsdl.actions)):
                raise ValueError(f"the WSDL lacks operations: {', '.join(missing)}")
        if ledger is None:
            ledger = OnecLedger()
            ledger.seed_sandbox()
        self.ledger = ledger
        d = self.description
        self.behaviours = Behaviours(ledger, d.hold_ids, d.accrual_ids)
        self.faults = OnecFaults()
        self.calls: Counter[str] = Counter()  # operations called, by the service's names
        self.host, self.port, self.publication = host, port, publication
        self.url = self.wsdl_url = ""  # set by start(), once the port is known
        self._credentials = f"{username}:{password}".encode()
        self._runner: web.AppRunner | None = None
        self._served_wsdl = b""

    @classmethod
    def from_file(cls, description: Path | str, **options: Any) -> DescribedEmulator:
        """The emulator of the service described in ``description``."""
        return cls(description, **options)

    async def start(self) -> None:
        """Listen on host:port (a free port when 0) and publish the service."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._gate])
        prefix = f"/{self.publication}"
        if self.wsdl is not None:
            endpoint = f"{prefix}/ws/{self.description.publish}"
            app.router.add_route("GET", endpoint, self._wsdl_get)
            app.router.add_route("POST", endpoint, self._soap)
        else:
            root = f"{prefix}/hs/{self.description.publish}"
            for operation in self.description.operations.values():
                app.router.add_route(
                    operation.method, root + operation.route, self._http_handler(operation)
                )
        app.router.add_route("GET", f"{ADMIN}/faults", self._faults_get)
        app.router.add_route("POST", f"{ADMIN}/faults", self._faults_post)
        app.router.add_route("GET", f"{ADMIN}/state", self._state)
        app.router.add_route("POST", f"{ADMIN}/sales", self._sale)
        self._runner, self.port, base = await serve(app, self.host, self.port)
        kind = "ws" if self.wsdl is not None else "hs"
        self.url = f"{base}{prefix}/{kind}/{quote(self.description.publish)}"
        if self.wsdl is not None:
            self.wsdl_url = f"{self.url}?wsdl"
            self._served_wsdl = self.wsdl.served(self.url)

    async def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        """Injected faults as the web server in front of 1C shows them, then Basic auth."""
        is_wsdl = request.method == hdrs.METH_GET and "wsdl" in {k.lower() for k in request.query}
        faults = self.faults.take(call=not is_wsdl)
        refused = await answer_faults(request, faults, html_page)
        if refused is not None:
            return refused
        if not basic_authorized(request.headers.get(hdrs.AUTHORIZATION, ""), self._credentials):
            return html_page(HTTPStatus.UNAUTHORIZED)
        _REQUEST_FAULTS.set(faults)
        return None

    def _outcome(self, operation: DescribedOperation, args: dict[str, Any]) -> Outcome:
        """Run the operation's behaviour: its values, or a refusal's reason and text."""
        self.calls[operation.name] += 1
        faults = _REQUEST_FAULTS.get()
        try:
            _inject(faults)
            values = self.behaviours.run(operation.does, args)
        except LedgerError as exc:
            text = self.description.texts[exc.code].replace("{detail}", exc.message)
            return exc.code, {"ok": False, "error": text, "reason": exc.code}
        spelled: Values = respell(values, None if faults is None else faults.values)
        return None, spelled

    async def _wsdl_get(self, request: web.Request) -> web.Response:
        if "wsdl" not in {key.lower() for key in request.query}:
            return html_page(HTTPStatus.METHOD_NOT_ALLOWED)
        return web.Response(body=self._served_wsdl, content_type="text/xml", charset="utf-8")

    async def _soap(self, request: web.Request) -> web.Response:
        version, action = soap.detect_version(request.headers.get(hdrs.CONTENT_TYPE, ""))
        if version is soap.SOAP11:
            action = request.headers.get("SOAPAction", "").strip().strip('"') or None
        status = HTTPStatus.INTERNAL_SERVER_ERROR
        try:
            body = self._soap_answer(version, action, await request.read())
            status = HTTPStatus.OK
        except soap.SoapFault as fault:
            body = soap.render_fault(version, fault)
        except Exception as exc:
            body = soap.render_fault(version, soap.SoapFault(_exception_text(exc)))
        headers = {hdrs.CONTENT_TYPE: version.content_type}
        return web.Response(body=body, status=status, headers=headers)

    def _soap_answer(self, version: soap.SoapVersion, action: str | None, data: bytes) -> bytes:
        """The answer to one posted call; SoapFault for a refusal the service throws."""
        assert self.wsdl is not None  # only SOAP services route here
        call = read_call(data, version, action, self.wsdl, self.description.operations)
        operation = call.operation
        reason, values = self._outcome(operation, call.args)
        out = operation.out
        if reason is not None:
            rule = operation.refusal(reason)
            if rule.style == "fault":
                raise refusal_fault(rule, operation, values["error"])
            out = operation.out if rule.out is None else rule.out
        zone = self.description.timezone
        return render_answer(version, operation, self.wsdl.namespace, out, values, zone)

    def _http_handler(self, operation: DescribedOperation) -> Any:
        async def handle(request: web.Request) -> web.Response:
            return await self._http(request, operation)

        return handle

    async def _http(self, request: web.Request, operation: DescribedOperation) -> web.Response:
        zone = self.description.timezone
        try:
            body = read_body(await request.read())
        except (TypeError, ValueError) as exc:
            # ЧитатьJSON on a body that is no JSON: an exception in the module, a 500.
            return web.Response(status=500, text=f"Ошибка при чтении JSON: {exc}")
        try:
            reason, values = self._outcome(operation, read_args(request, body, operation))
        except Exception as exc:
            return web.Response(status=500, text=_exception_text(exc))
        if reason is None:
            return json_answer(200, render_json(operation.out, values, zone))
        rule = operation.refusal(reason)
        if rule.style == "fault":
            text = rule.text.format(operation=operation.name, text=values["error"])
            return web.Response(status=500, text=text)
        out = operation.out if rule.out is None else rule.out
        return json_answer(rule.http_status(reason), render_json(out, values, zone))

    async def _faults_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.faults.snapshot())

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            self.faults.set(**json_object(await request.read() or b"{}"))
        except (TypeError, ValueError) as exc:  # TypeError: an unknown setting
            return _admin_error(400, "invalid_request", str(exc))
        return web.json_response(self.faults.snapshot())

    async def _state(self, request: web.Request) -> web.Response:
        state = self.ledger.snapshot() | self.behaviours.snapshot()
        return json_answer(200, _admin_json(state))

    async def _sale(self, request: web.Request) -> web.Response:
        """``{"hold_id": "Б-000017", "amount"?: "100.00"}``: the sale posted in 1C writes
        the hold off (all of it, or ``amount`` releasing the rest)."""
        try:
            body = read_body(await request.read())
            values = self.behaviours.sale(str(body.get("hold_id", "")), body.get("amount"))
        except LedgerError as exc:
            return _admin_error(422, exc.code, exc.message)
        except (TypeError, ValueError) as exc:
            return _admin_error(400, "invalid_request", str(exc))
        return json_answer(200, _admin_json(values))


def _inject(faults: OnecFaults | None) -> None:
    """Fail the call as the module would with the injected ``soap_fault``: a reason is the
    service's own refusal, any other text an exception in the module."""
    injected = None if faults is None else faults.soap_fault
    if injected in REASONS:
        raise LedgerError(str(injected), "injected by the emulator")
    if injected is not None:
        raise ModuleException(injected)


def _exception_text(exc: Exception) -> str:
    """What 1C shows of an exception in the module: its text, never a stack trace."""
    if isinstance(exc, ModuleException):
        return str(exc)
    log.exception("onec_described_emulator_error")
    return "Ошибка при вызове метода контекста: внутренняя ошибка эмулятора"


def _admin_json(value: Any) -> Any:
    """The admin pages' JSON: amounts as decimal text, moments in UTC."""
    return json.loads(json.dumps(value, default=_admin_value))


def _admin_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        return soap.iso_utc(value)
    return list(value) if isinstance(value, tuple | set) else str(value)


def _admin_error(status: int, code: str, message: str) -> web.Response:
    return json_answer(status, {"error": {"code": code, "message": message}})
