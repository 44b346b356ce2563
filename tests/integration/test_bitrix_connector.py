"""The Bitrix connector against the Bitrix24 emulator, over the wire (issue 7).

Writes go in ``batch`` keyed by the bridge's ``originId``; a retry looks the key up before
it adds; reads and backfill listings give what Bitrix holds; the offline queue is cleared
only after a poll's changes were stored (here: after the next poll asks), and a batch
reserved by a process that died before storing it is read again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from bridge.connector import DeliveryJob
from bridge.settings import SystemSettings, WebhookAuth, WebhookSettings
from bridge.store.records import EventRecord, Status
from connectors.bitrix.connector import BITRIX, BitrixConnector
from connectors.bitrix.emulator import BitrixEmulator
from connectors.bitrix.emulator.wire import RestError
from tests.support.bitrix import APP_TOKEN, oauth_options
from tests.support.daemon import free_port

REFRESH = "test-refresh-token-0001"


@pytest.fixture
async def portal() -> AsyncIterator[BitrixEmulator]:
    emulator = BitrixEmulator(burst=50, leak=2.0)
    emulator.app.accept_refresh_token(REFRESH)
    await emulator.start()
    yield emulator
    await emulator.stop()


def connector(
    portal: BitrixEmulator, *, oauth: Path | None = None, **options: Any
) -> BitrixConnector:
    """A connector on the portal's webhook, or (``oauth``: its token file) as the app."""
    webhook = WebhookSettings(auth=WebhookAuth.CONNECTOR, token=SecretStr(APP_TOKEN))
    system = SystemSettings(type="bitrix", webhook=webhook)
    if oauth is not None:
        options |= oauth_options(portal.url, REFRESH, oauth)
    else:
        options["url"] = portal.webhook_url
    built = BITRIX.create("bitrix", system, BITRIX.options_model.model_validate(options))
    assert isinstance(built, BitrixConnector)
    return built


def job(
    n: int, document: dict[str, Any], *, attempt: int = 1, entity: str = "order"
) -> DeliveryJob:
    event = EventRecord(
        f"evt_{n}", "onec", f"k{n}", entity, str(n), "changed", Status.PENDING, None, {}, 0.0, 0.0
    )
    return DeliveryJob(
        delivery_id=f"dlv_{n}",
        operation_key=f"bridge-dlv_{n}",
        target="bitrix",
        source="onec",
        entity=entity,
        entity_id=str(n),
        attempt=attempt,
        events=(event,),
        document=document,
    )


def deals(portal: BitrixEmulator) -> list[dict[str, Any]]:
    found: dict[Any, dict[str, Any]] = portal.snapshot()["deals"]
    return list(found.values())


async def test_sixty_deals_go_in_two_batches_and_a_retry_finds_what_landed(
    portal: BitrixEmulator,
) -> None:
    bitrix = connector(portal)
    try:
        jobs = [job(n, {"title": f"Order {n}", "opportunity": 100 + n}) for n in range(60)]
        before = portal.stats["requests"]
        results = await bitrix.deliver_batch(jobs[:50])
        results += await bitrix.deliver_batch(jobs[50:])
        assert portal.stats["requests"] - before == 2  # one batch each, no look-ups
        assert all(isinstance(r, str) and r.isdigit() for r in results), results
        written = {d["ORIGIN_ID"]: d for d in deals(portal) if d.get("ORIGINATOR_ID") == "bridge"}
        assert sorted(written) == sorted(f"onec-{n}" for n in range(60))
        assert written["onec-7"]["TITLE"] == "Order 7"

        # A retry (it may have landed before) is looked up by its key: an update, no copy.
        again = job(7, {"title": "Order 7, paid"}, attempt=2)
        [own] = await bitrix.deliver_batch([again])
        assert own == results[7]
        titles = [d["TITLE"] for d in deals(portal) if d.get("ORIGIN_ID") == "onec-7"]
        assert titles == ["Order 7, paid"]
        # The id map's id goes straight to an update.
        known = job(8, {"title": "Order 8, shipped"})
        known = DeliveryJob(**{**known.__dict__, "mapped_id": results[8]})
        assert await bitrix.deliver_batch([known]) == [results[8]]

        state = await bitrix.read_entity("order", str(results[8]))
        assert state is not None
        assert (state["title"], state["externalId"]) == ("Order 8, shipped", "onec-8")
        assert await bitrix.read_entity("order", "999999") is None
    finally:
        await bitrix.close()


async def test_a_bad_write_fails_alone_inside_its_batch(portal: BitrixEmulator) -> None:
    bitrix = connector(portal)
    try:
        good = job(1, {"title": "fine"})
        bad = job(2, {"title": "x", "opportunity": "not a number"})
        results = await bitrix.deliver_batch([good, bad])
        assert isinstance(results[0], str)
        assert getattr(results[1], "error_class", None) == "permanent", results[1]
    finally:
        await bitrix.close()


async def test_deals_are_listed_oldest_first_in_pages_for_a_backfill(
    portal: BitrixEmulator,
) -> None:
    for n in range(120):
        portal.admin.seed("deal", {"TITLE": f"site {n}"})
    bitrix = connector(portal)
    try:
        seen: list[str] = []
        cursor = None
        while True:
            page = await bitrix.list_entities("order", None, cursor)
            seen += [e.entity_id for e in page.entities]
            if page.cursor is None:
                break
            cursor = page.cursor
        assert len(seen) == len(set(seen)) == len(deals(portal))
        assert seen == sorted(seen, key=int)
    finally:
        await bitrix.close()


async def test_offline_events_are_cleared_only_after_they_are_stored_even_across_a_crash(
    portal: BitrixEmulator, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.json"
    first = connector(portal, oauth=tokens)
    try:
        result = await first.poll("offline", None)  # binds; nothing queued yet
        assert result.events == []
        deal = portal.admin.edit("deal", {"TITLE": "from the site"})
        contact = portal.admin.edit("contact", {"NAME": "Анна"})
        got = await first.poll("offline", result.cursor or None)
        assert {(e.entity, e.entity_id) for e in got.events} == {
            ("order", str(deal)),
            ("customer", str(contact)),
        }
        assert got.cursor.startswith("clear:")
        # The process dies here: the batch was reserved, never stored, never cleared.
    finally:
        await first.close()
    queued = portal.snapshot()["offline"]
    assert len(queued) == 2 and all(r["PROCESS_ID"] for r in queued)

    second = connector(portal, oauth=tokens)  # a restart, with the cursor before that poll
    try:
        again = await second.poll("offline", result.cursor or None)
        assert {(e.entity, e.entity_id) for e in again.events} == {
            ("order", str(deal)),
            ("customer", str(contact)),
        }
        assert len(portal.snapshot()["offline"]) == 2  # still there: not yet stored
        done = await second.poll("offline", again.cursor)  # stored: now it clears them
        assert done.events == []
        assert portal.snapshot()["offline"] == []
        # The bridge's own writes (with its auth_connector) are not queued back to it.
        await second.deliver_batch([job(5, {"title": "from 1C"})])
        assert portal.snapshot()["offline"] == []
    finally:
        await second.close()


async def test_the_client_pages_by_start_and_scans_by_id(portal: BitrixEmulator) -> None:
    for n in range(120):
        portal.admin.seed("contact", {"NAME": f"Покупатель {n}"})
    bitrix = connector(portal)
    client = bitrix._client
    assert client is not None
    try:
        params = {"entityTypeId": 3, "select": ["id"]}
        paged = [page async for page in client.pages("crm.item.list", params)]
        ids = [r["id"] for p in paged for r in p.result["items"]]
        assert [len(p.result["items"]) for p in paged] == [50, 50, 23]  # 120 + the sandbox's 3
        assert paged[0].total == 123 and paged[-1].next is None
        scanned = [
            row["id"]
            async for rows in client.scan(
                "crm.item.list", params, items=lambda r: r["items"], id_key="id"
            )
            for row in rows
        ]
        assert scanned == ids == sorted(ids)
    finally:
        await bitrix.close()


async def test_shop_orders_are_written_read_and_listed_as_sale_orders(
    portal: BitrixEmulator,
) -> None:
    bitrix = connector(portal, orders="shop")
    try:
        document = {"personTypeId": 1, "currency": "RUB", "price": 1490, "statusId": "N"}
        [own] = await bitrix.deliver_batch([job(1, document)])
        assert isinstance(own, str)
        [order] = portal.snapshot()["orders"].values()
        assert (order["xmlId"], order["lid"], order["price"]) == ("onec-1", "s1", 1490)
        state = await bitrix.read_entity("order", own)
        assert state is not None and state["externalId"] == "onec-1"
        retry = job(1, document | {"statusId": "F"}, attempt=2)
        fresh = connector(portal, orders="shop")  # a restart: only the xmlId can find it
        try:
            [again] = await fresh.deliver_batch([retry])
        finally:
            await fresh.close()
        assert again == own  # found by its xmlId: one order
        assert [o["statusId"] for o in portal.snapshot()["orders"].values()] == ["F"]
        page = await bitrix.list_entities("order", None, None)
        assert [e.entity_id for e in page.entities] == [own]
    finally:
        await bitrix.close()


async def test_a_reserved_batch_beyond_the_first_page_is_recovered_after_a_crash(
    portal: BitrixEmulator, tmp_path: Path
) -> None:
    """Records keep their id when later changes merge into them (§3.5), so the batch a
    crashed process reserved may sit on any page of ``event.offline.list``."""
    tokens = tmp_path / "tokens.json"
    first = connector(portal, oauth=tokens)
    try:
        result = await first.poll("offline", None)  # binds
        old = [portal.admin.seed("deal", {"TITLE": f"A{n}"}) for n in range(60)]
        for deal in old:  # update records, ids 1..60
            portal.admin.edit("deal", {"TITLE": "a"}, deal)
        new = [portal.admin.edit("deal", {"TITLE": f"B{n}"}) for n in range(50)]  # 61..110
        for deal in old:  # merged into the records 1..60, which are now the newest
            portal.admin.edit("deal", {"TITLE": "a2"}, deal)
        got = await first.poll("offline", result.cursor or None)
        assert {e.entity_id for e in got.events} == {str(d) for d in new}
    finally:
        await first.close()  # killed: the batch was reserved, never stored
    second = connector(portal, oauth=tokens)
    seen: set[str] = set()
    try:
        cursor = result.cursor or None
        for _ in range(10):
            polled = await second.poll("offline", cursor)
            seen |= {e.entity_id for e in polled.events}
            cursor = polled.cursor or None
            if not polled.more and not polled.events:
                break
    finally:
        await second.close()
    assert {str(d) for d in new} <= seen
    assert [r for r in portal.snapshot()["offline"] if r["PROCESS_ID"]] == []


def test_poll_interval_zero_turns_the_offline_queue_off(tmp_path: Path) -> None:
    options = oauth_options("http://127.0.0.1:9", REFRESH, tmp_path / "t.json")
    built = BITRIX.create(
        "bitrix",
        SystemSettings(type="bitrix"),
        BITRIX.options_model.model_validate(options | {"poll_interval": 0}),
    )
    assert isinstance(built, BitrixConnector)
    assert (built.feeds, built.poll_interval) == ((), 0.0)


async def test_a_refresh_cut_off_by_a_timeout_still_keeps_the_new_tokens(
    portal: BitrixEmulator, tmp_path: Path
) -> None:
    """The token server spends the old refresh token when it answers (§1.1): a caller that
    gives up while the answer is on its way must not lose the new one, in memory or on
    disk. Here the token server rotates at once and answers a second later."""

    async def slow_token(request: web.Request) -> web.Response:
        try:
            answer = portal.app.grant(dict(request.query))
        except RestError as exc:
            return web.json_response(exc.body(), status=exc.status)
        await asyncio.sleep(1.0)
        return web.json_response(answer)

    app = web.Application()
    app.router.add_get("/oauth/token/", slow_token)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    tokens = tmp_path / "tokens.json"

    def make() -> BitrixConnector:
        options = oauth_options(portal.url, REFRESH, tokens)
        options["oauth"]["token_url"] = f"http://127.0.0.1:{port}/oauth/token/"
        built = BITRIX.create(
            "bitrix", SystemSettings(type="bitrix"), BITRIX.options_model.model_validate(options)
        )
        assert isinstance(built, BitrixConnector)
        return built

    first = make()
    try:
        assert "Bitrix24" in await first.probe()  # the first refresh (slow)
        portal.app.expire_all()  # an hour later
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(first.probe(), 0.5)  # a delivery's timeout, mid-refresh
        await asyncio.sleep(1.0)  # the refresh's answer arrives meanwhile
        assert "Bitrix24" in await first.probe()  # the same process goes on
        restarted = make()  # and a restart goes on from the token file
        try:
            assert "Bitrix24" in await restarted.probe()
        finally:
            await restarted.close()
    finally:
        await first.close()
        await runner.cleanup()


async def test_a_deal_is_read_with_its_contact_in_one_request(portal: BitrixEmulator) -> None:
    bitrix = connector(portal)
    try:
        ivan = portal.admin.seed(
            "contact",
            {"NAME": "Иван", "LAST_NAME": "Петров", "PHONE": [{"VALUE": "+79001112233"}]},
        )
        deal = portal.admin.seed("deal", {"TITLE": "site order", "CONTACT_ID": ivan})
        alone = portal.admin.seed("deal", {"TITLE": "no contact"})
        before = portal.stats["requests"]
        state = await bitrix.read_entity("order", str(deal))
        assert portal.stats["requests"] - before == 1
        assert state is not None
        assert state["contact"] == {
            "id": ivan,
            "name": "Иван",
            "lastName": "Петров",
            "secondName": None,
            "phone": "+79001112233",
            "email": None,
        }
        lonely = await bitrix.read_entity("order", str(alone))
        assert lonely is not None and "contact" not in lonely
        assert await bitrix.read_entity("order", "99999") is None
    finally:
        await bitrix.close()
