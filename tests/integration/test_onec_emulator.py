"""The 1C emulator over real sockets: plain zeep (SOAP 1.1/1.2), the HTTP service, faults.

zeep is synchronous, so every zeep scenario runs in a thread (``asyncio.to_thread``) while the
emulator serves on the test's event loop. No bridge code talks to the emulator here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import requests
import zeep
import zeep.exceptions
from requests.auth import HTTPBasicAuth
from zeep.helpers import serialize_object
from zeep.plugins import HistoryPlugin, Plugin

from bridge.connector import Emulator
from connectors.onec.contract import OPERATIONS, fault_code
from connectors.onec.emulator import OnecEmulator, naming_from_yaml
from connectors.onec.emulator.soap import SOAP11_ENV, SOAP12_ENV
from tests.support.daemon import free_port

IVAN = "+79000000001"
IVAN_CARD = "2000000000015"
D = Decimal
AUTH = ("bridge", "sandbox")
MOSCOW = ZoneInfo("Europe/Moscow")  # the emulator's default zone, UTC+3 all year


@pytest.fixture
async def emulator() -> AsyncIterator[OnecEmulator]:
    async with OnecEmulator() as emu:
        yield emu


@pytest.fixture
async def http(emulator: OnecEmulator) -> AsyncIterator[aiohttp.ClientSession]:
    # By hand: aiohttp.BasicAuth is deprecated in recent aiohttp.
    token = base64.b64encode(":".join(AUTH).encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {token}"}) as session:
        yield session


class OperationNames(Plugin):
    """Records the name of every operation zeep sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        self.sent.append(operation.name)
        return envelope, http_headers


class Utf8Headers(Plugin):
    """Sends header values as UTF-8 bytes: http.client encodes str headers as latin-1, which
    a Cyrillic SOAPAction cannot be (python-zeep#1172, reported against a 1C service)."""

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        encoded = {k: v.encode() if isinstance(v, str) else v for k, v in http_headers.items()}
        return envelope, encoded


@contextmanager
def zeep_client(
    emu: OnecEmulator, *, password: str = AUTH[1], timeout: float = 10, plugins: Sequence[Any] = ()
) -> Iterator[zeep.Client]:
    """A plain zeep client as public 1C clients build it (onec.md §1.5), session closed after."""
    with requests.Session() as session:
        session.auth = HTTPBasicAuth(AUTH[0], password)
        transport = zeep.Transport(session=session, operation_timeout=timeout)
        yield zeep.Client(wsdl=emu.wsdl_url, transport=transport, plugins=list(plugins))


def state(emu: OnecEmulator) -> Any:
    """The ledger snapshot over the admin endpoint (no auth there)."""
    response = requests.get(f"http://127.0.0.1:{emu.port}/__emulator__/state", timeout=5)
    response.raise_for_status()
    return response.json()


def fault_of(call: Callable[..., Any], **params: Any) -> zeep.exceptions.Fault:
    with pytest.raises(zeep.exceptions.Fault) as caught:
        call(**params)
    return caught.value


def op(svc: Any, name: str, operation_id: str, **params: Any) -> tuple[Any, dict[str, Any]]:
    """A ledger call for a table: the zeep operation and its parameters."""
    return getattr(svc, name), {"OperationId": operation_id, **params}


def plain(value: Any) -> Any:
    return json.loads(json.dumps(serialize_object(value, dict), default=str))


def assert_moscow_now(value: datetime | str) -> None:
    """A Дата as 1C writes it (onec.md §5.3): local time in the infobase's zone, without an
    offset, to the second; here the emulator's clock, now, in Moscow."""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    assert (moment.tzinfo, moment.microsecond) == (None, 0), value
    assert abs(moment.replace(tzinfo=MOSCOW) - datetime.now(UTC)) < timedelta(minutes=1), value


async def test_satisfies_the_core_emulator_protocol_and_binds_a_fixed_port() -> None:
    port = free_port()
    async with OnecEmulator(port=port, publication="shop") as emu:
        assert isinstance(emu, Emulator)
        assert emu.port == port
        assert emu.url == f"http://127.0.0.1:{port}/shop/ws/BridgeLoyalty.1cws"
        assert emu.wsdl_url == emu.url + "?wsdl"
        assert emu.hs_url == f"http://127.0.0.1:{port}/shop/hs/loyalty"


def every_operation(emu: OnecEmulator) -> list[str]:
    names = OperationNames()
    with zeep_client(emu, plugins=[names]) as client:
        svc = client.service
        customer = svc.FindCustomer(Phone=IVAN)
        cid = customer.CustomerId
        assert (customer.Phone, customer.Card, customer.Name) == (IVAN, IVAN_CARD, "Иван Петров")
        assert svc.FindCustomer(Card=IVAN_CARD).CustomerId == cid
        assert svc.FindCustomer(CustomerId=cid).Phone == IVAN

        balance = svc.GetBalance(CustomerId=cid, CartTotal=D("300.00"))
        assert (balance.Balance, balance.Reserved, balance.Available) == (D(1000), D(0), D(1000))
        assert balance.MaxRedeemable == D("150.00")  # half the cart, the sandbox program's limit
        assert balance.Level == "Базовый"
        assert_moscow_now(balance.AsOf)
        assert svc.GetBalance(CustomerId=cid).MaxRedeemable is None  # xsi:nil without a cart

        expires = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
        reserve = svc.Reserve(
            OperationId="r-1", CustomerId=cid, Amount=D("100.00"), OrderId="A-1", ExpiresAt=expires
        )
        assert (reserve.Kind, reserve.Status) == ("reserve", "reserved")
        assert reserve.ReservationId == "r-1"
        assert (reserve.Amount, reserve.Balance, reserve.Available) == (D(100), D(1000), D(900))
        commit = svc.Commit(OperationId="c-1", ReservationId="r-1", Amount=D("60.00"))
        assert (commit.Status, commit.Amount) == ("committed", D(60))
        assert (commit.Balance, commit.Available) == (D(940), D(940))
        svc.Reserve(OperationId="r-2", CustomerId=cid, Amount=D("50.00"), OrderId="A-2")
        release = svc.Release(OperationId="rel-1", ReservationId="r-2")
        assert (release.Status, release.Amount, release.Available) == ("released", D(50), D(940))
        accrue = svc.Accrue(OperationId="a-1", CustomerId=cid, Amount=D("25.50"), OrderId="A-1")
        assert (accrue.Status, accrue.ReservationId) == ("accrued", None)
        assert accrue.Balance == D("965.50")
        reverse = svc.Reverse(OperationId="v-1", OriginalOperationId="c-1", Amount=D("10.00"))
        assert (reverse.Status, reverse.Balance) == ("reversed", D("975.50"))

        order = json.dumps({"number": "A-1", "total": "300.00", "items": []})
        saved = svc.SaveOrder(OperationId="s-1", ExternalId="A-1", Order=order)
        assert (saved.ExternalId, saved.Number, saved.Created) == ("A-1", "00-000001", True)
        again = svc.SaveOrder(OperationId="s-2", ExternalId="A-1", Order=order)
        assert (again.Number, again.Created) == ("00-000001", False)

        # commit, accrue and reverse moved points (customer changes); then the order twice.
        page = svc.GetChanges(SinceMessageNo=0, Limit=3)
        assert [(c.MessageNo, c.Entity, c.Action) for c in page.Items] == [
            (n, "customer", "changed") for n in (1, 2, 3)
        ]
        assert (page.LastMessageNo, page.More) == (3, True)
        rest = svc.GetChanges(SinceMessageNo=page.LastMessageNo)
        assert [(c.Entity, c.Id, c.Action, c.Version) for c in rest.Items] == [
            ("order", "A-1", "created", "1"),
            ("order", "A-1", "changed", "2"),
        ]
        assert (rest.LastMessageNo, rest.More) == (5, False)
        empty = svc.GetChanges(SinceMessageNo=5)
        assert (empty.Items, empty.LastMessageNo, empty.More) == ([], 5, False)

        # The mirroring reads and the customer write (tests/integration/test_onec_orders.py).
        read = svc.GetOrder(Id="A-1")
        assert (read.ExternalId, read.Number, json.loads(read.Order)) == ("A-1", "00-000001", {
            "number": "A-1", "total": "300.00", "items": [],
        })  # fmt: skip
        customer = json.dumps({"phone": "+79000000009", "name": "Анна"})
        saved = svc.SaveCustomer(OperationId="sc-1", ExternalId="crm-c9", Customer=customer)
        assert saved.Created is True
        assert svc.GetCustomer(Id="crm-c9").CustomerId == saved.CustomerId

        # The backfill listings (tests/integration/test_onec_listing.py).
        orders = svc.ListOrders(Limit=1)
        assert ([o.ExternalId for o in orders.Items], orders.Next, orders.Total) == (
            ["A-1"],
            None,
            1,
        )
        customers = svc.ListCustomers(CreatedFrom=datetime(2000, 1, 1, tzinfo=UTC), Limit=4)
        assert (len(customers.Items), customers.Total) == (4, 5)
        rest = svc.ListCustomers(After=customers.Next)
        assert ([c.ExternalId for c in rest.Items], rest.Next) == (["crm-c9"], None)

        # Cards, the questionnaire, registration (tests/integration/test_onec_cards_master.py).
        cards = svc.FindCards(Phone="+79000000005").Items
        assert [(c.Number, c.Balance, c.Main) for c in cards] == [
            ("2000000000053", D("120.50"), True), ("2000000000060", D("80.00"), False),
        ]  # fmt: skip
        loose = svc.GetCard(Card="2000000000077")
        assert (loose.Status, loose.CustomerId, loose.Phone) == ("active", None, None)
        attached = svc.AttachCard(OperationId="ac-1", Card="2000000000077", Phone="+79000000005")
        assert (attached.Phone, attached.Main) == ("+79000000005", False)
        blocked = svc.SetCardStatus(OperationId="sb-1", Card="2000000000053", Status="blocked")
        assert blocked.Status == "blocked"
        moved = svc.MovePoints(
            OperationId="mv-1", FromCard="2000000000053", ToCard="2000000000060", Amount=D("120.5")
        )
        assert (moved.Kind, moved.Status, moved.Balance) == ("move", "moved", D("200.50"))
        assert svc.SetMainCard(OperationId="sm-1", Card="2000000000060").Main is True
        maria = svc.FindCustomer(Phone="+79000000005").CustomerId
        assert svc.GetProfile(CustomerId=maria).FirstName == "Мария"
        profile = json.dumps({"email": "maria@example.com", "gender": "female"})
        saved_profile = svc.SaveProfile(OperationId="sp-1", CustomerId=maria, Profile=profile)
        assert (saved_profile.LastName, saved_profile.Email) == ("Соколова", "maria@example.com")
        new = svc.RegisterCustomer(OperationId="rc-1", Phone="+79000000077", Name="Пётр")
        assert (new.Phone, new.Name, len(new.Card)) == ("+79000000077", "Пётр", 13)
    return names.sent


async def test_plain_zeep_calls_every_operation_over_soap_11(emulator: OnecEmulator) -> None:
    sent = await asyncio.to_thread(every_operation, emulator)
    assert set(sent) == {op.soap for op in OPERATIONS.values()}


async def test_soap_12_binding(emulator: OnecEmulator) -> None:
    def scenario() -> tuple[str, str, zeep.exceptions.Fault]:
        history = HistoryPlugin()
        with zeep_client(emulator, plugins=[history]) as client:
            svc = client.bind("BridgeLoyalty", "BridgeLoyaltySoap12")
            cid = svc.FindCustomer(Phone=IVAN).CustomerId
            assert svc.GetBalance(CustomerId=cid, CartTotal=D(100)).MaxRedeemable == D(50)
            reserve = svc.Reserve(OperationId="r12", CustomerId=cid, Amount=D(300), OrderId="o")
            assert (reserve.Status, reserve.Available) == ("reserved", D(700))
            sent, received = history.last_sent, history.last_received
            assert sent is not None and received is not None
            content_type = sent["http_headers"]["Content-Type"]
            answer = received["envelope"].tag
            call, params = op(svc, "Reserve", "r13", CustomerId=cid, Amount=D(5000), OrderId="o")
            fault = fault_of(call, **params)
            return content_type, answer, fault

    content_type, answer, fault = await asyncio.to_thread(scenario)
    assert content_type.startswith("application/soap+xml")  # onec.md §1.4
    assert 'action="urn:bridge-loyalty:v1#BridgeLoyalty:Reserve"' in content_type
    assert answer == f"{{{SOAP12_ENV}}}Envelope"
    assert fault.message.startswith("insufficient_balance: ")
    assert fault.code == "soap:Receiver"


async def test_cyrillic_service_by_its_own_names() -> None:
    def scenario(emu: OnecEmulator) -> None:
        with zeep_client(emu, plugins=[Utf8Headers()]) as client:
            soap12 = client.bind("БонуснаяПрограмма", "БонуснаяПрограммаSoap12")
            for svc in (client.service, soap12):
                cid = svc.НайтиКлиента(НомерТелефона=IVAN).ИдентификаторКлиента
                balance = svc.ПолучитьБаланс(ИдентификаторКлиента=cid, СуммаКорзины=D(1000))
                assert (balance.Баланс, balance.МожноСписать) == (D(1000), D(500))
            held = svc.Зарезервировать(
                ИдентификаторОперации="р-1", ИдентификаторКлиента=cid, Сумма=D(10), НомерЗаказа="З"
            )
            assert (held.Статус, held.ИдентификаторРезерва, held.Доступно) == (
                "reserved",
                "р-1",
                990,
            )
            done = svc.Списать(ИдентификаторОперации="с-1", ИдентификаторРезерва="р-1")
            assert done.Баланс == D(990)
            changes = svc.ПолучитьИзменения(НачинаяСНомера=0)
            assert [c.ТипОбъекта for c in changes.Изменения] == ["customer"]
            assert changes.ЕстьЕще is False
            fault = fault_of(svc.ПолучитьБаланс, ИдентификаторКлиента="нет")
            assert fault_code(fault.message) == "unknown_customer"

    async with OnecEmulator(naming=naming_from_yaml()) as emu:
        assert "%D0%91" in emu.url  # the Cyrillic service name, percent-encoded in the URL
        await asyncio.to_thread(scenario, emu)


async def test_repeats_with_the_same_operation_id_change_nothing(emulator: OnecEmulator) -> None:
    def scenario() -> None:
        with zeep_client(emulator) as client:
            svc = client.service
            cid = svc.FindCustomer(Phone=IVAN).CustomerId
            order = json.dumps({"total": "10.00"})
            calls = [
                op(svc, "Reserve", "i-r", CustomerId=cid, Amount=D("100.00"), OrderId="B"),
                op(svc, "Commit", "i-c", ReservationId="i-r", Amount=D(40)),
                op(svc, "Reserve", "i-r2", CustomerId=cid, Amount=D(7), OrderId="C"),
                op(svc, "Release", "i-rel", ReservationId="i-r2"),
                op(svc, "Accrue", "i-a", CustomerId=cid, Amount=D(30), OrderId="B"),
                op(svc, "Reverse", "i-v", OriginalOperationId="i-a", Amount=D(5)),
                op(svc, "SaveOrder", "i-s", ExternalId="B", Order=order),
            ]
            for call, params in calls:
                first = plain(call(**params))
                before = state(emulator)
                assert plain(call(**params)) == first, call
                assert state(emulator) == before, call
            # "Same parameters" compares values: 100 is 100.00; JSON spacing does not count.
            _, same = op(svc, "Reserve", "i-r", CustomerId=cid, Amount=D(100), OrderId="B")
            assert plain(svc.Reserve(**same)) == plain(svc.Reserve(**calls[0][1]))
            saved = svc.SaveOrder(OperationId="i-s", ExternalId="B", Order='{ "total" : "10.00" }')
            assert saved.Created is True
            before = state(emulator)
            for call, params in [
                (svc.Reserve, {**same, "Amount": D(99)}),
                op(svc, "Accrue", "i-r", CustomerId=cid, Amount=D(100), OrderId="B"),
                op(svc, "SaveOrder", "i-s", ExternalId="B", Order="{}"),
            ]:
                assert fault_of(call, **params).message.startswith("operation_conflict: ")
            assert state(emulator) == before

    await asyncio.to_thread(scenario)


async def test_business_errors_are_server_faults_with_the_code(emulator: OnecEmulator) -> None:
    def scenario() -> list[tuple[str, str, str]]:
        seen = []
        with zeep_client(emulator) as client:
            svc = client.service
            cid = svc.FindCustomer(Phone=IVAN).CustomerId
            svc.Reserve(OperationId="e-r", CustomerId=cid, Amount=D(10), OrderId="E")
            svc.Accrue(OperationId="e-a", CustomerId=cid, Amount=D(10), OrderId="E")
            cases = [
                (svc.FindCustomer, {"Phone": "+79999999999"}),
                op(svc, "Reserve", "e-1", CustomerId=cid, Amount=D(9999), OrderId="E"),
                op(svc, "Commit", "e-2", ReservationId="nope"),
                op(svc, "Commit", "e-3", ReservationId="e-r", Amount=D(11)),
                op(svc, "Reverse", "e-4", OriginalOperationId="e-a", Amount=D(11)),
                op(svc, "Accrue", "e-5", CustomerId=cid, Amount=D(0), OrderId="E"),
                op(svc, "Accrue", "e-6", CustomerId=cid, Amount=None, OrderId="E"),
            ]
            for call, params in cases:
                fault = fault_of(call, **params)
                seen.append((str(fault_code(fault.message)), fault.code, fault.message))
            svc.Release(OperationId="e-rel", ReservationId="e-r")
            fault = fault_of(svc.Release, OperationId="e-7", ReservationId="e-r")
            seen.append((str(fault_code(fault.message)), fault.code, fault.message))
        return seen

    seen = await asyncio.to_thread(scenario)
    assert [code for code, _, _ in seen] == [
        "unknown_customer",
        "insufficient_balance",
        "reservation_not_found",
        "amount_exceeds_reservation",
        "amount_exceeds_original",
        "invalid_request",
        "invalid_request",
        "reservation_closed",
    ]
    assert {soap_code for _, soap_code, _ in seen} == {"soap:Server"}
    assert seen[6][2] == "invalid_request: Amount: required"  # nil for a required parameter


async def test_basic_auth_guards_the_wsdl_and_the_service(emulator: OnecEmulator) -> None:
    def wrong_password() -> int:
        with pytest.raises(requests.HTTPError) as caught, zeep_client(emulator, password="x"):
            pass
        return caught.value.response.status_code

    assert await asyncio.to_thread(wrong_password) == 401
    async with aiohttp.ClientSession() as anonymous:
        for method, url in (("GET", emulator.wsdl_url), ("POST", emulator.url)):
            async with anonymous.request(method, url) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == 'Basic realm="1C"'
        async with anonymous.post(emulator.hs_url + "/v1/balance", json={}) as response:
            assert response.status == 401


async def test_wsdl_is_the_rendered_contract(
    emulator: OnecEmulator, http: aiohttp.ClientSession
) -> None:
    for url in (emulator.wsdl_url, emulator.url + "?WSDL"):
        async with http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/xml; charset=utf-8"
            text = await response.text()
    assert f'location="{emulator.url}"' in text
    assert 'soapAction="urn:bridge-loyalty:v1#BridgeLoyalty:GetBalance"' in text


async def raw_soap(
    http: aiohttp.ClientSession, url: str, body: str, **headers: str
) -> tuple[int, str]:
    headers = {"Content-Type": "text/xml; charset=utf-8", **headers}
    async with http.post(url, data=body.encode(), headers=headers) as response:
        return response.status, await response.text()


def envelope(inner: str, env: str = SOAP11_ENV) -> str:
    return f'<s:Envelope xmlns:s="{env}"><s:Body>{inner}</s:Body></s:Envelope>'


async def test_bad_requests_are_client_faults(
    emulator: OnecEmulator, http: aiohttp.ClientSession
) -> None:
    ns = 'xmlns="urn:bridge-loyalty:v1"'
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + envelope("<x>&a;</x>")
    cases = {
        "not xml": "<s:Envelope",
        "unknown operation": envelope(f"<Nope {ns}/>"),
        "other namespace": envelope('<GetBalance xmlns="urn:other"/>'),
        "unknown element": envelope(f"<GetBalance {ns}><Customer>1</Customer></GetBalance>"),
        "a DTD": bomb,
        "empty body": envelope(""),
    }
    for what, body in cases.items():
        status, text = await raw_soap(http, emulator.url, body)
        assert status == 500, what
        assert "<faultcode>soap:Client</faultcode>" in text, what
        assert "Traceback" not in text
    wrong_action = {"SOAPAction": '"urn:bridge-loyalty:v1#BridgeLoyalty:Reserve"'}
    call = envelope(f"<GetBalance {ns}><CustomerId>x</CustomerId></GetBalance>")
    status, text = await raw_soap(http, emulator.url, call, **wrong_action)
    assert (status, "soap:Client" in text) == (500, True)
    status, text = await raw_soap(
        http, emulator.url, call, **{"Content-Type": "application/soap+xml; charset=utf-8"}
    )
    assert (status, "<soap:Value>soap:VersionMismatch</soap:Value>" in text) == (500, True)
    # An empty optional element and a nil one are absent, as 1C's XDTO writes them.
    cid = "00000000-0000-0000-0000-000000000001"
    xsi = 'xmlns:i="http://www.w3.org/2001/XMLSchema-instance"'
    nil = '<CartTotal i:nil="true"/>'
    call = envelope(f"<GetBalance {ns} {xsi}><CustomerId>{cid}</CustomerId>{nil}</GetBalance>")
    status, text = await raw_soap(http, emulator.url, call)
    assert status == 200
    assert "<m:return" in text and '<m:MaxRedeemable xsi:nil="true"/>' in text


async def test_injected_faults(emulator: OnecEmulator) -> None:
    def call(**options: Any) -> Any:
        faults.clear()
        with zeep_client(emulator, **options) as client:
            faults.set(**pending)  # the WSDL is loaded; now the call meets the faults
            return client.service.GetBalance(CustomerId="00000000-0000-0000-0000-000000000001")

    faults = emulator.faults
    pending: dict[str, Any] = {"soap_fault": "insufficient_balance", "count": 1}
    with pytest.raises(zeep.exceptions.Fault) as business:
        await asyncio.to_thread(call)
    assert business.value.message.startswith("insufficient_balance: ")
    assert faults.soap_fault is None  # count=1 is used up

    pending = {"soap_fault": "Ошибка СУБД"}
    with pytest.raises(zeep.exceptions.Fault) as unknown:
        await asyncio.to_thread(call)
    assert unknown.value.message == "Ошибка СУБД"
    assert fault_code(unknown.value.message) is None

    for status in (500, 502, 503, 401):
        pending = {"http_status": status}
        with pytest.raises(zeep.exceptions.TransportError) as transport:
            await asyncio.to_thread(call)
        assert transport.value.status_code == status

    pending = {"latency": 0.3}
    started = time.monotonic()
    assert (await asyncio.to_thread(call)).Balance == D(1000)
    assert time.monotonic() - started >= 0.3

    pending = {"hang": 5}
    started = time.monotonic()
    with pytest.raises(requests.Timeout):
        await asyncio.to_thread(call, timeout=0.3)
    assert time.monotonic() - started < 3

    pending = {"outage": True}
    with pytest.raises(requests.ConnectionError):
        await asyncio.to_thread(call)
    faults.clear()


async def test_faults_over_the_admin_endpoint(
    emulator: OnecEmulator, http: aiohttp.ClientSession
) -> None:
    admin = f"http://127.0.0.1:{emulator.port}/__emulator__"
    balance = emulator.hs_url + "/v1/balance"
    cid = {"customer_id": "00000000-0000-0000-0000-000000000001"}
    async with aiohttp.ClientSession() as anonymous:
        async with anonymous.post(f"{admin}/faults", json={"outage": True, "count": 1}) as response:
            assert response.status == 200
            assert (await response.json())["outage"] is True
        with pytest.raises(aiohttp.ClientConnectionError):
            async with http.post(balance, json=cid):
                pass
        async with http.post(balance, json=cid) as response:
            assert response.status == 200  # count=1: the outage is over
        for bad in ({"latency": -1}, {"nope": 1}, {"http_status": 200}, [1]):
            async with anonymous.post(f"{admin}/faults", json=bad) as response:
                assert response.status == 400, bad
                assert (await response.json())["error"]["code"] == "invalid_request"
        dbms = {"soap_fault": "Ошибка СУБД"}
        async with anonymous.post(f"{admin}/faults", json=dbms) as response:
            assert response.status == 200
        async with http.post(balance, json=cid) as response:
            assert (response.status, await response.text()) == (500, "Ошибка СУБД")
        async with anonymous.post(f"{admin}/faults", json={}) as response:
            assert (await response.json())["soap_fault"] is None
        change = {"entity": "receipt", "id": "R-1", "action": "created"}
        async with anonymous.post(f"{admin}/changes", json=change) as response:
            assert (await response.json())["message_no"] == 1
        async with anonymous.get(f"{admin}/state") as response:
            snapshot = await response.json()
    assert snapshot["last_message_no"] == 1
    assert snapshot["balances"][cid["customer_id"]] == ["1000.00", "0.00"]


async def test_http_service(emulator: OnecEmulator, http: aiohttp.ClientSession) -> None:
    async def post(path: str, body: Any) -> tuple[int, Any]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        async with http.post(emulator.hs_url + path, data=data, headers=headers) as response:
            return response.status, await response.json(content_type=None)

    status, customer = await post("/v1/find-customer", {"phone": "89000000001"})
    assert (status, customer["phone"]) == (200, IVAN)
    cid = customer["customer_id"]
    status, balance = await post("/v1/balance", {"customer_id": cid, "cart_total": "300.00"})
    assert status == 200
    assert (balance["balance"], balance["max_redeemable"]) == ("1000.00", "150.00")
    assert_moscow_now(balance["as_of"])  # the same local time over HTTP, as ЗаписатьJSON writes
    reserve = {"operation_id": "h-r", "customer_id": cid, "amount": "100.00", "order_id": "H"}
    status, held = await post("/v1/reserve", reserve)
    assert (status, held["status"], held["available"]) == (200, "reserved", "900.00")
    assert (await post("/v1/reserve", reserve))[1] == held  # the remembered result
    status, done = await post("/v1/commit", {"operation_id": "h-c", "reservation_id": "h-r"})
    assert (status, done["status"], done["balance"]) == (200, "committed", "900.00")
    ok = [
        ("/v1/reserve", {**reserve, "operation_id": "h-r2"}),
        ("/v1/release", {"operation_id": "h-rel", "reservation_id": "h-r2"}),
        # A JSON number is read as a decimal, as 1C's ЧитатьJSON reads it into Число.
        ("/v1/accrue", {**reserve, "operation_id": "h-a", "amount": 12.5}),
        ("/v1/reverse", {"operation_id": "h-v", "original_operation_id": "h-a", "amount": "2.50"}),
        ("/v1/save-order", {"operation_id": "h-s", "external_id": "H", "order": '{"a": 1}'}),
    ]
    for path, body in ok:
        assert (await post(path, body))[0] == 200, path
    status, changes = await post("/v1/changes", {"since_message_no": 0, "limit": 2})
    assert (status, len(changes["items"]), changes["more"]) == (200, 2, True)
    first = {"message_no": 1, "entity": "customer", "id": cid, "action": "changed", "version": "2"}
    first["origin"] = None  # points moved: no echo (only SaveOrder/SaveCustomer say "bridge")
    assert changes["items"][0] == first

    errors: list[tuple[str, Any, int, str]] = [
        ("/v1/nope", {}, 404, "not_found"),
        ("/v1/balance", {"customer_id": "nobody"}, 404, "unknown_customer"),
        ("/v1/reserve", {**reserve, "amount": "1.00"}, 409, "operation_conflict"),
        (
            "/v1/reserve",
            {**reserve, "operation_id": "x", "amount": "5e3"},
            422,
            "insufficient_balance",
        ),
        ("/v1/commit", {"operation_id": "y", "reservation_id": "z"}, 404, "reservation_not_found"),
        ("/v1/balance", b"{not json", 400, "invalid_request"),
        ("/v1/balance", b"[1, 2]", 400, "invalid_request"),
        ("/v1/balance", {"CustomerId": cid}, 422, "invalid_request"),
        ("/v1/balance", {"customer_id": None}, 422, "invalid_request"),
    ]
    for path, body, want_status, want_code in errors:
        status, answer = await post(path, body)
        assert (status, answer["error"]["code"]) == (want_status, want_code), (path, body)
        assert answer["error"]["message"]
    async with http.get(emulator.hs_url + "/v1/balance") as response:
        assert response.status == 405
    url = emulator.hs_url + "/v1/balance"
    async with aiohttp.ClientSession() as anonymous, anonymous.post(url, json={}) as response:
        assert response.status == 401
