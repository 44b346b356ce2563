"""The Bitrix24 emulator over real sockets, spoken to with plain aiohttp (bitrix.md §1–§3).

Every scenario is a real HTTP exchange on loopback: both URL forms and their auth errors,
the envelope, pages and the fast `>ID` scan, batch, the leaky bucket (on a fake clock),
crm.item / old crm.* / sale.order, user fields, outbound events to a loopback handler, the
offline queue, `auth_connector`, and injected faults.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import pytest
from aiohttp import web

from bridge.connector import Emulator
from connectors.bitrix.emulator import DEFAULT_APPLICATION_TOKEN, BitrixEmulator
from connectors.bitrix.emulator.auth import Webhook

Json = dict[str, Any]


class FakeClock:
    """UNIX seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1_760_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Handler:
    """A loopback event handler that records each POST's form and answers `status`."""

    url: str = ""
    received: list[list[tuple[str, str]]] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    status: int = 200

    def forms(self, event: str | None = None) -> list[dict[str, str]]:
        """Received forms as dicts, optionally of one event."""
        out = [dict(pairs) for pairs in self.received]
        return [f for f in out if event is None or f["event"] == event]


@pytest.fixture
async def handler() -> AsyncIterator[Handler]:
    state = Handler()

    async def receive(request: web.Request) -> web.Response:
        state.content_types.append(request.content_type)
        state.received.append(parse_qsl((await request.read()).decode(), keep_blank_values=True))
        return web.Response(status=state.status, text="ok")

    app = web.Application()
    app.router.add_post("/{tail:.*}", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/bitrix"
    yield state
    await runner.cleanup()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[BitrixEmulator]:
    async with BitrixEmulator(clock=clock, burst=0) as emulator:
        yield emulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, url: str, method: str = "POST", **kwargs: Any
) -> tuple[int, Json]:
    """One request; the status and the JSON body."""
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json(content_type=None)


async def hook(http: aiohttp.ClientSession, emu: BitrixEmulator, method: str, **body: Any) -> Json:
    """A successful inbound-webhook call with a JSON body."""
    status, answer = await call(http, emu.webhook_url + method, json=body)
    assert status == 200, answer
    return answer


async def app_call(
    http: aiohttp.ClientSession, emu: BitrixEmulator, token: str, method: str, **body: Any
) -> tuple[int, Json]:
    """A call in the application context (`/rest/<method>` with `auth`)."""
    return await call(http, f"{emu.url}/rest/{method}", json={"auth": token, **body})


async def test_is_an_emulator_with_both_url_forms(http: aiohttp.ClientSession) -> None:
    emulator = BitrixEmulator()
    assert isinstance(emulator, Emulator)
    assert emulator.url == ""
    async with emulator:
        assert emulator.url == f"http://127.0.0.1:{emulator.port}"
        assert emulator.webhook_url == f"{emulator.url}/rest/1/sandbox0webhook1/"
        for suffix in ("server.time", "server.time.json", "server.time/"):
            status, body = await call(http, emulator.webhook_url + suffix, "GET")
            assert status == 200 and body["result"].endswith("+03:00")
        assert set(body["time"]) >= {"start", "finish", "duration", "date_start", "operating"}
        token = emulator.install_app()["access_token"]
        status, body = await call(
            http, f"{emulator.url}/rest/profile", "GET", params={"auth": token}
        )
        assert status == 200 and body["result"]["ADMIN"] is True
        status, body = await call(http, emulator.webhook_url + "server.time.xml")
        assert (status, body["error"]) == (400, "INVALID_REQUEST")


async def test_webhook_and_oauth_auth_errors(
    emu: BitrixEmulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    wrong = f"{emu.url}/rest/1/not-the-secret/crm.item.list"
    status, body = await call(http, wrong, json={"entityTypeId": 3})
    assert (status, body) == (
        401,
        {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"},
    )
    status, body = await call(http, f"{emu.url}/rest/7/sandbox0webhook1/profile")
    assert (status, body["error"]) == (401, "NO_AUTH_FOUND")
    # CRestServer looks the method up first: an unknown method is 404 whatever the auth.
    status, body = await call(http, f"{emu.url}/rest/1/bad/no.such.method")
    assert (status, body["error"]) == (404, "ERROR_METHOD_NOT_FOUND")

    status, body = await call(http, f"{emu.url}/rest/profile")
    assert (status, body["error"]) == (401, "NO_AUTH_FOUND")
    status, body = await app_call(http, emu, "nonsense", "profile")
    assert (status, body["error"]) == (401, "invalid_token")

    pair = emu.install_app()
    status, body = await app_call(http, emu, pair["access_token"], "app.info")
    assert status == 200 and body["result"]["CODE"] == emu.app.client_id
    clock.advance(3601)  # §1.1: an access token lives an hour
    status, body = await app_call(http, emu, pair["access_token"], "app.info")
    assert (status, body["error"]) == (401, "expired_token")

    grant = {
        "grant_type": "refresh_token",
        "client_id": emu.app.client_id,
        "client_secret": "sandbox-bitrix-client-secret",
        "refresh_token": pair["refresh_token"],
    }
    status, fresh = await call(http, f"{emu.url}/oauth/token/", "GET", params=grant)
    assert status == 200 and fresh["expires_in"] == 3600 and fresh["refresh_token"]
    status, body = await app_call(http, emu, fresh["access_token"], "app.info")
    assert status == 200
    status, body = await call(http, f"{emu.url}/oauth/token/", "GET", params=grant)
    assert (status, body["error"]) == (400, "invalid_grant")  # a refresh token is spent once
    status, body = await call(
        http, f"{emu.url}/oauth/token/", data=grant | {"client_secret": "guess"}
    )
    assert (status, body["error"]) == (401, "invalid_client")

    async with http.post(f"{emu.url}/__emulator__/oauth/expire") as response:
        assert response.status == 200
    status, body = await app_call(http, emu, fresh["access_token"], "app.info")
    assert (status, body["error"]) == (401, "expired_token")


async def test_scopes_and_application_context(http: aiohttp.ClientSession) -> None:
    crm_only = Webhook(5, "crmonlywebhook55", frozenset({"crm"}), admin=False)
    async with BitrixEmulator(webhooks=[crm_only], burst=0) as emu:
        status, body = await call(http, emu.webhook_url + "sale.order.list")
        assert (status, body["error"]) == (403, "insufficient_scope")
        status, body = await call(http, emu.webhook_url + "scope")
        assert body["result"] == ["crm"]
        status, body = await call(http, emu.webhook_url + "app.info")
        assert body["result"]["SCOPE"] == ["crm"]
        # §3.1: binding events needs the application (OAuth), not a webhook.
        status, body = await call(
            http,
            emu.webhook_url + "event.bind",
            json={"event": "ONCRMDEALADD", "handler": "http://x"},
        )
        assert (status, body["error"]) == (403, "WRONG_AUTH_TYPE")
        # §3.5: the offline queue is for admins only.
        emu.app.admin = False
        token = emu.install_app()["access_token"]
        status, body = await app_call(http, emu, token, "event.offline.get")
        assert (status, body) == (
            403,
            {"error": "ACCESS_DENIED", "error_description": "Access denied!"},
        )
        status, body = await app_call(
            http, emu, token, "event.bind", event="ONCRMDEALADD", event_type="offline"
        )
        assert (status, body["error"]) == (403, "ACCESS_DENIED")
        assert "administrator" in body["error_description"]


async def test_parameters_as_query_form_and_json(
    emu: BitrixEmulator, http: aiohttp.ClientSession
) -> None:
    url = emu.webhook_url
    status, body = await call(
        http, url + "crm.deal.add", data={"fields[TITLE]": "Form", "fields[OPPORTUNITY]": "10.5"}
    )
    assert status == 200 and body["result"] == 1
    status, body = await call(
        http,
        url + "crm.deal.list",
        "GET",
        params=[("filter[>ID]", "0"), ("select[]", "ID"), ("select[]", "TITLE")],
    )
    assert body["result"] == [{"ID": "1", "TITLE": "Form"}] and body["total"] == 1
    status, body = await call(http, url + "crm.deal.get", json={"id": 1})
    # §1.3: the old API writes strings, numbers included.
    assert body["result"]["OPPORTUNITY"] == "10.50" and body["result"]["CATEGORY_ID"] == "0"
    assert "CONTACT_IDS" not in body["result"]  # §2.2
    status, body = await call(http, url + "crm.deal.get", json={"id": 99})
    assert (status, body) == (400, {"error": "", "error_description": "Not found"})
    status, body = await call(http, url + "crm.deal.get")
    assert (status, body["error_description"]) == (400, "ID is not defined or invalid.")
    status, body = await call(
        http, url + "crm.deal.list", data=b"{", headers={"Content-Type": "application/json"}
    )
    assert (status, body["error"]) == (400, "INVALID_REQUEST")


async def test_pages_of_fifty_and_the_fast_id_scan(
    emu: BitrixEmulator, http: aiohttp.ClientSession
) -> None:
    for number in range(120):
        emu.admin.seed("deal", {"TITLE": f"Deal {number}"})
    first = await hook(http, emu, "crm.deal.list", select=["ID"])
    assert (len(first["result"]), first["next"], first["total"]) == (50, 50, 120)
    last = await hook(http, emu, "crm.deal.list", start=100, select=["ID"])
    assert (len(last["result"]), last["total"]) == (20, 120) and "next" not in last
    items = await hook(http, emu, "crm.item.list", entityTypeId=2, start=50, select=["id"])
    assert [i["id"] for i in items["result"]["items"]][:2] == [51, 52] and items["next"] == 100
    # §1.4/§6: start=-1 skips the count — `total: 0`, no `next`.
    fast = await hook(http, emu, "crm.deal.list", start=-1, select=["ID"])
    assert (len(fast["result"]), fast["total"]) == (50, 0) and "next" not in fast
    seen: list[int] = []
    last_id, pages = 0, 0
    while True:
        page = await hook(
            http,
            emu,
            "crm.item.list",
            entityTypeId=2,
            order={"id": "ASC"},
            filter={">id": last_id},
            select=["id"],
            start=-1,
        )
        batch = [item["id"] for item in page["result"]["items"]]
        pages += 1
        seen += batch
        if len(batch) < 50:
            break
        last_id = batch[-1]
    assert seen == list(range(1, 121)) and pages == 3
    desc = await hook(http, emu, "crm.deal.list", order={"ID": "DESC"}, select=["ID"])
    assert desc["result"][0]["ID"] == "120"


async def test_batch_references_errors_halt_and_limits(
    emu: BitrixEmulator, http: aiohttp.ClientSession
) -> None:
    body = await hook(
        http,
        emu,
        "batch",
        halt=0,
        cmd={
            "deal": "crm.item.add?entityTypeId=2&fields[title]=Batch&fields[opportunity]=99",
            "read": "crm.item.get?entityTypeId=2&id=$result[deal][item][id]",
            "titled": "crm.deal.update?id=$result[deal][item][id]"
            "&fields[TITLE]=Renamed $result[deal][item][id]",
            "missing": "crm.deal.get?id=999",
            "unknown": "no.such.method",
            "list": "crm.contact.list?select[]=ID",
        },
    )
    result = body["result"]
    assert result["result"]["read"]["item"]["title"] == "Batch"
    assert result["result"]["titled"] is True
    assert result["result_error"]["missing"] == {"error": "", "error_description": "Not found"}
    assert result["result_error"]["unknown"]["error"] == "ERROR_METHOD_NOT_FOUND"
    assert result["result_total"] == {"list": 3} and result["result_next"] == []
    assert set(result["result_time"]) == {"deal", "read", "titled", "list"}
    renamed = await hook(http, emu, "crm.deal.get", id=1)
    assert renamed["result"]["TITLE"] == "Renamed 1"

    halted = await hook(
        http, emu, "batch", halt=1, cmd=["crm.deal.get?id=999", "crm.deal.get?id=1"]
    )
    assert halted["result"]["result"] == [] and list(halted["result"]["result_error"]) == [
        {"error": "", "error_description": "Not found"}
    ]
    # §1.5: more than 50 commands — the overflow fails inside the 200 answer.
    many = {f"c{n}": "server.time" for n in range(51)}
    body = await hook(http, emu, "batch", cmd=many)
    assert len(body["result"]["result"]) == 50
    assert body["result"]["result_error"]["c50"]["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"
    nested = await hook(http, emu, "batch", cmd={"b": "batch?cmd[x]=server.time"})
    assert nested["result"]["result_error"]["b"]["error"] == "ERROR_BATCH_METHOD_NOT_ALLOWED"
    # §1.2: sent as a form, a cmd is encoded twice (`+` → %2B → %252B on the wire).
    _, form = await call(
        http,
        emu.webhook_url + "batch",
        data={"cmd[who]": "crm.duplicate.findbycomm?type=PHONE&values[]=%2B79000000002"},
    )
    assert form["result"]["result"] == {"who": {"CONTACT": [2]}}
    clean = await hook(http, emu, "batch", cmd={"t": "server.time"})
    assert clean["result"]["result_error"] == []  # PHP writes an empty map as []


async def test_leaky_bucket_refuses_the_51st_quick_call_and_recovers(
    http: aiohttp.ClientSession,
) -> None:
    clock = FakeClock()  # frozen: the whole burst lands within one instant
    async with BitrixEmulator(clock=clock) as emu:
        url = emu.webhook_url + "server.time"
        statuses = [(await call(http, url))[0] for _ in range(50)]
        assert statuses == [200] * 50
        status, body = await call(http, url)
        assert (status, body) == (
            503,
            {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
        )
        clock.advance(0.5)  # §1.6: drains 2 per second → room for one
        assert (await call(http, url))[0] == 200
        assert (await call(http, url))[0] == 503
        clock.advance(10)
        assert [(await call(http, url))[0] for _ in range(20)] == [200] * 20
        # A batch is one HTTP request whatever it holds (§1.5/§1.6).
        clock.advance(60)
        body = (await call(http, emu.webhook_url + "batch", json={"cmd": ["server.time"] * 50}))[1]
        assert len(body["result"]["result"]) == 50
        assert emu.bucket.level("127.0.0.1") == 1
        assert emu.snapshot()["stats"]["rate_limited"] == 2


async def test_crm_item_crud_for_deals_and_contacts(
    emu: BitrixEmulator, http: aiohttp.ClientSession
) -> None:
    emu.admin.seed_userfield("deal", "BONUS_SPENT", "double")
    added = await hook(
        http,
        emu,
        "crm.item.add",
        entityTypeId=2,
        fields={
            "title": "Order 1C-77",
            "opportunity": 2349.5,
            "stageId": "PREPARATION",
            "originatorId": "bridge",
            "originId": "1c-77",
            "contactIds": [1],
            "ufCrmBonusSpent": 300,
            "NOT_A_FIELD": "ignored",
        },
    )
    item = added["result"]["item"]
    assert (item["id"], item["opportunity"], item["contactId"], item["ufCrmBonusSpent"]) == (
        1,
        2349.5,
        1,
        300,
    )
    assert item["entityTypeId"] == 2 and "NOT_A_FIELD" not in item
    updated = await hook(
        http, emu, "crm.item.update", entityTypeId=2, id=1, fields={"stageId": "WON"}
    )
    assert (
        updated["result"]["item"]["stageId"] == "WON"
        and updated["result"]["item"]["title"] == "Order 1C-77"
    )
    found = await hook(
        http,
        emu,
        "crm.item.list",
        entityTypeId=2,
        filter={"originId": "1c-77", "=originatorId": "bridge"},
    )
    assert [i["id"] for i in found["result"]["items"]] == [1]
    original = await hook(http, emu, "crm.item.get", entityTypeId=2, id=1, useOriginalUfNames="Y")
    assert original["result"]["item"]["UF_CRM_BONUS_SPENT"] == 300
    deleted = await hook(http, emu, "crm.item.delete", entityTypeId=2, id=1)
    assert deleted["result"] == []
    status, body = await call(
        http, emu.webhook_url + "crm.item.get", json={"entityTypeId": 2, "id": 1}
    )
    assert (status, body["error"]) == (400, "NOT_FOUND")
    status, body = await call(
        http,
        emu.webhook_url + "crm.item.add",
        json={"entityTypeId": 2, "fields": {"opportunity": "lots"}},
    )
    assert (status, body) == (
        400,
        {
            "error": "CRM_FIELD_ERROR_VALUE_NOT_VALID",
            "error_description": 'Invalid value for field "opportunity"',
        },
    )
    status, body = await call(http, emu.webhook_url + "crm.item.list", json={"entityTypeId": 7})
    assert (status, body["error_description"]) == (400, "Smart process not found")
    status, body = await call(
        http, emu.webhook_url + "crm.item.list", json={"entityTypeId": 2, "filter": {"NOPE": "x"}}
    )
    assert (status, body["error"]) == (400, "INVALID_ARG_VALUE")

    contact = await hook(
        http,
        emu,
        "crm.item.add",
        entityTypeId=3,
        fields={
            "name": "Пётр",
            "fm": [{"typeId": "PHONE", "valueType": "WORK", "value": "+7 900 000-00-09"}],
        },
    )
    assert contact["result"]["item"]["fm"][0]["value"] == "+7 900 000-00-09"
    legacy = await hook(http, emu, "crm.contact.get", id=contact["result"]["item"]["id"])
    assert (
        legacy["result"]["PHONE"][0]["VALUE"] == "+7 900 000-00-09"
        and legacy["result"]["HAS_PHONE"] == "Y"
    )


async def test_old_multifield_rules_and_user_fields(
    emu: BitrixEmulator, http: aiohttp.ClientSession
) -> None:
    phone_id = (await hook(http, emu, "crm.contact.get", id=1))["result"]["PHONE"][0]["ID"]
    await hook(
        http,
        emu,
        "crm.contact.update",
        id=1,
        fields={
            "PHONE": [
                {"ID": phone_id, "VALUE": "+79000000011"},
                {"VALUE": "+79000000012", "VALUE_TYPE": "WORK"},
            ]
        },
    )
    phones = (await hook(http, emu, "crm.contact.get", id=1))["result"]["PHONE"]
    assert [p["VALUE"] for p in phones] == ["+79000000011", "+79000000012"]
    await hook(
        http, emu, "crm.contact.update", id=1, fields={"PHONE": [{"ID": phone_id, "DELETE": "Y"}]}
    )
    phones = (await hook(http, emu, "crm.contact.get", id=1))["result"]["PHONE"]
    assert [p["VALUE"] for p in phones] == ["+79000000012"]

    # §2.4: the prefix is added, values go through update.
    created = await hook(
        http,
        emu,
        "crm.contact.userfield.add",
        fields={"FIELD_NAME": "LOYALTY_LEVEL", "USER_TYPE_ID": "string"},
    )
    assert isinstance(created["result"], int)
    listed = await hook(
        http, emu, "crm.contact.userfield.list", filter={"FIELD_NAME": "UF_CRM_LOYALTY_LEVEL"}
    )
    assert [f["FIELD_NAME"] for f in listed["result"]] == ["UF_CRM_LOYALTY_LEVEL"]
    status, body = await call(
        http,
        emu.webhook_url + "crm.contact.userfield.add",
        json={"fields": {"FIELD_NAME": "LOYALTY_LEVEL", "USER_TYPE_ID": "string"}},
    )
    assert (status, body["error"]) == (400, "ERROR_CORE")
    await hook(
        http,
        emu,
        "crm.contact.update",
        id=2,
        fields={"UF_CRM_BONUS_BALANCE": 275.5, "UF_CRM_LOYALTY_LEVEL": "gold"},
    )
    got = (await hook(http, emu, "crm.contact.get", id=2))["result"]
    assert (got["UF_CRM_BONUS_BALANCE"], got["UF_CRM_LOYALTY_LEVEL"]) == ("275.5", "gold")
    await hook(
        http, emu, "crm.item.update", entityTypeId=3, id=2, fields={"ufCrmBonusBalance": 300}
    )
    item = (await hook(http, emu, "crm.item.get", entityTypeId=3, id=2))["result"]["item"]
    assert (item["ufCrmBonusBalance"], item["ufCrmLoyaltyLevel"]) == (300, "gold")
    # §2.1: `*` has no user fields and no multifields; they must be asked for.
    plain = (await hook(http, emu, "crm.contact.list", filter={"ID": 2}))["result"][0]
    assert "UF_CRM_BONUS_BALANCE" not in plain and "PHONE" not in plain
    rich = (
        await hook(
            http,
            emu,
            "crm.contact.list",
            filter={"PHONE": "+79000000002"},
            select=["ID", "UF_*", "PHONE"],
        )
    )["result"]
    assert (
        rich[0]["UF_CRM_BONUS_BALANCE"] == "300" and rich[0]["PHONE"][0]["VALUE"] == "+79000000002"
    )
    nothing = await hook(http, emu, "crm.contact.list", filter={"PHONE": "89000000002"})
    assert nothing["result"] == []  # list filters match the stored value exactly


async def test_find_by_comm_normalises_phones(
    emu: BitrixEmulator, http: aiohttp.ClientSession
) -> None:
    await hook(
        http, emu, "crm.contact.update", id=3, fields={"EMAIL": [{"VALUE": "Olga@Example.ru"}]}
    )

    async def find(**params: Any) -> Any:
        return (await hook(http, emu, "crm.duplicate.findbycomm", **params))["result"]

    assert await find(type="PHONE", values=["8 (900) 000-00-01"]) == {"CONTACT": [1]}
    assert await find(
        type="PHONE", values=["9000000002", "+7 900 000 00 03 доб. 12"], entity_type="CONTACT"
    ) == {"CONTACT": [2, 3]}
    assert await find(type="EMAIL", values=["olga@example.RU"]) == {"CONTACT": [3]}
    assert await find(type="PHONE", values=["+79990000000"]) == []
    assert await find(type="PHONE", values=["+79000000001"], entity_type="LEAD") == []
    status, body = await call(
        http, emu.webhook_url + "crm.duplicate.findbycomm", json={"values": ["1"]}
    )
    assert (status, body["error"]) == (400, "Communication type is not defined")
    status, body = await call(
        http,
        emu.webhook_url + "crm.duplicate.findbycomm",
        json={"type": "PHONE", "values": [str(n) for n in range(21)]},
    )
    assert status == 400


async def test_sale_order_subset(emu: BitrixEmulator, http: aiohttp.ClientSession) -> None:
    fields = {
        "lid": "s1",
        "personTypeId": 1,
        "currency": "RUB",
        "price": 1500,
        "xmlId": "1c-doc-42",
        "id1c": "42",
    }
    order = (await hook(http, emu, "sale.order.add", fields=fields))["result"]["order"]
    assert (order["id"], order["accountNumber"], order["xmlId"], order["price"]) == (
        1,
        "1",
        "1c-doc-42",
        1500,
    )
    changed = await hook(
        http, emu, "sale.order.update", id=1, fields={"statusId": "F", "canceled": "N"}
    )
    assert changed["result"]["order"]["statusId"] == "F"
    listed = await hook(
        http, emu, "sale.order.list", filter={"xmlId": "1c-doc-42"}, select=["id", "xmlId"]
    )
    assert (
        listed["result"] == {"orders": [{"id": 1, "xmlId": "1c-doc-42"}]} and listed["total"] == 1
    )
    got = await hook(http, emu, "sale.order.get", id=1)
    assert got["result"]["order"]["id1c"] == "42"
    status, body = await call(http, emu.webhook_url + "sale.order.get", json={"id": 5})
    assert (status, body["error"]) == (400, 200540400001)  # §1.3: numeric sale codes
    status, body = await call(
        http, emu.webhook_url + "sale.order.add", json={"fields": {"lid": "s1"}}
    )
    assert (status, body["error"]) == (400, 100)


async def test_outbound_events_reach_handlers_once(
    emu: BitrixEmulator, http: aiohttp.ClientSession, handler: Handler
) -> None:
    token = emu.install_app()["access_token"]
    for event in ("ONCRMDEALADD", "ONCRMDEALUPDATE", "ONSALEORDERSAVED"):
        status, body = await app_call(
            http, emu, token, "event.bind", event=event, handler=handler.url
        )
        assert status == 200 and body["result"] is True, body
    status, body = await app_call(
        http, emu, token, "event.bind", event="ONCRMDEALADD", handler=handler.url
    )
    assert (status, body["error"]) == (400, "ERROR_CORE")
    status, body = await app_call(
        http, emu, token, "event.bind", event="ONNOTHING", handler=handler.url
    )
    assert (status, body["error"]) == (400, "ERROR_EVENT_NOT_FOUND")
    bound = (await app_call(http, emu, token, "event.get"))[1]["result"]
    assert {b["event"] for b in bound} == {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONSALEORDERSAVED"}

    await hook(http, emu, "crm.deal.add", fields={"TITLE": "Evented"})
    await hook(
        http,
        emu,
        "sale.order.add",
        fields={"lid": "s1", "personTypeId": 1, "currency": "RUB", "xmlId": "x-1"},
    )
    await emu.settle()
    (deal,) = handler.forms("ONCRMDEALADD")
    assert set(handler.content_types) == {"application/x-www-form-urlencoded"}
    assert deal["data[FIELDS][ID]"] == "1" and deal["ts"] == str(int(emu.clock()))
    assert deal["auth[application_token]"] == DEFAULT_APPLICATION_TOKEN
    assert deal["auth[domain]"] == emu.url.removeprefix("http://")
    assert len(deal["auth[member_id]"]) == 32 and deal["auth[access_token]"]
    assert deal["event_handler_id"] == "1"
    (order,) = handler.forms("ONSALEORDERSAVED")
    assert (order["data[FIELDS][XML_ID]"], order["data[FIELDS][ACTION]"]) == ("x-1", "save")
    # The token a handler gets is a live one of the application.
    status, _ = await app_call(
        http, emu, deal["auth[access_token]"], "crm.item.get", entityTypeId=2, id=1
    )
    assert status == 200

    # §3.4: no retries — a failing handler is called once and the event is lost.
    handler.status = 500
    await hook(http, emu, "crm.deal.update", id=1, fields={"TITLE": "Again"})
    await emu.settle()
    assert len(handler.forms("ONCRMDEALUPDATE")) == 1
    assert emu.events.sent[-1]["status"] == 500
    count = (
        await app_call(
            http, emu, token, "event.unbind", event="ONCRMDEALUPDATE", handler=handler.url
        )
    )[1]
    assert count["result"] == {"count": 1}


async def test_outgoing_webhook_gets_every_event_without_oauth_tokens(
    http: aiohttp.ClientSession, handler: Handler
) -> None:
    async with BitrixEmulator(
        event_handler=handler.url, application_token="hook-token", burst=0
    ) as emu:
        await hook(http, emu, "crm.item.add", entityTypeId=3, fields={"name": "Anna"})
        emu.admin.edit("deal", {"TITLE": "From the UI"})
        await emu.settle()
        # Deliveries run side by side, so they may arrive in any order.
        (contact,), (deal,) = handler.forms("ONCRMCONTACTADD"), handler.forms("ONCRMDEALADD")
        assert contact["auth[application_token]"] == "hook-token"
        assert not any(key.startswith("auth[access_token]") for key in contact)
        # Deletes and shop orders are events too (§2.2, §2.5).
        await hook(http, emu, "crm.item.delete", entityTypeId=3, id=contact["data[FIELDS][ID]"])
        await hook(http, emu, "crm.deal.delete", id=deal["data[FIELDS][ID]"])
        order = {"lid": "s1", "personTypeId": 1, "currency": "RUB", "xmlId": "o-9"}
        await hook(http, emu, "sale.order.add", fields=order)
        await hook(http, emu, "sale.order.update", id=1, fields={"statusId": "P"})
        await hook(http, emu, "sale.order.delete", id=1)
        await emu.settle()
        assert sorted(f["event"] for f in handler.forms()[2:]) == sorted(
            ["ONCRMCONTACTDELETE", "ONCRMDEALDELETE", "ONSALEBEFOREORDERDELETE", "ONORDERDELETED"]
            + ["ONSALEORDERSAVED", "ONORDERENTITYSAVED"] * 2
        )
        assert handler.forms("ONSALEBEFOREORDERDELETE")[0]["data[FIELDS][ACTION]"] == "delete"

    dead = BitrixEmulator(event_handler="http://127.0.0.1:9/closed", burst=0)
    async with dead:
        await hook(http, dead, "crm.deal.add", fields={"TITLE": "Lost"})
        await dead.settle()
        assert dead.events.sent[0]["error"] and dead.events.sent[0]["status"] is None


async def test_offline_queue_get_without_clear_then_clear(
    emu: BitrixEmulator, http: aiohttp.ClientSession, clock: FakeClock
) -> None:
    token = emu.install_app()["access_token"]
    for event in ("ONCRMDEALUPDATE", "ONCRMCONTACTUPDATE"):
        status, body = await app_call(
            http, emu, token, "event.bind", event=event, event_type="offline"
        )
        assert status == 200, body
    deal = emu.admin.seed("deal", {"TITLE": "Queued"})
    for title in ("one", "two", "three"):  # §3.5: latest state per object → one record
        clock.advance(1)
        await hook(http, emu, "crm.deal.update", id=deal, fields={"TITLE": title})
    await hook(http, emu, "crm.contact.update", id=1, fields={"NAME": "Ivan"})

    status, body = await app_call(http, emu, token, "event.offline.get", clear=0, limit=10)
    reserved = body["result"]
    assert reserved["process_id"] and [e["EVENT_NAME"] for e in reserved["events"]] == [
        "ONCRMDEALUPDATE",
        "ONCRMCONTACTUPDATE",
    ]
    first = reserved["events"][0]
    assert first["EVENT_DATA"] == {"FIELDS": {"ID": deal}} and len(first["MESSAGE_ID"]) == 32
    assert first["TIMESTAMP_X"].endswith("+03:00")
    again = (await app_call(http, emu, token, "event.offline.get", clear=0))[1]["result"]
    assert again["events"] == []  # reserved records are hidden from other readers
    same = (
        await app_call(
            http, emu, token, "event.offline.get", clear=0, process_id=reserved["process_id"]
        )
    )[1]
    assert [e["ID"] for e in same["result"]["events"]] == [e["ID"] for e in reserved["events"]]
    listed = (await app_call(http, emu, token, "event.offline.list"))[1]
    assert {e["PROCESS_ID"] for e in listed["result"]} == {reserved["process_id"]} and listed[
        "total"
    ] == 2

    await hook(
        http, emu, "crm.deal.update", id=deal, fields={"TITLE": "four"}
    )  # a new change waits
    status, body = await app_call(
        http,
        emu,
        token,
        "event.offline.clear",
        process_id=reserved["process_id"],
        message_id=[first["MESSAGE_ID"]],
    )
    assert body["result"] is True
    left = (await app_call(http, emu, token, "event.offline.list"))[1]["result"]
    assert [(e["EVENT_NAME"], e["PROCESS_ID"]) for e in left] == [
        ("ONCRMCONTACTUPDATE", reserved["process_id"]),
        ("ONCRMDEALUPDATE", ""),
    ]
    await app_call(http, emu, token, "event.offline.clear", process_id=reserved["process_id"])
    cleared = (await app_call(http, emu, token, "event.offline.get"))[1]["result"]  # clear=1
    assert cleared["process_id"] is None and [e["EVENT_NAME"] for e in cleared["events"]] == [
        "ONCRMDEALUPDATE"
    ]
    assert (await app_call(http, emu, token, "event.offline.list"))[1]["result"] == []

    status, body = await app_call(http, emu, token, "event.offline.get", limit=0)
    assert (status, body["error"]) == (400, "ERROR_ARGUMENT")
    status, body = await call(http, emu.webhook_url + "event.offline.get")
    assert (status, body["error"]) == (403, "WRONG_AUTH_TYPE")


async def test_auth_connector_keeps_own_writes_out_of_the_offline_queue(
    emu: BitrixEmulator, http: aiohttp.ClientSession, handler: Handler
) -> None:
    token = emu.install_app()["access_token"]
    await app_call(
        http,
        emu,
        token,
        "event.bind",
        event="ONCRMDEALUPDATE",
        event_type="offline",
        auth_connector="bridge",
    )
    await app_call(http, emu, token, "event.bind", event="ONCRMDEALUPDATE", handler=handler.url)
    deal = emu.admin.seed("deal", {"TITLE": "Shared"})
    # The bridge's own write, marked with its connector: not queued for its binding (§3.5) …
    status, _ = await app_call(
        http,
        emu,
        token,
        "crm.deal.update",
        id=deal,
        fields={"TITLE": "by bridge"},
        auth_connector="bridge",
    )
    assert status == 200
    read = (await app_call(http, emu, token, "event.offline.get", auth_connector="bridge"))[1][
        "result"
    ]
    assert read["events"] == []
    # … but online handlers still hear it: online events have no echo suppression (§3.4).
    await emu.settle()
    assert len(handler.forms("ONCRMDEALUPDATE")) == 1
    # A manager's edit and another integration's write are queued for the connector.
    emu.admin.edit("deal", {"TITLE": "by manager"}, deal)
    await hook(http, emu, "crm.deal.update", id=deal, fields={"TITLE": "by webhook"})
    queued = (
        await app_call(http, emu, token, "event.offline.get", auth_connector="bridge", clear=0)
    )[1]["result"]
    assert [e["EVENT_DATA"] for e in queued["events"]] == [{"FIELDS": {"ID": deal}}]
    unfiltered = (await app_call(http, emu, token, "event.offline.list"))[1]["result"]
    assert unfiltered == []  # without the connector id the bridge's records are not seen
    gets = (await app_call(http, emu, token, "event.get"))[1]["result"]
    assert {"event": "ONCRMDEALUPDATE", "connector_id": "bridge", "offline": 1} in gets


async def test_offline_notice_is_throttled(
    emu: BitrixEmulator, http: aiohttp.ClientSession, handler: Handler, clock: FakeClock
) -> None:
    token = emu.install_app()["access_token"]
    await app_call(http, emu, token, "event.bind", event="ONCRMCONTACTUPDATE", event_type="offline")
    status, body = await app_call(
        http,
        emu,
        token,
        "event.bind",
        event="ONOFFLINEEVENT",
        handler=handler.url,
        options={"minTimeout": 5},
    )
    assert status == 200, body
    for _ in range(3):
        await hook(http, emu, "crm.contact.update", id=1, fields={"NAME": "x"})
    clock.advance(5)
    await hook(http, emu, "crm.contact.update", id=1, fields={"NAME": "y"})
    await emu.settle()
    notices = handler.forms("ONOFFLINEEVENT")
    assert len(notices) == 2 and "auth[refresh_token]" in notices[0]


async def test_injected_faults(emu: BitrixEmulator, http: aiohttp.ClientSession) -> None:
    url = emu.webhook_url + "server.time"

    async def status(timeout: float = 5) -> int:
        async with http.post(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            await response.read()
            return response.status

    emu.faults.set(http_status=502, count=1)
    async with http.post(url) as response:
        assert (response.status, response.content_type) == (502, "text/html")
    assert await status() == 200
    emu.faults.set(outage=True)
    with pytest.raises(aiohttp.ClientConnectionError):
        await status()
    emu.faults.set(hang=5, count=1)
    with pytest.raises(asyncio.TimeoutError):
        await status(timeout=0.3)
    emu.faults.clear()

    admin = f"{emu.url}/__emulator__/faults"
    faults = {"error": "OPERATION_TIME_LIMIT", "methods": ["crm.item.list"]}
    status_code, body = await call(http, admin, json=faults)
    assert status_code == 200 and body["methods"] == ["crm.item.list"]
    code, body = await call(http, emu.webhook_url + "crm.item.list", json={"entityTypeId": 3})
    assert (code, body["error"]) == (429, "OPERATION_TIME_LIMIT")
    assert (await call(http, emu.webhook_url + "crm.contact.list"))[0] == 200
    batch = await hook(
        http, emu, "batch", cmd={"a": "crm.item.list?entityTypeId=3", "b": "crm.contact.list"}
    )
    assert (
        batch["result"]["result_error"]["a"]["error"] == "OPERATION_TIME_LIMIT"
        and "b" in batch["result"]["result"]
    )
    await call(http, admin, json={"latency": 0.2, "count": 1})
    started = asyncio.get_running_loop().time()
    assert await status() == 200
    assert asyncio.get_running_loop().time() - started >= 0.2
    code, body = await call(http, admin, json={"http_status": 42})
    assert code == 400
    code, body = await call(http, admin, json={"error": "NOPE"})
    assert code == 400
    code, body = await call(http, admin, "GET")
    assert code == 200 and body["error"] is None


async def test_state_shows_everything(emu: BitrixEmulator, http: aiohttp.ClientSession) -> None:
    await hook(http, emu, "crm.deal.add", fields={"TITLE": "Seen"})
    await hook(http, emu, "batch", cmd={"a": "crm.deal.get?id=1", "b": "crm.deal.get?id=1"})
    code, edited = await call(
        http,
        f"{emu.url}/__emulator__/edit",
        json={"entity": "order", "fields": {"lid": "s1", "personTypeId": 1, "currency": "RUB"}},
    )
    assert code == 200 and edited["result"] == 1
    code, state = await call(http, f"{emu.url}/__emulator__/state", "GET")
    assert code == 200
    assert {
        "contacts",
        "deals",
        "orders",
        "userfields",
        "bindings",
        "offline",
        "sent",
        "stats",
        "oauth",
    } <= set(state)
    assert state["deals"]["1"]["TITLE"] == "Seen" and state["orders"]["1"]["lid"] == "s1"
    assert state["stats"]["by_method"] == {"crm.deal.add": 1, "batch": 1}
    assert state["stats"]["calls"]["crm.deal.get"] == 2
    assert state["userfields"]["contact"][0]["FIELD_NAME"] == "UF_CRM_BONUS_BALANCE"
    code, _ = await call(http, f"{emu.url}/__emulator__/edit", json={"entity": "lead"})
    assert code == 400
