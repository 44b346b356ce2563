"""Issue 7, acceptance 1: an independent Bitrix24 client from PyPI works against the emulator.

The client is fast_bitrix24 (bitrix.md §5), used exactly as its README shows, with no bridge
code in between: `BitrixAsync(webhook)` for an inbound webhook, and `BitrixAsync(
"<portal>/rest/", token_func=…)` — its documented OAuth option — for the application
context that `event.*` needs (§3.1, §3.5). Its own throttle (50 burst, 2 rps) meets the
emulator's leaky bucket at the reference's defaults (§1.6). It accepts a plain-http
loopback URL as is (it only checks that the URL has a scheme, host and path).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from fast_bitrix24 import BitrixAsync

from connectors.bitrix.emulator import BitrixEmulator


class FakeClock:
    """Wall-clock seconds that can jump ahead (to expire an access token)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def emu(clock: FakeClock) -> AsyncIterator[BitrixEmulator]:
    async with BitrixEmulator(clock=clock) as emulator:  # the bucket at 50 / 2 per s
        yield emulator


def webhook_client(emu: BitrixEmulator) -> BitrixAsync:
    """The client as its README builds it for an inbound webhook."""
    return BitrixAsync(emu.webhook_url, verbose=False)


async def test_crm_items_paging_batches_and_duplicates(emu: BitrixEmulator) -> None:
    b24 = webhook_client(emu)
    item = await b24.call(
        "crm.item.add",
        {
            "entityTypeId": 2,
            "fields": {"title": "1C order 77", "opportunity": 1500, "originId": "1c-77"},
        },
    )
    assert (item["id"], item["title"], item["opportunity"]) == (1, "1C order 77", 1500)
    changed = await b24.call(
        "crm.item.update", {"entityTypeId": 2, "id": item["id"], "fields": {"stageId": "WON"}}
    )
    assert changed["stageId"] == "WON"

    # The client's own batching: 120 adds go out as batches of at most 50 commands.
    batches = emu.snapshot()["stats"]["by_method"]["batch"]  # a single call is a batch too
    added = await b24.call(
        "crm.item.add",
        [{"entityTypeId": 2, "fields": {"title": f"Deal {n}"}} for n in range(2, 122)],
    )
    # Its batches run in parallel, so the answers come in completion order.
    assert sorted(a["id"] for a in added) == list(range(2, 122))
    assert emu.snapshot()["stats"]["by_method"]["batch"] - batches == 3

    # Paging through more than 50 items: one page, then the rest in one batch of `start`s.
    deals = await b24.get_all("crm.item.list", {"entityTypeId": 2, "select": ["id", "title"]})
    assert sorted(d["id"] for d in deals) == list(range(1, 122))
    old_style = await b24.get_all("crm.deal.list", {"select": ["ID", "TITLE"]})
    assert len(old_style) == 121 and {"ID", "TITLE"} == set(old_style[0])

    got = await b24.get_by_ID(
        "crm.item.get", [1, 2], ID_field_name="id", params={"entityTypeId": 2}
    )
    assert {key: value["item"]["id"] for key, value in got.items()} == {"1": 1, "2": 2}

    found = await b24.call(
        "crm.duplicate.findbycomm",
        {"type": "PHONE", "values": ["8 900 000-00-02"], "entity_type": "CONTACT"},
        raw=True,
    )
    assert found["result"] == {"CONTACT": [2]}

    batch = await b24.call_batch(
        {
            "halt": 0,
            "cmd": {
                "deal": "crm.item.get?entityTypeId=2&id=1",
                "same": "crm.item.get?entityTypeId=2&id=$result[deal][item][id]",
            },
        }
    )
    assert batch["same"]["item"]["originId"] == "1c-77"


async def test_contact_user_field_written_through_update(emu: BitrixEmulator) -> None:
    b24 = webhook_client(emu)
    fields = await b24.get_all("crm.contact.userfield.list")
    assert [f["FIELD_NAME"] for f in fields] == ["UF_CRM_BONUS_BALANCE"]
    assert await b24.call(
        "crm.contact.update", {"id": 1, "fields": {"UF_CRM_BONUS_BALANCE": 1250.5}}
    )
    contact = await b24.call("crm.contact.get", {"id": 1}, raw=True)
    assert contact["result"]["UF_CRM_BONUS_BALANCE"] == "1250.5"
    item = await b24.call("crm.item.get", {"entityTypeId": 3, "id": 1}, raw=True)
    assert item["result"]["item"]["ufCrmBonusBalance"] == 1250.5


async def test_offline_events_through_the_oauth_option(
    emu: BitrixEmulator, clock: FakeClock
) -> None:
    tokens: dict[str, Any] = emu.install_app()  # what ONAPPINSTALL hands the application
    asked = 0

    async def token_func() -> str:
        """The client's documented OAuth hook: asked once, then again after each 401."""
        nonlocal asked, tokens
        asked += 1
        if asked > 1:  # refresh at the OAuth server, as bitrix.md §1.1 describes
            params = {
                "grant_type": "refresh_token",
                "client_id": emu.app.client_id,
                "client_secret": "sandbox-bitrix-client-secret",
                "refresh_token": tokens["refresh_token"],
            }
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"{emu.url}/oauth/token/", params=params) as response,
            ):
                tokens = await response.json()
        return str(tokens["access_token"])

    app = BitrixAsync(f"{emu.url}/rest/", token_func=token_func, verbose=False)
    bound = await app.call(
        "event.bind", {"event": "ONCRMDEALUPDATE", "event_type": "offline"}, raw=True
    )
    assert bound["result"] is True

    webhook = webhook_client(emu)
    deal = await webhook.call("crm.deal.add", {"fields": {"TITLE": "Watched"}})
    await webhook.call("crm.deal.update", {"id": deal, "fields": {"TITLE": "Changed"}})
    await webhook.call("crm.deal.update", {"id": deal, "fields": {"TITLE": "Changed again"}})

    clock.offset += 3601  # the access token expires (§1.1: one hour)
    first = await app.call("event.offline.get", {"clear": 0}, raw=True)
    assert asked == 2  # 401 expired_token → token_func refreshed → the call was repeated
    process_id = first["result"]["process_id"]
    events = first["result"]["events"]
    # §3.5: the latest state per object — two updates of one deal are one record.
    assert [(e["EVENT_NAME"], e["EVENT_DATA"]) for e in events] == [
        ("ONCRMDEALUPDATE", {"FIELDS": {"ID": deal}})
    ]
    again = await app.call("event.offline.get", {"clear": 0, "process_id": process_id}, raw=True)
    assert [e["ID"] for e in again["result"]["events"]] == [events[0]["ID"]]
    cleared = await app.call("event.offline.clear", {"process_id": process_id}, raw=True)
    assert cleared["result"] is True
    after = await app.call("event.offline.list", {}, raw=True)
    assert after["result"] == []
