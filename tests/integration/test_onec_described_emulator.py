"""The described 1C emulator over real sockets: each example and fixture service through
its own WSDL (plain zeep) or its HTTP routes (aiohttp), its refusals, 1C's spellings, and
the points a hold moves in the infobase. No connector code talks to the emulators here.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import requests
import zeep
import zeep.exceptions
from requests.auth import HTTPBasicAuth
from zeep.plugins import Plugin

from connectors.onec.emulator import OnecEmulator
from connectors.onec.emulator.described import DescribedEmulator, load_description
from connectors.onec.emulator.described.description import DescriptionError
from connectors.onec.emulator.ledger import SANDBOX_CUSTOMERS

ROOT = Path(__file__).parents[2]
CYRILLIC = ROOT / "examples/onec/cyrillic_soap/emulator.yaml"
HTTP_JSON = ROOT / "examples/onec/http_json/emulator.yaml"
FIXTURES = ROOT / "tests/fixtures/onec_services"
IVAN, IVAN_CARD, MARIA = "00000000-0000-0000-0000-000000000001", "2000000000015", "+79000000002"
D = Decimal
NBSP = "\u00a0"
MOSCOW = ZoneInfo("Europe/Moscow")
AUTH = "Basic " + base64.b64encode(b"bridge:sandbox").decode()


class Utf8Headers(Plugin):
    """Header values as UTF-8 bytes: http.client sends str headers as latin-1, which a
    Cyrillic SOAPAction cannot be (python-zeep#1172)."""

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        encoded = {k: v.encode() if isinstance(v, str) else v for k, v in http_headers.items()}
        return envelope, encoded


@contextmanager
def soap_service(emu: DescribedEmulator, port: str | None = None) -> Iterator[Any]:
    """A plain zeep client on the service's own WSDL (the first port, or ``port``)."""
    with requests.Session() as session:
        session.auth = HTTPBasicAuth("bridge", "sandbox")
        transport = zeep.Transport(session=session, operation_timeout=10)
        client = zeep.Client(wsdl=emu.wsdl_url, transport=transport, plugins=[Utf8Headers()])
        assert emu.wsdl is not None
        yield client.service if port is None else client.bind(emu.wsdl.service, port)


def admin(emu: DescribedEmulator | OnecEmulator, path: str, body: Any = None) -> Any:
    """An admin endpoint (no auth): GET without a body, POST with one."""
    url = f"http://127.0.0.1:{emu.port}/__emulator__/{path}"
    if body is None:
        return requests.get(url, timeout=5).json()
    return requests.post(url, json=body, timeout=5)


def points(emu: DescribedEmulator, customer_id: str = IVAN) -> tuple[Decimal, Decimal]:
    """(balance, reserved) of a customer, straight from the infobase."""
    balance, reserved = emu.ledger.snapshot()["balances"][customer_id]
    return D(balance), D(reserved)


def moscow_now() -> datetime:
    return datetime.now(MOSCOW).replace(tzinfo=None)


def close_to_now(text: str | datetime) -> bool:
    moment = datetime.fromisoformat(text) if isinstance(text, str) else text
    return moment.tzinfo is None and abs(moment - moscow_now()) < timedelta(seconds=5)


@pytest.fixture
async def cyrillic() -> AsyncIterator[DescribedEmulator]:
    async with DescribedEmulator(CYRILLIC) as emu:
        yield emu


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
        yield session


async def call(
    session: aiohttp.ClientSession, method: str, url: str, body: Any = None
) -> tuple[int, Any]:
    async with session.request(method, url, json=body) as response:
        return response.status, await response.json(content_type=None)


# cyrillic_soap: scalar returns with out-parameters, refusals as answers and as faults.


async def test_cyrillic_soap_publishes_its_own_wsdl_at_the_real_address(
    cyrillic: DescribedEmulator, http: aiohttp.ClientSession
) -> None:
    assert cyrillic.url == f"http://127.0.0.1:{cyrillic.port}/base/ws/bonus.1cws"
    async with http.get(cyrillic.wsdl_url) as response:
        assert response.status == 200
        text = (await response.read()).decode()
    assert f'location="{cyrillic.url}"' in text
    assert "srv-1c.retail.local" not in text  # the host baked into the file is replaced
    assert "http://retail-example.ru/loyalty#БонуснаяПрограмма:ЗаблокироватьБаллы" in text
    async with aiohttp.ClientSession() as anonymous, anonymous.get(cyrillic.wsdl_url) as refused:
        assert refused.status == 401
        assert refused.headers["WWW-Authenticate"] == 'Basic realm="1C"'
        assert "<h1>Unauthorized</h1>" in await refused.text()


def balance_and_hold(emu: DescribedEmulator) -> None:
    with soap_service(emu) as svc:
        balance = svc.ПолучитьБаланс(Телефон="79000000001", СуммаПокупки=D("300.00"))
        assert (balance["return"], balance.МаксимумСписания) == (D("1000.00"), D("150.00"))
        assert balance.Уровень == "Базовый"
        whole = svc.ПолучитьБаланс(Телефон="89000000001", СуммаПокупки=None)
        assert whole.МаксимумСписания == D("1000.00")  # no purchase: all that is available

        held = svc.ЗаблокироватьБаллы(Телефон="79000000001", Сумма=D("100.00"), НомерЗаказа="A-1")
        assert held["return"] is True
        assert held.ИдентификаторБлокировки == "Б-000017"
        assert points(emu) == (D("1000.00"), D("100.00"))
        assert svc.ПолучитьБаланс(Телефон="+7 (900) 000-00-01")["return"] == D("900.00")

        refused = svc.ЗаблокироватьБаллы(Телефон="79000000001", Сумма=D("901"), НомерЗаказа="A-2")
        assert (refused["return"], refused.ИдентификаторБлокировки) == (False, None)
        assert refused.ТекстОшибки == "Недостаточно баллов"
        unknown = svc.ЗаблокироватьБаллы(Телефон="79000000099", Сумма=D("1"), НомерЗаказа="A-3")
        assert (unknown["return"], unknown.ТекстОшибки) == (False, "Клиент не найден")
        with pytest.raises(zeep.exceptions.Fault) as caught:
            svc.ПолучитьБаланс(Телефон="79000000099", СуммаПокупки=None)
        text = "Ошибка при вызове метода контекста (ПолучитьБаланс): Клиент не найден"
        assert caught.value.message == text
    assert points(emu) == (D("1000.00"), D("100.00"))  # refusals moved nothing


async def test_cyrillic_soap_balance_hold_and_refusals(cyrillic: DescribedEmulator) -> None:
    await asyncio.to_thread(balance_and_hold, cyrillic)
    assert cyrillic.calls == {"ПолучитьБаланс": 4, "ЗаблокироватьБаллы": 3}


async def test_a_hold_is_written_off_when_the_sale_is_posted(cyrillic: DescribedEmulator) -> None:
    def hold() -> str:
        with soap_service(cyrillic) as svc:
            held = svc.ЗаблокироватьБаллы(Телефон="79000000001", Сумма=D("100"), НомерЗаказа="A")
            return str(held.ИдентификаторБлокировки)

    hold_id = await asyncio.to_thread(hold)
    sale = await asyncio.to_thread(admin, cyrillic, "sales", {"hold_id": hold_id, "amount": "60"})
    assert sale.status_code == 200
    assert sale.json()["amount"] == "60.00"
    assert points(cyrillic) == (D("940.00"), D("0.00"))  # 60 written off, 40 released
    again = await asyncio.to_thread(admin, cyrillic, "sales", {"hold_id": hold_id, "amount": "60"})
    assert again.status_code == 200  # the same sale posted twice moves nothing more
    assert points(cyrillic) == (D("940.00"), D("0.00"))
    unknown = await asyncio.to_thread(admin, cyrillic, "sales", {"hold_id": "Б-999999"})
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "reservation_not_found"
    state = await asyncio.to_thread(admin, cyrillic, "state")
    assert state["holds"] == {hold_id: "hold-1"}


async def test_a_soap_call_with_another_operations_action_is_a_client_fault(
    cyrillic: DescribedEmulator, http: aiohttp.ClientSession
) -> None:
    envelope = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:m="http://retail-example.ru/loyalty"><soap:Body><m:ПолучитьБаланс>'
        "<m:Телефон>79000000001</m:Телефон></m:ПолучитьБаланс></soap:Body></soap:Envelope>"
    ).encode()
    action = "http://retail-example.ru/loyalty#БонуснаяПрограмма:ЗаблокироватьБаллы"
    headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{action}"'}
    async with http.post(cyrillic.url, data=envelope, headers=headers) as response:
        assert response.status == 500
        assert "soap:Client" in await response.text()
    headers["SOAPAction"] = action.replace("ЗаблокироватьБаллы", "ПолучитьБаланс")
    async with http.post(cyrillic.url, data=envelope, headers=headers) as response:
        assert response.status == 200
        assert "<m:return>1000.00</m:return>" in await response.text()


# http_json: routes with path, query and body arguments; 1C spellings; 200 refusals.


async def test_http_json_finds_clients_and_spells_the_balance_as_1c(
    http: aiohttp.ClientSession,
) -> None:
    async with DescribedEmulator(HTTP_JSON) as emu:
        assert emu.url == f"http://127.0.0.1:{emu.port}/base/hs/bonus"
        status, found = await call(http, "GET", emu.url + "/clients?phone=79000000001")
        assert (status, found) == (200, {"clients": [
            {"card": IVAN_CARD, "name": "Иван Петров", "phone": "79000000001"},
        ]})  # fmt: skip
        assert await call(http, "GET", emu.url + "/clients?phone=79000000099") == (
            200,
            {"clients": []},
        )
        status, balance = await call(http, "GET", emu.url + f"/cards/{IVAN_CARD}/balance?sum=1500")
        data = balance["data"]
        assert (data["balance"], data["available"]) == (f"1{NBSP}000,00", f"1{NBSP}000,00")
        assert data["maxWriteOff"] == "750,00"  # half the purchase, the programme's limit
        assert close_to_now(data["updated"])  # Moscow time, no offset
        assert await call(http, "GET", emu.url + "/cards/999/balance") == (
            200,
            {"ok": False, "error": "Клиент не найден"},
        )


async def test_http_json_holds_idempotently_commits_less_and_releases(
    http: aiohttp.ClientSession,
) -> None:
    async with DescribedEmulator(HTTP_JSON) as emu:
        hold = {"card": IVAN_CARD, "points": "300.00", "order": "A-1", "requestId": "q-1"}
        first = await call(http, "POST", emu.url + "/holds", hold)
        assert first == (200, {"ok": True, "holdId": "H-17"})
        assert await call(http, "POST", emu.url + "/holds", hold) == first  # the same request
        assert points(emu) == (D("1000.00"), D("300.00"))
        hold |= {"requestId": "q-2", "points": "800.00"}
        assert await call(http, "POST", emu.url + "/holds", hold) == (
            200,
            {"ok": False, "error": "Недостаточно баллов"},
        )
        commit = await call(http, "POST", emu.url + "/holds/H-17/commit", {"points": "250.00"})
        assert commit == (200, {"ok": True})
        assert points(emu) == (D("750.00"), D("0.00"))  # exactly 250 written off
        assert await call(http, "DELETE", emu.url + "/holds/H-17") == (
            200,
            {"ok": False, "error": "Блокировка уже закрыта"},
        )
        assert await call(http, "DELETE", emu.url + "/holds/H-99") == (
            200,
            {"ok": False, "error": "Блокировка не найдена"},
        )
        hold |= {"requestId": "q-3", "points": "100.00"}
        assert (await call(http, "POST", emu.url + "/holds", hold))[1]["holdId"] == "H-18"
        assert await call(http, "DELETE", emu.url + "/holds/H-18") == (200, {"ok": True})
        assert points(emu) == (D("750.00"), D("0.00"))
        async with http.put(emu.url + "/holds") as response:
            assert response.status == 405  # no such method on the template
        assert emu.calls["hold"] == 4


# soap_records: records, a repeated element, Истина/Ложь and 1C's decimals, code-less faults.


def records(emu: DescribedEmulator) -> None:
    with soap_service(emu, "БонусыSoap12") as svc:
        client = svc.ИнформацияОКлиенте(НомерКарты=IVAN_CARD)
        assert (client.Код, client.Телефон, client.Наименование) == (
            IVAN,
            "+7 (900) 000-00-01",
            "Иван Петров",
        )
        found = svc.КлиентыПоТелефону(Телефон="89000000002")
        assert found.Количество == 1
        assert [c.Наименование for c in found.Клиент] == ["Мария Смирнова"]
        none = svc.КлиентыПоТелефону(Телефон="89000000099")
        assert (none.Количество, none.Клиент) == (0, [])

        rest = svc.Остаток(КодКлиента=IVAN, Сумма=D("300"))
        assert (rest.Остаток, rest.Резерв, rest.КСписанию) == (f"1{NBSP}000,00", "0,00", "150,00")
        assert rest.Активна == "Истина"
        assert close_to_now(rest.НаДату)

        held = svc.Резервировать(КодКлиента=IVAN, Баллы=D("200"), Заказ="A-1", ИдОперации="op-1")
        assert (held.Успешно, held.НомерРезерва, held.Сообщение) == ("Истина", "Р-00017", None)
        again = svc.Резервировать(КодКлиента=IVAN, Баллы=D("200"), Заказ="A-1", ИдОперации="op-1")
        assert again.НомерРезерва == "Р-00017"
        assert points(emu) == (D("1000.00"), D("200.00"))
        done = svc.Списать(НомерРезерва="Р-00017", Баллы=D("150"))
        assert (done.Успешно, done.Остаток) == ("Истина", "850,00")
        assert points(emu) == (D("850.00"), D("0.00"))

        for fault, kwargs in [
            ("Резерв уже закрыт", {"НомерРезерва": "Р-00017"}),
            ("Резерв не найден", {"НомерРезерва": "Р-99999"}),
        ]:
            with pytest.raises(zeep.exceptions.Fault) as caught:
                svc.Отменить(**kwargs)
            assert caught.value.message == fault  # the text alone, no code
        with pytest.raises(zeep.exceptions.Fault) as caught:
            svc.Резервировать(КодКлиента=IVAN, Баллы=D("851"), Заказ="A-2", ИдОперации="op-2")
        assert caught.value.message == "Недостаточно бонусов"

        accrued = svc.Начислить(КодКлиента=IVAN, Баллы=D("50"), Заказ="A-1", ИдОперации="ac-1")
        assert (accrued.НомерОперации, accrued.Остаток) == ("Н-00001", "900,00")
        back = svc.ОтменитьНачисление(НомерОперации="Н-00001", Баллы=D("20"))
        assert back.Остаток == "880,00"
    assert points(emu) == (D("880.00"), D("0.00"))


async def test_soap_records_over_soap_12() -> None:
    async with DescribedEmulator(FIXTURES / "soap_records/emulator.yaml") as emu:
        await asyncio.to_thread(records, emu)
        assert emu.calls["Резервировать"] == 3


# http_put: PUT/POST/DELETE routes, nested JSON numbers, refusals as 404/409.


async def test_http_put_reserves_with_numbers_and_refuses_with_statuses(
    http: aiohttp.ClientSession,
) -> None:
    async with DescribedEmulator(FIXTURES / "http_put/emulator.yaml") as emu:
        url = emu.url + "/v2"
        assert emu.url.endswith("/base/hs/loyalty")
        assert await call(http, "GET", url + "/points/89000000001?total=1500") == (
            200,
            {
                "result": {
                    "points": 1000,
                    "reserved": 0,
                    "limit": 750,
                    "expires": "0001-01-01T00:00:00",
                }
            },
        )
        reserve = {"reserve": {"sum": 1.5, "order": "A-1"}}
        status, held = await call(http, "PUT", url + "/reserve/89000000001", reserve)
        assert (status, held) == (200, {"result": {"id": "0000017", "sum": 1.5, "points": 998.5}})
        assert points(emu) == (D("1000.00"), D("1.50"))
        assert await call(http, "PUT", url + "/reserve/89000000099", reserve) == (
            404,
            {"message": "Покупатель с таким телефоном не найден"},
        )
        too_much = {"reserve": {"sum": 5000, "order": "A-2"}}
        assert await call(http, "PUT", url + "/reserve/89000000001", too_much) == (
            409,
            {"message": "Недостаточно баллов для резерва"},
        )
        confirmed = await call(http, "POST", url + "/reserve/0000017/confirm", {"sum": 1})
        assert confirmed == (200, {"result": {"confirmed": 1, "points": 999}})
        assert points(emu) == (D("999.00"), D("0.00"))
        assert (await call(http, "DELETE", url + "/reserve/0000017"))[0] == 409  # closed
        assert (await call(http, "DELETE", url + "/reserve/0000099"))[0] == 404
        accrual = {"accrual": {"sum": 10, "order": "A-1"}}
        status, accrued = await call(http, "POST", url + "/accruals/89000000001", accrual)
        assert accrued == {"result": {"id": "N0000001", "points": 1009}}
        cancelled = await call(http, "POST", url + "/accruals/N0000001/cancel", {"sum": 4})
        assert cancelled == (200, {"result": {"cancelled": 4, "points": 1005}})
        bad = await call(http, "PUT", url + "/reserve/89000000001", {"reserve": {"order": "A"}})
        assert bad == (400, {"message": "Неверные параметры: amount: required"})


# lookup_only: a balance as a string in 1C's spelling, nothing else.


async def test_lookup_only_answers_a_balance_as_1c_text() -> None:
    def look_up(emu: DescribedEmulator) -> None:
        with soap_service(emu) as svc:
            assert svc.БалансКарты(Карта=IVAN_CARD) == "1 000,00"
            with pytest.raises(zeep.exceptions.Fault) as caught:
                svc.БалансКарты(Карта="404")
            assert caught.value.message.endswith("(БалансКарты): Карта не найдена")

    async with DescribedEmulator(FIXTURES / "lookup_only/emulator.yaml") as emu:
        assert emu.wsdl is not None and set(emu.wsdl.actions) == {"БалансКарты"}
        await asyncio.to_thread(look_up, emu)


# Faults injected as into OnecEmulator.


async def test_injected_faults_reach_a_described_service(http: aiohttp.ClientSession) -> None:
    async with DescribedEmulator(HTTP_JSON) as emu:
        balance = emu.url + f"/cards/{IVAN_CARD}/balance"
        assert await asyncio.to_thread(admin, emu, "faults", {"http_status": 503, "count": 1})
        async with http.get(balance) as response:
            assert response.status == 503
            assert "Service Unavailable" in await response.text()
        await asyncio.to_thread(admin, emu, "faults", {"soap_fault": "unknown_customer"})
        assert await call(http, "GET", balance) == (200, {"ok": False, "error": "Клиент не найден"})
        await asyncio.to_thread(admin, emu, "faults", {"soap_fault": "Ошибка СУБД"})
        async with http.get(balance) as response:
            assert (response.status, await response.text()) == (500, "Ошибка СУБД")
        await asyncio.to_thread(admin, emu, "faults", {"values": {"available": "много"}})
        assert (await call(http, "GET", balance))[1]["data"]["available"] == "много"
        set_latency = await asyncio.to_thread(admin, emu, "faults", {"latency": 0.3, "count": 1})
        assert set_latency.status_code == 200
        started = asyncio.get_running_loop().time()
        assert (await call(http, "GET", balance))[0] == 200
        assert asyncio.get_running_loop().time() - started >= 0.3
        assert (await asyncio.to_thread(admin, emu, "faults"))["latency"] == 0.0  # spent
        async with aiohttp.ClientSession() as anonymous, anonymous.get(balance) as response:
            assert response.status == 401


async def test_soap_fault_injected_into_a_soap_service() -> None:
    def balance(emu: DescribedEmulator) -> str:
        with soap_service(emu) as svc, pytest.raises(zeep.exceptions.Fault) as caught:
            svc.ПолучитьБаланс(Телефон="79000000001", СуммаПокупки=None)
        return str(caught.value.message)

    async with DescribedEmulator(CYRILLIC, publication="retail") as emu:
        assert "/retail/ws/bonus.1cws" in emu.url
        await asyncio.to_thread(admin, emu, "faults", {"soap_fault": "insufficient_balance"})
        text = await asyncio.to_thread(balance, emu)
        assert text == "Ошибка при вызове метода контекста (ПолучитьБаланс): Недостаточно баллов"


# The description itself.


def test_every_problem_of_a_description_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "emulator.yaml"
    path.write_text(
        "service: http\nroot: bonus\nrefusal: {as: shout}\noperations:\n"
        "  a: {does: hold, route: GET /x, in: {card: path.card, order: nowhere.o}}\n"
        "  b: {does: fly}\n"
        "  c: {does: balance, route: GET /c, in: {card: query.c}, out: {x: 'balance:roman'}}\n",
        encoding="utf-8",
    )
    with pytest.raises(DescriptionError) as caught:
        load_description(path)
    text = str(caught.value)
    for problem in (
        "refusal.0: a map with as: fault, answer or status",
        "operations.a.in.amount: hold needs it",
        "operations.a.in.order: path.<name>, query.<name> or body.<key>",
        "operations.b.does: one of",
        "operations.c.out.x: roman: not a spelling",
    ):
        assert problem in text


# OnecEmulator: dateTime as 1C writes it, local without an offset.


async def test_the_reference_emulator_writes_and_reads_local_times(
    http: aiohttp.ClientSession,
) -> None:
    async with OnecEmulator(timezone="Asia/Yekaterinburg") as emu:
        url = emu.hs_url + "/v1"
        status, balance = await call(http, "POST", url + "/balance", {"customer_id": IVAN})
        local = datetime.now(ZoneInfo("Asia/Yekaterinburg")).replace(tzinfo=None)
        as_of = datetime.fromisoformat(balance["as_of"])
        assert as_of.tzinfo is None and abs(as_of - local) < timedelta(seconds=5)
        body = {"created_from": "2000-01-01T00:00:00", "limit": 1}  # no offset: local time
        status, listed = await call(http, "POST", url + "/customers", body)
        assert (status, listed["total"]) == (200, len(SANDBOX_CUSTOMERS))
    async with OnecEmulator() as emu:
        assert emu.zone == MOSCOW
