"""A commit owed to a 1C that is down survives ``kill -9`` of the daemon (real CLI).

The daemon runs ``bridge serve`` in a subprocess; the 1C emulator and an SMS provider run
in the test process, so they keep their state while the daemon is killed and restarted.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import outside_onec_config
from tests.support.configs import CLIENT_TOKEN
from tests.support.daemon import Daemon, cli_json, free_port
from tests.support.sms import Provider, sms_provider

TILL = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
RSV = "/api/v1/bonus/reservations"


async def call(http: aiohttp.ClientSession, method: str, url: str, body: Any = None) -> Any:
    async with http.request(method, url, json=body, headers=TILL) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_an_owed_commit_survives_kill_9_and_lands_after_the_master_returns(
    tmp_path: Path,
) -> None:
    async with sms_provider() as sms:
        await run_the_story(tmp_path, sms)


async def run_the_story(tmp_path: Path, sms: Provider) -> None:
    onec = OnecEmulator(port=free_port())
    await onec.start()

    port = free_port()
    config = outside_onec_config(
        tmp_path,
        onec.url,
        timeout_seconds=1,
        reservations={"sweep_seconds": 0.2, "retry_max_seconds": 1},
        breaker={"failures": 2, "reset_seconds": 0.5},
        sms=sms.gateway(),
    )
    config["http"] = {"port": port}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    daemon = Daemon(path, port)
    http = aiohttp.ClientSession()
    try:
        await daemon.start()
        body = {
            "customer": {"phone": "+7 900 000-00-01"},
            "amount": "200.00",
            "order": {"system": "onec", "id": "receipt-9"},
        }
        status, rsv = await call(http, "POST", daemon.url + RSV, body)
        assert status == 201, rsv
        code = sms.last_code()
        status, held = await call(
            http, "POST", f"{daemon.url}{RSV}/{rsv['id']}/confirm", {"code": code}
        )
        assert (status, held["status"]) == (200, "held")

        onec.faults.set(outage=True)
        status, pending = await call(http, "POST", f"{daemon.url}{RSV}/{rsv['id']}/commit")
        assert (status, pending["status"]) == (202, "commit_pending"), pending
        await daemon.kill9()  # the owed commit is in the store only

        listed = await cli_json(path, "reservations", "list", "--status", "commit_pending")
        assert [r["id"] for r in listed["reservations"]] == [rsv["id"]]
        assert onec.ledger.balance(held["customer"]["id"]).balance == 1000  # not yet charged

        onec.faults.set(outage=False)
        await daemon.start()
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            shown = await cli_json(path, "reservations", "show", rsv["id"])
            if shown["status"] == "committed":
                break
            assert asyncio.get_running_loop().time() < deadline, shown
            await asyncio.sleep(0.2)
        assert shown["committed"] == "200.00"
        assert onec.ledger.balance(held["customer"]["id"]).balance == 800  # charged once
        kinds = [step["kind"] for step in shown["history"]]
        assert kinds.count("commit_done") == 1
    finally:
        await http.close()
        await daemon.stop()
        await onec.stop()
