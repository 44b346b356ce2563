"""A 10,000-order backfill survives ``kill -9`` of the daemon (issue 6, acceptance 5).

The RetailCRM and 1C emulators run in the test process, so they keep their state while the
real ``bridge serve`` in a subprocess is killed mid-way and started again. The backfill is
started, resumed and followed to its end with the real CLI.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import yaml

from connectors.onec.emulator import OnecEmulator
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.emulator.history import ORDER
from tests.support.daemon import Daemon, cli_json, free_port, run_cli
from tests.support.mirroring import shipped_route
from tests.support.waiting import until

ORDERS = int(os.environ.get("BRIDGE_TEST_BACKFILL_ORDERS", "10000"))
BACKFILL = ("backfill", "orders", "--from", "retailcrm", "--to", "onec", "--since", "2026-01-01")


def config(tmp_path: Path, port: int, crm: str, onec: str) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{tmp_path / 'bridge.db'}"},
        "http": {"port": port},
        "systems": {
            "onec": {
                "type": "onec",
                "delivery": {"timeout_seconds": 5, "concurrency": 8},
                "options": {
                    "url": onec,
                    "transport": "http",
                    "username": "bridge",
                    "password": "sandbox",
                    "poll_interval": 0.5,
                },
            },
            "retailcrm": {
                "type": "retailcrm",
                "options": {
                    "url": crm,
                    "api_key": "sandbox-bridge-key-0001",
                    "poll_interval": 0.5,
                    "rate_limit": 50,
                },
            },
        },
        "mirror": {"routes": [shipped_route("retailcrm", "order", "onec")]},
    }


def seed(crm: RetailcrmEmulator, count: int) -> set[str]:
    """Orders RetailCRM held before the bridge came: no history records, only a backfill
    brings them."""
    ids = set()
    for n in range(count):
        data = {
            "number": f"H{n}",
            "status": "complete",
            "createdAt": "2026-03-01 10:00:00",
            "customer": {"externalId": "c-1"},
            "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 100}],
        }
        ids.add(str(crm.state.insert(ORDER, data, "shop", None)["id"]))
    return ids


async def test_kill_9_during_a_backfill_then_resume_every_order_once(tmp_path: Path) -> None:
    crm = RetailcrmEmulator(port=free_port(), rate_limit=50)
    onec = OnecEmulator(port=free_port())
    await crm.start()
    await onec.start()
    ids = seed(crm, ORDERS)
    port = free_port()
    path = tmp_path / "config.yaml"
    text = yaml.safe_dump(config(tmp_path, port, crm.url, onec.hs_url), allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    daemon = Daemon(path, port)

    def written() -> dict[str, tuple[str, int, dict[str, Any]]]:
        orders = onec.ledger.snapshot()["orders"]
        assert isinstance(orders, dict)
        return {k: v for k, v in orders.items() if k.startswith("retailcrm-")}

    try:
        await daemon.start()
        started = await cli_json(path, *BACKFILL, "--no-wait")
        assert (started["status"], started["resumed"]) == ("listing", False)
        await until(lambda: len(written()) >= ORDERS // 3, 120)
        await daemon.kill9()
        at_kill = len(written())
        listed = (await cli_json(path, "backfill", "list"))["backfills"]
        assert [(b["id"], b["status"]) for b in listed] == [(started["id"], "listing")]
        assert at_kill < ORDERS, "killed before the end"

        await daemon.start()
        began = time.monotonic()
        code, out, err = await run_cli(path, *BACKFILL, timeout=300)  # resumes, follows
        assert code == 0, err
        assert f"{started['id']}: resuming" in out
        assert f"{ORDERS} listed, {ORDERS} delivered, 0 dead, 0 still waiting" in out, out
        print(
            f"\nbackfill of {ORDERS}: {at_kill} in 1C at kill -9;"
            f" the rest in {time.monotonic() - began:.1f} s after the restart"
        )
    finally:
        await daemon.stop()
        await crm.stop()
        await onec.stop()
    orders = written()
    assert set(orders) == {f"retailcrm-{i}" for i in ids}, "every order, none missing"
    # Once: 1C bumps an order's version on every save that changes it, and answers a
    # repeated OperationId from memory; a second copy would have another key.
    assert {version for _n, version, _d in orders.values()} == {1}
    final = (await cli_json(path, "backfill", "list"))["backfills"][0]
    assert (final["status"], final["listed"], final["delivered"]) == ("done", ORDERS, ORDERS)
