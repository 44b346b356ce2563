"""Issue 12, point 8: RetailCRM merges customers and orders (``combinedTo``).

The survivor's change is delivered, the id map learns that the absorbed id now means the
survivor, and a read of a merged-away customer (404 with ``combinedTo``) follows it."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import retailcrm
import yaml
from aiohttp import web

from bridge.connector import DeliveryJob
from bridge.errors import PermanentError
from bridge.http.app import build_app
from bridge.runtime import Runtime, build_runtime
from bridge.settings_loader import read_settings
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.history import fold_history
from tests.conftest import Target
from tests.support.configs import HOOK_TOKEN
from tests.support.waiting import eventually

BRIDGE_KEY = "sandbox-bridge-key-0001"
MANAGER_KEY = "sandbox-manager-key-0001"


@dataclass
class Rig:
    crm: RetailcrmEmulator
    runtime: Runtime
    url: str
    target: Target

    async def manager(self, call: Callable[[Any], Any]) -> dict[str, Any]:
        client = retailcrm.v5(self.crm.url, MANAGER_KEY)
        answer = await asyncio.to_thread(lambda: call(client).get_response())
        assert answer["success"], answer
        return dict(answer)

    async def poll(self) -> None:
        poller = self.runtime.poller
        assert poller is not None
        source = self.runtime.connectors.sources()["crm"]
        for feed in source.feeds:
            while await poller.poll_once("crm", source, feed):
                pass

    def delivered(self) -> set[str]:
        """Entity ids the recording target applied."""
        return set(self.target.state.applied.values())


@pytest.fixture
async def rig(tmp_path: Path, target: Target) -> AsyncIterator[Rig]:
    async with RetailcrmEmulator() as crm:
        config = {
            "store": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
            "systems": {
                "shop": {
                    "type": "recorder",
                    "options": {"url": "http://127.0.0.1:9"},
                    "webhook": {"auth": "bearer", "token": HOOK_TOKEN},
                },
                "out": {"type": "recorder", "options": {"url": target.url}},
                "crm": {
                    "type": "retailcrm",
                    "delivery": {"timeout_seconds": 5, "retry": {"base_seconds": 0.05}},
                    "options": {"url": crm.url, "api_key": BRIDGE_KEY, "poll_interval": 60},
                },
            },
            "mirror": {
                "routes": [
                    {"source": "crm", "entity": "customer", "targets": ["out"]},
                    {"source": "crm", "entity": "order", "targets": ["out"]},
                    {"source": "shop", "entity": "customer", "targets": ["crm"]},
                ]
            },
        }
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        runtime = build_runtime(read_settings(path, env={}))
        runner = web.AppRunner(build_app(runtime))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            yield Rig(crm, runtime, f"http://127.0.0.1:{runner.addresses[0][1]}", target)
        finally:
            await runner.cleanup()


async def customer_id(rig: Rig, external_id: str) -> int:
    found = await rig.manager(lambda c: c.customer(external_id, "externalId", "shop"))
    return int(found["customer"]["id"])


async def test_a_customer_merge_delivers_the_survivor_and_maps_the_absorbed_id(rig: Rig) -> None:
    survivor, absorbed = await customer_id(rig, "c-1"), await customer_id(rig, "c-3")
    await rig.manager(lambda c: c.customers_combine([{"id": absorbed}], {"id": survivor}))
    await rig.poll()

    async def survivor_delivered() -> bool:
        return str(survivor) in rig.delivered()

    await eventually(survivor_delivered, 10)
    store = rig.runtime.store
    assert await store.resolve_alias("customer", "crm", str(absorbed)) == str(survivor)
    assert await store.resolve_alias("customer", "crm", str(survivor)) is None
    await asyncio.sleep(0.5)  # the absorbed one's delivery went to the survivor too
    assert rig.delivered() == {str(survivor)}


async def test_a_write_to_a_merged_away_customer_lands_on_the_survivor(rig: Rig) -> None:
    async def push(first_name: str, n: int) -> None:
        body = {
            "event_id": f"shop-7-v{n}",
            "entity": "customer",
            "id": "7",
            "data": {"document": {"firstName": first_name}},
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{rig.url}/hooks/shop",
                data=io.BytesIO(json.dumps(body).encode()),
                headers={"Authorization": f"Bearer {HOOK_TOKEN}"},
            ) as resp,
        ):
            assert resp.status == 202, await resp.text()

    await push("Ольга", 1)

    async def written() -> str | None:
        return await rig.runtime.store.lookup_id("customer", "shop", "7", "crm")

    own = await eventually(written, 10)
    survivor = await customer_id(rig, "c-1")
    await rig.manager(lambda c: c.customers_combine([{"id": int(str(own))}], {"id": survivor}))
    await rig.poll()
    await push("Ольга-Мария", 2)

    async def landed() -> bool:
        found = await rig.manager(lambda c: c.customer(str(survivor), "id"))
        return bool(found["customer"]["firstName"] == "Ольга-Мария")

    await eventually(landed, 10)


async def test_a_read_of_a_merged_away_customer_follows_combined_to(rig: Rig) -> None:
    survivor, absorbed = await customer_id(rig, "c-1"), await customer_id(rig, "c-2")
    await rig.manager(lambda c: c.customers_combine([{"id": absorbed}], {"id": survivor}))
    connector = rig.runtime.connectors.by_system["crm"]
    state = await connector.read_entity("customer", str(absorbed))  # type: ignore[attr-defined]
    assert state is not None and state["id"] == survivor and state["externalId"] == "c-1"


async def test_an_order_merge_delivers_the_survivor_and_maps_the_absorbed_id(rig: Rig) -> None:
    found = await rig.manager(lambda c: c.orders({"externalIds": ["o-1", "o-2"]}, 20, 1))
    ids = {o["externalId"]: o["id"] for o in found["orders"]}
    await rig.manager(lambda c: c.orders_combine({"id": ids["o-2"]}, {"id": ids["o-1"]}, "summ"))
    await rig.poll()

    async def survivor_delivered() -> bool:
        return str(ids["o-1"]) in rig.delivered()

    await eventually(survivor_delivered, 10)
    alias = await rig.runtime.store.resolve_alias("order", "crm", str(ids["o-2"]))
    assert alias == str(ids["o-1"])
    await asyncio.sleep(0.5)
    assert str(ids["o-2"]) not in rig.delivered()


def test_a_deleted_record_with_combined_to_folds_into_two_events() -> None:
    # The shape of retailcrm-api.md §10.3 (a delete) with §10.2's combinedTo.
    record = {
        "id": 2735,
        "createdAt": "2018-10-16 18:07:18",
        "deleted": True,
        "source": "user",
        "user": {"id": 23},
        "field": "id",
        "oldValue": 974,
        "newValue": None,
        "customer": {"type": "customer", "id": 974, "externalId": "82", "site": "presta"},
        "combinedTo": {"type": "customer", "id": 975, "externalId": "83", "site": "presta"},
    }
    absorbed, survivor = fold_history("customers", [record])
    assert (absorbed.entity_id, absorbed.action) == ("974", "merged")
    assert absorbed.payload["merged_into"] == "975"
    assert (survivor.entity_id, survivor.action) == ("975", "changed")
    assert survivor.payload["external_id"] == "83" and survivor.payload["fields"] == ["combined"]
    assert absorbed.source_key != survivor.source_key
    plain_delete = {k: v for k, v in record.items() if k != "combinedTo"}
    (deleted,) = fold_history("customers", [plain_delete])
    assert deleted.action == "deleted"


async def test_a_write_back_to_a_merged_away_customer_follows_combined_to(rig: Rig) -> None:
    survivor, absorbed = await customer_id(rig, "c-1"), await customer_id(rig, "c-3")
    await rig.manager(lambda c: c.customers_combine([{"id": absorbed}], {"id": survivor}))
    connector = rig.runtime.connectors.by_system["crm"]
    job = DeliveryJob(
        delivery_id="dlv_1",
        operation_key="op-1",
        target="crm",
        source="onec",
        entity="customer",
        entity_id=f"crm-{absorbed}",  # 1C's copy of the customer the bridge wrote there
        attempt=1,
        events=(),
        document={"firstName": "Ольга-Ивановна"},
        target_ref=str(absorbed),
    )
    assert await connector.deliver(job) == str(survivor)  # type: ignore[attr-defined]
    found = await rig.manager(lambda c: c.customer(str(survivor), "id"))
    assert found["customer"]["firstName"] == "Ольга-Ивановна"


def test_a_history_record_without_a_numeric_id_is_a_named_error() -> None:
    with pytest.raises(PermanentError, match="without a numeric id"):
        fold_history("customers", [{"id": "abc", "customer": {"id": 1}}])
