"""Bitrix events into the real daemon (issue 7, acceptance 3).

An online event with a wrong application token is answered 401 and nothing is stored.
Offline events are cleared only after they are stored: the daemon is killed (``kill -9``)
while its ``event.offline.clear`` hangs, i.e. after it stored a batch and before Bitrix
forgot it; after the restart it clears that batch, and each change is stored once. (A
process killed before it stored a batch is covered in tests/integration/
test_bitrix_connector.py: the batch is read again by its process id.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from connectors.bitrix.emulator import BitrixEmulator
from tests.support.bitrix import APP_TOKEN, oauth_options
from tests.support.daemon import Daemon, cli_json, free_port
from tests.support.waiting import eventually, until

REFRESH = "kill9-refresh-token-0001"
WAIT = 20  # seconds a wait may take


def config(tmp_path: Path, port: int, portal: str) -> dict[str, Any]:
    return {
        "store": {"url": f"sqlite:///{tmp_path / 'bridge.db'}"},
        "http": {"port": port},
        "systems": {
            "bitrix": {
                "type": "bitrix",
                "webhook": {"auth": "connector", "token": APP_TOKEN},
                "options": {
                    **oauth_options(portal, REFRESH, tmp_path / "tokens.json"),
                    "poll_interval": 0.3,
                },
            }
        },
    }


async def stored(path: Path) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (
        await cli_json(path, "events", "list", "--source", "bitrix", "--limit", "100")
    )["events"]
    return events


async def test_a_wrong_token_is_refused_and_offline_events_survive_kill_9_before_clear(
    tmp_path: Path,
) -> None:
    portal = BitrixEmulator(port=free_port(), burst=0, leak=0)
    portal.app.accept_refresh_token(REFRESH)
    await portal.start()
    port = free_port()
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(tmp_path, port, portal.url)), encoding="utf-8")
    daemon = Daemon(path, port)
    try:
        await daemon.start()
        form = {"event": "ONCRMDEALUPDATE", "data[FIELDS][ID]": "7", "ts": "1766047124"}
        async with aiohttp.ClientSession() as http:
            wrong = form | {"auth[application_token]": "not-the-token"}
            async with http.post(f"{daemon.url}/hooks/bitrix", data=wrong) as resp:
                assert resp.status == 401
            assert await stored(path) == []  # nothing stored

        # The first poll binds the offline events; then a site makes three changes.
        await until(lambda: portal.snapshot()["bindings"], WAIT)
        portal.faults.set(hang=60, methods=["event.offline.clear"])
        deals = [portal.admin.edit("deal", {"TITLE": f"site order {n}"}) for n in range(3)]

        async def all_stored() -> bool:
            return len(await stored(path)) == 3

        await eventually(all_stored, WAIT)
        await asyncio.sleep(0.5)  # the next poll is now waiting on its clear
        await daemon.kill9()
        queued = portal.snapshot()["offline"]
        assert len(queued) == 3 and all(r["PROCESS_ID"] for r in queued), queued

        portal.faults.clear()
        await daemon.start()
        await until(lambda: portal.snapshot()["offline"] == [], WAIT)  # cleared after restart
        await asyncio.sleep(1)  # more polls: nothing comes twice
        events = await stored(path)
        assert sorted(e["entity_id"] for e in events) == sorted(str(d) for d in deals)
        assert {e["entity"] for e in events} == {"order"}
    finally:
        await daemon.stop()
        await portal.stop()
