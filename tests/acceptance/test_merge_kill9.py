"""A card merge cut short by ``kill -9`` of the daemon completes after the restart, each
step made once: no card charged or credited twice (issue 17, real CLI).

The daemon runs ``bridge serve`` in a subprocess; the 1C emulator (slowed, so the merge is
mid-way when the daemon dies) and an SMS provider run in the test process and keep their
state across the restart.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import outside_onec_config
from tests.support.customers import BASE, SITE, SITE_TOKEN
from tests.support.daemon import Daemon, free_port
from tests.support.sms import sms_provider

MARIA, OWNERLESS = "+79000000005", "2000000000077"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, proof: str = ""
) -> Any:
    headers = SITE | ({"X-Customer-Proof": proof} if proof else {})
    async with http.request(method, url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_a_merge_killed_mid_way_completes_after_the_restart_each_step_once(
    tmp_path: Path,
) -> None:
    async with sms_provider() as sms:
        onec = OnecEmulator(port=free_port())
        await onec.start()
        port = free_port()
        config = outside_onec_config(
            tmp_path,
            onec.url,
            timeout_seconds=3,
            reservations={"sweep_seconds": 0.2, "retry_max_seconds": 1},
            sms=sms.gateway(),
        )
        config["clients"]["site"] = {"token": SITE_TOKEN, "scopes": ["customers"]}
        config["http"] = {"port": port}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        daemon = Daemon(path, port)
        http = aiohttp.ClientSession()
        try:
            await daemon.start()
            base = daemon.url + BASE
            status, started = await call(http, "POST", f"{base}/verify", {"phone": MARIA})
            assert status == 201, started
            confirm = f"{base}/verify/{started['verification_id']}/confirm"
            status, proved = await call(http, "POST", confirm, {"code": sms.last_code()})
            assert status == 200, proved
            proof = proved["proof"]
            status, _ = await call(http, "POST", f"{base}/cards/attach", {"card": OWNERLESS}, proof)
            assert status == 200

            onec.faults.set(latency=0.3)  # each 1C call takes 0.3 s: the merge takes seconds
            status, merge = await call(
                http, "POST", f"{base}/cards/merge", {"main_card": "2000000000060"}, proof
            )
            assert status == 202, merge
            await asyncio.sleep(0.8)  # some steps made, some owed, one perhaps in flight
            await daemon.kill9()
            mid = onec.ledger.get_card("2000000000060").balance
            at_kill = [
                onec.ledger.get_card(n) for n in ("2000000000053", "2000000000060", OWNERLESS)
            ]
            finished = (
                at_kill[0].status == "blocked"
                and at_kill[2].status == "blocked"
                and at_kill[1].main
                and mid == Decimal("200.50")
            )
            assert not finished, at_kill  # the kill came mid-way, or the test proves nothing
            onec.faults.set(latency=0)

            await daemon.start()  # the proof's key is kept in the store: still valid
            deadline = asyncio.get_running_loop().time() + 20
            while True:
                status, shown = await call(
                    http, "GET", f"{base}/merges/{merge['merge_id']}", None, proof
                )
                assert status == 200, shown
                if shown["status"] != "running":
                    break
                assert asyncio.get_running_loop().time() < deadline, shown
                await asyncio.sleep(0.2)
            assert shown["status"] == "done", shown
        finally:
            await http.close()
            await daemon.stop()
        cards = {n: onec.ledger.get_card(n) for n in ("2000000000053", "2000000000060", OWNERLESS)}
        await onec.stop()
    assert mid in (Decimal("80.00"), Decimal("200.50"))  # the move lands whole or not at all
    assert cards["2000000000060"].balance == Decimal("200.50")  # exactly: moved once
    assert (cards["2000000000060"].status, cards["2000000000060"].main) == ("active", True)
    for number in ("2000000000053", OWNERLESS):
        assert (cards[number].balance, cards[number].status) == (Decimal("0.00"), "blocked")
