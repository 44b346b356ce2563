"""The compiled SOAP path (issue 16) against the emulators, over real sockets: every SOAP
service here (the reference contract in SOAP 1.1 and 1.2, the reference under Cyrillic
names, and the described services of examples/onec and tests/fixtures) called through its
declaration for its hot capabilities, refusals and injected faults included. Each
exchange is held to zeep: the envelope sent is the one zeep builds for the same elements,
byte for byte, and the answer reads as zeep reads it. A fault is the same OnecFault (text,
code, status) either way, and an operation the compiled path leaves to zeep still works."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from connectors.onec.client import Kinds, OnecCallError, OnecFault, SoapClient
from connectors.onec.declared.calls import DeclaredService
from connectors.onec.declared.compiler import load_declaration
from connectors.onec.declared.model import Declaration
from connectors.onec.declared.reference import reference_declaration
from connectors.onec.emulator import OnecEmulator
from connectors.onec.emulator.described import DescribedEmulator
from connectors.onec.emulator.server import naming_from_yaml
from connectors.onec.wire import Answer
from tests.support.soap_reference import (
    SHAPES,
    compiled_read,
    outcome,
    zeep_envelope,
    zeep_read,
)

ROOT = Path(__file__).parents[2]
IVAN, CARD = "+79000000001", "2000000000015"
GONE = "99999999-0000-0000-0000-000000000000"


@dataclass
class Exchange:
    """One call as it went over the wire."""

    operation: str
    elements: dict[str, Any]
    kinds: Kinds
    sent: list[tuple[bytes, dict[str, str], Answer]] = field(default_factory=list)


class Recording(SoapClient):
    """A SoapClient that keeps each call's envelope and answer (a spy on the real wire)."""

    exchanges: list[Exchange]

    async def call(
        self, operation: str, elements: Mapping[str, Any], kinds: Kinds
    ) -> dict[str, Any]:
        exchange = Exchange(operation, dict(elements), kinds)
        post = self._wire.post

        async def recorded(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
            answer = await post(url, body, headers)
            exchange.sent.append((body, dict(headers), answer))
            return answer

        self._wire.post = recorded  # type: ignore[method-assign]
        try:
            return await super().call(operation, elements, kinds)
        finally:
            del self._wire.post
            self.exchanges = [*getattr(self, "exchanges", []), exchange]


async def client_for(
    url: str, wsdl: str, declaration: Declaration, version: str, *, compiled: bool = True
) -> Recording:
    assert declaration.service is not None
    client = Recording(
        wsdl=wsdl,
        service=declaration.service,
        namespace=declaration.namespace,
        username="bridge",
        password="sandbox",
        timeout=5,
        address=url,
        soap_version="1.2" if version == "1.2" else "1.1",
        compiled=compiled,
    )
    await asyncio.to_thread(client.load)
    return client


Calls = Callable[[DeclaredService, Any], Awaitable[None]]


async def attempt(service: DeclaredService, capability: str, request: dict[str, Any]) -> Any:
    """The capability's record, or the wire client's exception (kept, compared later)."""
    try:
        return await service.call(capability, request)
    except OnecCallError as exc:
        return exc


async def reference_calls(service: DeclaredService, emulator: Any) -> None:
    found = await attempt(service, "find_customer", {"phone": IVAN})
    cid = found["customer_id"]
    await attempt(service, "balance", {"customer_id": cid, "cart_total": Decimal("300")})
    await attempt(service, "balance", {"customer_id": cid})
    hold = {"customer_id": cid, "amount": Decimal("12.50"), "order_id": "A-1"}
    await attempt(service, "reserve", hold | {"operation_id": "op-1"})
    await attempt(service, "reserve", hold | {"operation_id": "op-2", "amount": Decimal(10**6)})
    await attempt(service, "balance", {"customer_id": GONE})
    emulator.faults.set(values={"balance": "1 000,50", "as_of": "0001-01-01T00:00:00"}, count=1)
    await attempt(service, "balance", {"customer_id": cid})
    emulator.faults.set(values={"balance": "много"}, count=1)
    await attempt(service, "balance", {"customer_id": cid})
    emulator.faults.set(soap_fault="Ошибка СУБД: deadlock", count=1)
    await attempt(service, "balance", {"customer_id": cid})


async def cyrillic_soap_calls(service: DeclaredService, emulator: Any) -> None:
    await attempt(service, "balance", {"phone": IVAN, "cart_total": Decimal("300")})
    hold = {"phone": IVAN, "amount": Decimal("20"), "order_id": "Z-1", "operation_id": "o"}
    await attempt(service, "reserve", hold)
    await attempt(service, "reserve", hold | {"amount": Decimal(10**6)})  # refused in the answer
    await attempt(service, "balance", {"phone": "+79990000000"})


async def soap_records_calls(service: DeclaredService, emulator: Any) -> None:
    found = await attempt(service, "find_customer", {"phone": IVAN})
    cid = found["customer_id"]
    await attempt(service, "find_customer", {"phone": "+79990000000"})  # an empty list
    await attempt(service, "balance", {"customer_id": cid, "cart_total": Decimal("300")})
    hold = {"customer_id": cid, "amount": Decimal("30"), "order_id": "R-1"}
    held = await attempt(service, "reserve", hold | {"operation_id": "r-1"})
    await attempt(service, "reserve", hold | {"operation_id": "r-2", "amount": Decimal(10**6)})
    if isinstance(held, dict) and held.get("reservation_id"):
        reservation = {"reservation_id": held["reservation_id"], "amount": Decimal("30")}
        await attempt(service, "commit", reservation)


async def lookup_only_calls(service: DeclaredService, emulator: Any) -> None:
    await attempt(service, "balance", {"card": CARD})
    await attempt(service, "balance", {"card": "0000"})


@dataclass(frozen=True)
class Case:
    """A SOAP service, the emulator serving it and what to call."""

    label: str
    version: str
    emulator: Callable[[], Any]
    declaration: Callable[[], Declaration]
    calls: Calls


def _described(folder: str) -> Callable[[], Any]:
    return lambda: DescribedEmulator(ROOT / folder / "emulator.yaml")


def _declared(folder: str) -> Callable[[], Declaration]:
    return lambda: load_declaration(ROOT / folder / "declaration.yaml")


CYRILLIC, RECORDS = "examples/onec/cyrillic_soap", "tests/fixtures/onec_services/soap_records"
LOOKUP = "tests/fixtures/onec_services/lookup_only"
CASES = [
    Case("reference 1.1", "1.1", OnecEmulator, reference_declaration, reference_calls),
    Case("reference 1.2", "1.2", OnecEmulator, reference_declaration, reference_calls),
    Case(
        "reference, Cyrillic names",
        "1.1",
        lambda: OnecEmulator(naming=naming_from_yaml()),
        lambda: reference_declaration(naming_from_yaml()),
        reference_calls,
    ),
    Case("cyrillic_soap", "1.1", _described(CYRILLIC), _declared(CYRILLIC), cyrillic_soap_calls),
    Case("soap_records", "1.2", _described(RECORDS), _declared(RECORDS), soap_records_calls),
    Case("soap_records 1.1", "1.1", _described(RECORDS), _declared(RECORDS), soap_records_calls),
    Case("lookup_only", "1.1", _described(LOOKUP), _declared(LOOKUP), lookup_only_calls),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.label)
async def test_every_exchange_is_what_zeep_sends_and_reads(case: Case) -> None:
    emulator = case.emulator()
    await emulator.start()
    try:
        declaration = case.declaration()
        client = await client_for(emulator.url, emulator.wsdl_url, declaration, case.version)
        try:
            await case.calls(DeclaredService(declaration, client), emulator)
        finally:
            await client.close()
    finally:
        await emulator.stop()
    read_by_compiled = 0
    for exchange in client.exchanges:
        op = exchange.operation
        assert client.compiled(op), op
        [(body, headers, answer)] = exchange.sent
        assert (body, headers) == zeep_envelope(client, op, exchange.elements)
        fast = outcome(partial(compiled_read, client, op, answer, exchange.kinds))
        slow = outcome(partial(zeep_read, client, op, answer, exchange.kinds))
        assert repr(fast) == repr(slow), answer.body.decode("utf-8", "replace")
        reader = client._compiled[op].reply
        read = outcome(partial(reader.read, answer.body, exchange.kinds, op))
        if answer.status == 200 and read != ("ok", None):
            read_by_compiled += 1
    answered = [e for e in client.exchanges if e.sent[0][2].status == 200]
    assert read_by_compiled == len(answered) > 0  # every answer but the faults: no zeep


async def test_faults_are_the_same_onec_faults_either_way() -> None:
    async with OnecEmulator() as emulator:
        declaration = reference_declaration()
        for version in ("1.1", "1.2"):
            faults = []
            for compiled in (True, False):
                client = await client_for(
                    emulator.url, emulator.wsdl_url, declaration, version, compiled=compiled
                )
                service = DeclaredService(declaration, client)
                try:
                    unknown = await attempt(service, "balance", {"customer_id": GONE})
                    emulator.faults.set(soap_fault="Ошибка СУБД: deadlock", count=1)
                    failing = await attempt(service, "balance", {"customer_id": GONE})
                finally:
                    await client.close()
                faults.append([(type(f), f.text, f.code, f.status) for f in (unknown, failing)])
                assert all(isinstance(f, OnecFault) for f in (unknown, failing))
            assert faults[0] == faults[1]
            assert faults[0][0][2] == "unknown_customer"


# -- an operation the compiled path leaves to zeep --------------------------------------------

SHAPE_ANSWERS = {
    "Вложенный": "<m:ВложенныйResponse {ns}><m:return>true</m:return></m:ВложенныйResponse>",
    "Выбор": "<m:ВыборResponse {ns}><m:return><m:Баллы>5.5</m:Баллы></m:return></m:ВыборResponse>",
    "Атрибут": (
        '<m:АтрибутResponse {ns}><m:return валюта="RUB"><m:Сумма>7</m:Сумма></m:return>'
        "</m:АтрибутResponse>"
    ),
    "Одно": "<m:ОдноResponse {ns}><m:return><m:Сумма>1.50</m:Сумма></m:return></m:ОдноResponse>",
}


@pytest.fixture
async def shapes() -> AsyncIterator[str]:
    """A loopback SOAP server answering shapes.wsdl's operations with fixed answers."""

    async def answer(request: web.Request) -> web.Response:
        body = (await request.read()).decode()
        name = next(n for n in SHAPE_ANSWERS if f":{n}" in body.split("Body>", 1)[1][:80])
        inner = SHAPE_ANSWERS[name].format(ns='xmlns:m="urn:shop:shapes"')
        text = (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
            f"<soap:Header/><soap:Body>{inner}</soap:Body></soap:Envelope>"
        )
        return web.Response(body=text.encode(), content_type="text/xml", charset="utf-8")

    app = web.Application()
    app.router.add_post("/shop/ws/shapes.1cws", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/shop/ws/shapes.1cws"
    finally:
        await runner.cleanup()


async def test_operations_zeep_must_keep_still_work(shapes: str) -> None:
    results = []
    for compiled in (True, False):
        client = SoapClient(
            wsdl=str(SHAPES),
            service="Формы",
            namespace=None,
            username="bridge",
            password="sandbox",
            timeout=5,
            address=shapes,
            compiled=compiled,
        )
        await asyncio.to_thread(client.load)
        try:
            assert [client.compiled(n) for n in SHAPE_ANSWERS] == [False, False, False, compiled]
            results.append(
                [
                    await client.call("Вложенный", {"Клиент": {"Код": "1"}}, {}),
                    await client.call("Выбор", {"Код": "1"}, {}),
                    await client.call("Атрибут", {"Код": "1"}, {}),
                    await client.call("Одно", {"Код": "1"}, {}),
                ]
            )
        finally:
            await client.close()
    assert results[0] == results[1]
    assert results[0][3] == {"return": Decimal("1.50")}  # zeep's double unwrapping, kept
