"""The RetailCRM connector inside a running bridge, against the emulator over sockets."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from bridge.http.app import build_app
from bridge.runtime import Runtime, build_runtime
from bridge.settings_loader import read_settings
from bridge.store.records import EventFilter
from connectors.retailcrm.emulator import RetailcrmEmulator
from tests.conftest import Target
from tests.support.configs import HOOK_TOKEN

BRIDGE_KEY = "sandbox-bridge-key-0001"
MANAGER_KEY = "sandbox-manager-key-0001"
TRIGGER_TOKEN = "crm-trigger-token-0001"


@dataclass
class Rig:
    """An emulator, a bridge writing to and polling it, and an HTTP session."""

    crm: RetailcrmEmulator
    runtime: Runtime
    url: str
    http: aiohttp.ClientSession

    async def post_order(self, n: int, **document: Any) -> str:
        body = {
            "event_id": f"web-{n}",
            "entity": "order",
            "id": str(n),
            "data": {"document": {"externalId": f"web-{n}", "firstName": "Анна", **document}},
        }
        async with self.http.post(
            f"{self.url}/hooks/shop",
            data=io.BytesIO(json.dumps(body).encode()),
            headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
        ) as resp:
            assert resp.status == 202, await resp.text()
            return str((await resp.json())["event_id"])

    async def crm_events(self) -> list[Any]:
        return await self.runtime.store.list_events(EventFilter(source="crm", limit=1000))


async def wait_until(check: Callable[[], Awaitable[bool]], seconds: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


@pytest.fixture
async def rig_factory(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def make(
        poll_interval: float = 0.1, concurrency: int = 2, out_url: str | None = None
    ) -> Rig:
        crm = RetailcrmEmulator()
        await crm.start()
        cleanups.append(crm.stop)
        config: dict[str, Any] = {
            "store": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
            "systems": {
                "shop": {
                    "type": "recorder",
                    "options": {"url": "http://127.0.0.1:9"},
                    "webhook": {"auth": "bearer", "token": HOOK_TOKEN},
                },
                "crm": {
                    "type": "retailcrm",
                    "webhook": {"auth": "query", "token": TRIGGER_TOKEN},
                    "delivery": {
                        "concurrency": concurrency,
                        "timeout_seconds": 5,
                        "retry": {"base_seconds": 0.05, "cap_seconds": 0.2},
                    },
                    "options": {
                        "url": crm.url,
                        "api_key": BRIDGE_KEY,
                        "poll_interval": poll_interval,
                    },
                },
            },
            "mirror": {"routes": [{"source": "shop", "entity": "order", "targets": ["crm"]}]},
        }
        if out_url is not None:  # RetailCRM orders also go out to a recording target
            config["systems"]["out"] = {"type": "recorder", "options": {"url": out_url}}
            config["mirror"]["routes"].append(
                {"source": "crm", "entity": "order", "targets": ["out"]}
            )
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        runtime = build_runtime(read_settings(path, env={}))
        runner = web.AppRunner(build_app(runtime))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        cleanups.append(runner.cleanup)
        http = aiohttp.ClientSession()
        cleanups.append(http.close)
        rig = Rig(crm, runtime, f"http://127.0.0.1:{runner.addresses[0][1]}", http)

        async def walked() -> bool:  # the first polls walk past existing history
            cursors = await runtime.store.list_cursors()
            return len(cursors) == 3 and not any(c.value.startswith("skip:") for c in cursors)

        await wait_until(walked)
        return rig

    yield make
    for cleanup in reversed(cleanups):
        await cleanup()


async def crm_call(rig: Rig, method: str, path: str, key: str, **form: Any) -> Any:
    data = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in form.items()}
    async with rig.http.request(
        method, f"{rig.crm.url}/api/v5/{path}", data=data, headers={"X-API-KEY": key}
    ) as resp:
        return await resp.json(content_type=None)


async def test_own_writes_never_come_back_and_another_keys_changes_do(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory()
    event_id = await rig.post_order(1, status="new")

    async def delivered() -> bool:
        return (await rig.runtime.store.get_event(event_id)).event.status == "done"

    await wait_until(delivered)
    stored = await crm_call(rig, "GET", "orders/web-1?site=shop", MANAGER_KEY)
    assert stored["order"]["firstName"] == "Анна"
    await asyncio.sleep(0.6)  # several polls of the history that now holds our create
    assert await rig.crm_events() == []

    edited = await crm_call(
        rig, "POST", "orders/web-1/edit", MANAGER_KEY, site="shop", order={"status": "complete"}
    )
    assert edited["success"] is True

    async def came_back() -> bool:
        return len(await rig.crm_events()) == 1

    await wait_until(came_back)
    (event,) = await rig.crm_events()
    assert (event.entity, event.entity_id) == ("order", str(stored["order"]["id"]))
    detail = await rig.runtime.store.get_event(event.id)
    assert detail.event.payload["fields"] == ["status"]
    assert detail.event.payload["external_id"] == "web-1"


async def test_a_trigger_call_wakes_the_poller(rig_factory: Callable[..., Awaitable[Rig]]) -> None:
    rig = await rig_factory(poll_interval=60)
    fixed = {c.name: c.updated_at for c in await rig.runtime.store.list_cursors()}

    async def first_polls_done() -> bool:  # at start-up, they find nothing
        now = await rig.runtime.store.list_cursors()
        return all(c.updated_at > fixed[c.name] for c in now)

    await wait_until(first_polls_done)
    async with rig.http.post(
        f"{rig.crm.url}/__emulator__/user-edit",
        json={"entity": "customer", "id": "c-2", "changes": {"firstName": "Мария-Анна"}},
    ) as resp:
        assert resp.status == 200, await resp.text()
    await asyncio.sleep(0.3)
    assert await rig.crm_events() == []  # the next poll is a minute away
    async with rig.http.post(
        f"{rig.url}/hooks/crm?token={TRIGGER_TOKEN}", data={"entity": "customer", "id": "102"}
    ) as resp:
        assert resp.status == 202

    async def polled() -> bool:
        return any(e.entity == "customer" for e in await rig.crm_events())

    await wait_until(polled, seconds=5)
    kinds = sorted((e.entity, e.entity_id, e.reason) for e in await rig.crm_events())
    # Neither is routed here (no route takes RetailCRM customers); the trigger never is.
    assert kinds == [("customer", "102", "no route"), ("trigger", "customer/102", "no route")]


async def test_a_backlog_goes_in_uploads_within_the_rate_limit(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory(poll_interval=5)
    ids = [await rig.post_order(n) for n in range(200)]
    refused = await rig.post_order(
        999, items=[{"offer": {"externalId": "missing-1"}, "quantity": 1, "initialPrice": 10}]
    )

    async def settled() -> bool:
        statuses = {(await rig.runtime.store.get_event(i)).event.status for i in ids}
        dead = (await rig.runtime.store.get_event(refused)).event.status == "dead"
        return statuses == {"done"} and dead

    await wait_until(settled, seconds=60)
    assert rig.crm.stats["rateLimited"] == 0
    orders = await crm_call(rig, "GET", "orders?limit=100&filter[numbers][]=x", MANAGER_KEY)
    assert orders["success"] is True
    snapshot = rig.crm.state.snapshot()
    written = {o["externalId"] for o in snapshot["orders"]}
    assert {f"web-{n}" for n in range(200)} <= written
    assert "web-999" not in written
    # 200 orders took a handful of uploads, not 200 calls.
    assert rig.crm.requests_by_key["bridge"] < 60
    # The id map holds RetailCRM's id of each uploaded order (from `uploadedOrders`).
    own = {o["externalId"]: str(o["id"]) for o in snapshot["orders"]}
    for n in (0, 57, 199):
        mapped = await rig.runtime.store.lookup_id("order", "shop", str(n), "crm")
        assert mapped == own[f"web-{n}"]
    dead = await rig.runtime.store.get_event(refused)
    assert "missing-1" in (dead.deliveries[0].last_error or "")


async def test_bonus_operations_are_polled_as_loyalty_account_events(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory()
    credited = await crm_call(
        rig, "POST", "loyalty/account/11/bonus/credit", MANAGER_KEY, amount="25", comment="gift"
    )
    assert credited["success"] is True

    async def polled() -> bool:
        return any(e.entity == "loyalty_account" for e in await rig.crm_events())

    await wait_until(polled)
    (event,) = [e for e in await rig.crm_events() if e.entity == "loyalty_account"]
    assert (event.entity_id, event.action) == ("11", "credit_manual")
    detail = await rig.runtime.store.get_event(event.id)
    assert detail.event.payload["amount"] in ("25", "25.0", "25.00")


async def test_an_upload_refused_as_a_whole_is_retried_as_a_batch(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory(poll_interval=5, concurrency=1)
    before = rig.crm.requests_by_key.get("bridge", 0)
    rig.crm.faults.set(http_status=503, count=1)  # the first upload is refused whole
    ids = [await rig.post_order(n) for n in range(50)]

    async def done() -> bool:
        statuses = {(await rig.runtime.store.get_event(i)).event.status for i in ids}
        return statuses == {"done"}

    await wait_until(done, seconds=20)
    # Nothing was written by the refused upload, so the retry is one upload again, not
    # fifty edits and fifty creates.
    calls = rig.crm.requests_by_key.get("bridge", 0) - before
    assert calls < 12, calls


async def test_a_change_from_history_is_delivered_with_the_full_order(
    rig_factory: Callable[..., Awaitable[Rig]], target: Target
) -> None:
    rig = await rig_factory(out_url=target.url)
    async with rig.http.post(
        f"{rig.crm.url}/__emulator__/user-edit",
        json={"entity": "order", "id": "o-1", "changes": {"status": "complete"}},
    ) as resp:
        assert resp.status == 200, await resp.text()

    async def arrived() -> bool:
        return bool(target.state.state)

    await wait_until(arrived)
    (delivered,) = target.state.state.values()
    # History said only "status changed"; the target got the order as RetailCRM holds it.
    assert delivered["status"] == "complete"
    assert delivered["externalId"] == "o-1"
    assert delivered["items"]


async def test_an_order_written_before_is_edited_not_uploaded_again(
    rig_factory: Callable[..., Awaitable[Rig]],
) -> None:
    rig = await rig_factory(poll_interval=5)
    first = await rig.post_order(1, status="new")

    async def done(event_id: str) -> bool:
        return (await rig.runtime.store.get_event(event_id)).event.status == "done"

    await wait_until(lambda: done(first))
    body = {
        "event_id": "web-1-v2",
        "entity": "order",
        "id": "1",
        "data": {"document": {"externalId": "web-1", "status": "complete"}},
    }
    async with rig.http.post(
        f"{rig.url}/hooks/shop", json=body, headers={"Authorization": f"Bearer {HOOK_TOKEN}"}
    ) as resp:
        second = (await resp.json())["event_id"]
    await wait_until(lambda: done(second))
    detail = await rig.runtime.store.get_event(second)
    assert [(h.kind, h.outcome) for h in detail.history] == [("attempt", "done")]
    stored = await crm_call(rig, "GET", "orders/web-1?site=shop", MANAGER_KEY)
    assert stored["order"]["status"] == "complete"
