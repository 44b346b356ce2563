"""Manual adjustments owed to a 1C that is down survive ``kill -9`` of the daemon (real CLI)
and are made once when it is back (issue 18).

The daemon runs ``bridge serve`` in a subprocess; the 1C emulator and an SMS provider run
in the test process, so they keep their state while the daemon is killed and restarted.
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
from tests.support.configs import ADMIN_TOKEN
from tests.support.daemon import Daemon, free_port
from tests.support.sms import sms_provider

OPS = "/api/v1/bonus/operations"
PHONE = "+79000000001"  # seeded with 1,000 points


async def adjust(
    http: aiohttp.ClientSession, url: str, key: str, kind: str, amount: str
) -> tuple[int, Any]:
    body = {"customer": {"phone": PHONE}, "kind": kind, "amount": amount, "reason": "support"}
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}", "Idempotency-Key": key}
    async with http.post(url + OPS, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


async def shown(http: aiohttp.ClientSession, url: str, op_id: str) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.get(f"{url}{OPS}/{op_id}", headers=headers) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_owed_adjustments_survive_kill_9_and_apply_once(tmp_path: Path) -> None:
    async with sms_provider() as sms:
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
        customer = onec.ledger.find_customer(phone=PHONE).customer_id
        try:
            await daemon.start()
            onec.faults.set(outage=True)
            status, accrual = await adjust(http, daemon.url, "k-accrue", "accrue", "100.00")
            assert (status, accrual["status"]) == (202, "pending"), accrual
            status, write_off = await adjust(http, daemon.url, "k-wo", "write_off", "300.00")
            assert (status, write_off["status"]) == (202, "pending"), write_off
            await daemon.kill9()  # the owed calls are in the store only
            assert onec.ledger.balance(customer).balance == Decimal("1000.00")

            onec.faults.set(outage=False)
            await daemon.start()
            deadline = asyncio.get_running_loop().time() + 20
            for op_id in (accrual["operation_id"], write_off["operation_id"]):
                while (found := await shown(http, daemon.url, op_id))["status"] != "done":
                    assert asyncio.get_running_loop().time() < deadline, found
                    await asyncio.sleep(0.2)
            status, again = await adjust(http, daemon.url, "k-accrue", "accrue", "100.00")
            assert (status, again["operation_id"]) == (200, accrual["operation_id"])
            await asyncio.sleep(0.5)
            balance = onec.ledger.balance(customer)
            assert (balance.balance, balance.reserved) == (Decimal("800.00"), Decimal("0.00"))
        finally:
            await http.close()
            await daemon.stop()
            await onec.stop()
