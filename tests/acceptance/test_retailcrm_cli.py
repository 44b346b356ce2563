"""RetailCRM through the real daemon: kill -9 while reading history pages."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import yaml

from connectors.retailcrm.emulator import RetailcrmEmulator
from tests.support.daemon import Daemon, cli_json, free_port, status_json

MANAGER_KEY = "sandbox-manager-key-0001"


async def upload_orders(crm: RetailcrmEmulator, first: int, count: int) -> None:
    """A manager uploads orders with another key: each is a history record to read."""
    async with aiohttp.ClientSession() as http:
        for start in range(first, first + count, 50):
            orders = [
                {"externalId": f"m-{n}", "firstName": "Пётр"}
                for n in range(start, min(start + 50, first + count))
            ]
            async with http.post(
                f"{crm.url}/api/v5/orders/upload",
                data={"orders": json.dumps(orders), "site": "shop"},
                headers={"X-API-KEY": MANAGER_KEY},
            ) as resp:
                assert resp.status == 200, await resp.text()


async def test_kill9_between_reading_and_storing_history_loses_and_duplicates_nothing(
    tmp_path: Path,
) -> None:
    crm = RetailcrmEmulator(rate_limit=0)
    await crm.start()
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "store": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
                "http": {"port": port},
                "log": {"format": "json"},
                "systems": {
                    "crm": {
                        "type": "retailcrm",
                        "options": {
                            "url": crm.url,
                            "api_key": "sandbox-bridge-key-0001",
                            "poll_interval": 0.05,
                            "history_page": 20,
                            "rate_limit": 10,
                        },
                    }
                },
            }
        ),
        encoding="utf-8",
    )
    daemon = Daemon(config, port)
    try:
        await daemon.start()

        async def walked() -> bool:
            status = await status_json(config)
            values = {c["name"]: c["value"] for c in status["cursors"]}
            return values.get("orders") == "0"

        while not await walked():
            await asyncio.sleep(0.1)
        assert await daemon.stop() == 0
        await upload_orders(crm, 0, 150)  # 150 creation records: 8 pages of 20

        cursors = []
        for _ in range(3):
            await daemon.start()
            await asyncio.sleep(0.35)
            await daemon.kill9()
            status = await status_json(config)
            cursors.append(int({c["name"]: c["value"] for c in status["cursors"]}["orders"]))
        assert cursors == sorted(cursors)
        assert cursors[0] < 150, cursors  # the first kill came before the last page

        await daemon.start()
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            listed = await cli_json(config, "events", "list", "--source", "crm", "--limit", "1000")
            orders = [e for e in listed["events"] if e["entity"] == "order"]
            if len(orders) >= 150:
                break
            assert asyncio.get_running_loop().time() < deadline, len(orders)
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        listed = await cli_json(config, "events", "list", "--source", "crm", "--limit", "1000")
        orders = [e for e in listed["events"] if e["entity"] == "order"]
        assert len(orders) == 150  # nothing twice
        assert len({e["entity_id"] for e in orders}) == 150  # nothing lost
    finally:
        await daemon.stop()
        await crm.stop()
