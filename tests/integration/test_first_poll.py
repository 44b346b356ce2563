"""Issue 12, point 2: a change made just after the bridge reports ready is never taken for
old history, on a first start against an account that already has history, and when
RetailCRM does not answer at start-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import retailcrm
import yaml
from aiohttp import web

from bridge.errors import BridgeError
from bridge.http.app import build_app
from bridge.mirror.poller import Poller
from bridge.runtime import Runtime, build_runtime
from bridge.settings_loader import read_settings
from bridge.store.records import EventFilter
from connectors.retailcrm.emulator import RetailcrmEmulator
from tests.conftest import Target
from tests.support.waiting import eventually

BRIDGE_KEY = "sandbox-bridge-key-0001"
MANAGER_KEY = "sandbox-manager-key-0001"
TRIES = 5


def manager(crm: RetailcrmEmulator) -> Any:
    """The official client, as a RetailCRM manager."""
    return retailcrm.v5(crm.url, MANAGER_KEY)


async def upload_history(crm: RetailcrmEmulator, orders: int) -> None:
    """``orders`` orders made before the bridge came (one history record each), through
    the official client's upload, 50 at a time."""
    client = manager(crm)
    for start in range(0, orders, 50):
        batch = [
            {"externalId": f"old-{n}", "firstName": "Старый", "status": "new"}
            for n in range(start, min(start + 50, orders))
        ]
        answer = await asyncio.to_thread(client.orders_upload, batch, "shop")
        assert answer.get_response()["success"], answer.get_response()


def write_config(tmp_path: Path, crm: RetailcrmEmulator, target: Target) -> Path:
    config = {
        "store": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
        "systems": {
            "out": {"type": "recorder", "options": {"url": target.url}},
            "crm": {
                "type": "retailcrm",
                "delivery": {"timeout_seconds": 2},
                "options": {"url": crm.url, "api_key": BRIDGE_KEY, "poll_interval": 0.2},
            },
        },
        "mirror": {"routes": [{"source": "crm", "entity": "order", "targets": ["out"]}]},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Runtime]]]:
    """Serve a bridge the way ``bridge serve`` does (the runtime starts before the server
    answers) and wait for ``/health``; returns the runtime."""
    cleanups: list[Callable[[], Awaitable[None]]] = []

    async def start(path: Path) -> Runtime:
        runtime = build_runtime(read_settings(path, env={}))
        runner = web.AppRunner(build_app(runtime))
        await runner.setup()
        cleanups.append(runner.cleanup)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        async with aiohttp.ClientSession() as http, http.get(f"{url}/health") as resp:
            assert resp.status == 200
        return runtime

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()


async def crm_orders(runtime: Runtime) -> set[str]:
    events = await runtime.store.list_events(EventFilter(source="crm", limit=1000))
    return {e.entity_id for e in events if e.entity == "order" and e.entity_id is not None}


@pytest.mark.parametrize("attempt", range(TRIES))
@pytest.mark.parametrize("history", [0, 250])  # the sandbox's empty history; three pages
async def test_a_change_in_the_first_second_after_ready_is_delivered(
    history: int,
    attempt: int,
    tmp_path: Path,
    target: Target,
    serve: Callable[..., Awaitable[Runtime]],
) -> None:
    async with RetailcrmEmulator() as crm:
        await upload_history(crm, history)
        runtime = await serve(write_config(tmp_path, crm, target))
        # Ready: a manager makes an order at once (well within the first second).
        made = await asyncio.to_thread(
            lambda: manager(crm).order_create({"externalId": f"new-{attempt}"}, "shop")
        )
        own_id = str(made.get_response()["id"])

        async def delivered() -> bool:
            return own_id in target.state.applied.values()

        await eventually(delivered, 10)
        # ...and none of the older orders was taken for news.
        assert await crm_orders(runtime) == {own_id}


async def test_a_start_while_retailcrm_is_down_delivers_what_follows(
    tmp_path: Path, target: Target
) -> None:
    # The account's clock runs on Moscow time (§1.3: no offset on the wire).
    moscow = timedelta(hours=3)
    shift = [timedelta(hours=-2)]  # the existing history was made two hours ago

    def account_clock() -> datetime:
        return datetime.now(UTC).replace(tzinfo=None) + moscow + shift[0]

    async with RetailcrmEmulator(clock=account_clock) as crm:
        await upload_history(crm, 120)
        for _ in range(3):  # bonus operations of two hours ago too
            await asyncio.to_thread(
                lambda: manager(crm).loyalty_account_bonus_credit(11, 10, None, None, "old")
            )
        shift[0] = timedelta(0)
        runtime = build_runtime(read_settings(write_config(tmp_path, crm, target), env={}))
        await runtime.store.open(serving=True)
        try:
            source = runtime.connectors.sources()["crm"]
            poller = Poller(runtime.store, {"crm": source}, runtime.intake)
            await crm_fault(crm, {"outage": True})
            started = asyncio.get_running_loop().time()
            await poller.fix_start_positions(budget=1.0)
            assert asyncio.get_running_loop().time() - started < 3  # start is not held up
            for feed in source.feeds:
                cursor = await runtime.store.get_cursor("crm", feed)
                assert cursor is not None and cursor.value.startswith("at:"), feed
            # Ready. RetailCRM is still down for a moment, then a manager makes an order.
            with pytest.raises(BridgeError):  # it is still down
                await poller.poll_once("crm", source, "orders")
            await crm_fault(crm, {})
            made = await asyncio.to_thread(
                lambda: manager(crm).order_create({"externalId": "after-outage"}, "shop")
            )
            own_id = str(made.get_response()["id"])
            await asyncio.to_thread(
                lambda: manager(crm).loyalty_account_bonus_credit(11, 25, None, None, "new")
            )
            for feed in source.feeds:
                for _ in range(5):
                    if not await poller.poll_once("crm", source, feed):
                        break
            assert await crm_orders(runtime) == {own_id}  # the old 120 stay old
            events = await runtime.store.list_events(EventFilter(source="crm", limit=1000))
            credits = [e for e in events if e.entity == "loyalty_account"]
            assert [e.action for e in credits] == ["credit_manual"]  # only the new one
            detail = await runtime.store.get_event(credits[0].id)
            assert detail.event.payload["amount"] == "25"
            cursor = await runtime.store.get_cursor("crm", "orders")
            assert cursor is not None and cursor.value.isdigit()
        finally:
            await runtime.store.close()


async def crm_fault(crm: RetailcrmEmulator, fault: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as http:
        body = json.dumps(fault)
        async with http.post(f"{crm.url}/__emulator__/faults", data=body) as resp:
            assert resp.status == 200, await resp.text()
