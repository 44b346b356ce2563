"""Bitrix ⇄ 1C ⇄ RetailCRM mirroring through the committed routes and `mappings/`, over the wire.

The bridge runs all three sandbox emulators (the runtime starts them, `sandbox.enabled`),
polls every source (Bitrix: its offline event queue) and routes changes exactly as
config.yaml's `mirror.routes` does. A site order made in Bitrix (a deal, as a manager or
the site makes it: events into the offline queue) reaches 1C and RetailCRM once each; a
status set in 1C or RetailCRM comes back to the deal without a second copy anywhere; and
polling on writes nothing more.

What is counted, from the emulators' own records: Bitrix's API calls by method
(``snapshot()["stats"]["calls"]``, batch commands included: a write is ``crm.item.add`` or
``crm.item.update``); RetailCRM's requests by route (a write is a POST to an order or
customer route); 1C's change log entries of origin ``bridge`` (one per SaveOrder /
SaveCustomer it served) and its order versions; and the copies each system holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.store.records import EventFilter
from connectors.bitrix.emulator import BitrixEmulator
from connectors.onec.emulator import OnecEmulator
from connectors.retailcrm.emulator import RetailcrmEmulator
from tests.support.bitrix import APP_TOKEN, oauth_options
from tests.support.bonus import Bonus, start_bonus
from tests.support.daemon import free_port
from tests.support.mirroring import (
    bridge_history,
    bridge_saves,
    first_polls,
    manager_call,
    mirroring_config,
    poll_every_feed,
    settled,
    wait_until_all_delivered,
    wait_until_none_active,
)
from tests.support.waiting import eventually, until

ROOT = Path(__file__).resolve().parents[2]
# How long a wait may take here: more than the other mirroring tests' 15 s, Bitrix being
# polled only every 0.5 s (bitrix_mirroring_config).
WAIT = 20  # seconds
POLLS = 5  # direct polls of every feed once everything has settled
BITRIX_WRITES = frozenset({"crm.item.add", "crm.item.update"})
BITRIX_FEEDS = ("event.offline.get",)
CRM_WRITE_ROUTES = ("v5/orders/", "v5/customers/")  # create, upload, {ref}/edit


def committed_routes() -> list[dict[str, Any]]:
    """config.yaml's routes, with the mapping files named by absolute path."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    routes: list[dict[str, Any]] = config["mirror"]["routes"]
    return [r | {"mapping": str(ROOT / r["mapping"])} for r in routes]


def bitrix_mirroring_config(tmp_path: Path) -> dict[str, Any]:
    """The three sandboxes on free ports, polled often, with the committed routes."""
    config = mirroring_config(tmp_path)
    portal = f"http://127.0.0.1:{free_port()}"
    tokens = tmp_path / "bitrix-tokens.json"
    config["systems"]["bitrix"] = {
        "type": "bitrix",
        "webhook": {"auth": "connector", "token": APP_TOKEN},
        "options": {  # as config.yaml's bitrix system: a local application (OAuth)
            **oauth_options(portal, "sandbox-bitrix-refresh-token", tokens),
            "orders": "deals",
            # The connector keeps under the portal's 2 requests/s (bitrix.md §1.6): a poll
            # every 0.5 s leaves it room for the reads and writes.
            "poll_interval": 0.5,
        },
    }
    config["mirror"] = {"routes": committed_routes()}
    return config


@dataclass
class Rig:
    """A bridge with the three sandbox emulators it started."""

    bridge: Bonus

    @property
    def bitrix(self) -> BitrixEmulator:
        emulator = self.bridge.runtime.emulators["bitrix"]
        assert isinstance(emulator, BitrixEmulator)
        return emulator

    @property
    def onec(self) -> OnecEmulator:
        emulator = self.bridge.runtime.emulators["onec"]
        assert isinstance(emulator, OnecEmulator)
        return emulator

    @property
    def crm(self) -> RetailcrmEmulator:
        emulator = self.bridge.runtime.emulators["retailcrm"]
        assert isinstance(emulator, RetailcrmEmulator)
        return emulator

    def deals(self) -> dict[int, dict[str, Any]]:
        """Bitrix's deals by id (old UPPER_CASE names, as the portal stores them)."""
        found: dict[int, dict[str, Any]] = self.bitrix.snapshot()["deals"]
        return found

    def contacts(self) -> dict[int, dict[str, Any]]:
        """Bitrix's contacts by id."""
        found: dict[int, dict[str, Any]] = self.bitrix.snapshot()["contacts"]
        return found

    def crm_orders(self) -> list[dict[str, Any]]:
        """RetailCRM's orders as its API shows them."""
        found: list[dict[str, Any]] = self.crm.state.snapshot()["orders"]
        return found

    def crm_customers(self) -> list[dict[str, Any]]:
        """RetailCRM's customers as its API shows them."""
        found: list[dict[str, Any]] = self.crm.state.snapshot()["customers"]
        return found

    def onec_orders(self) -> dict[str, tuple[str, int, dict[str, Any]]]:
        """1C's orders by feed id: (1C number, version, document)."""
        found = self.onec.ledger.snapshot()["orders"]
        assert isinstance(found, dict)
        return found

    async def manager(self, call: Callable[[Any], Any]) -> dict[str, Any]:
        """One call with the official client, as a RetailCRM manager."""
        return await manager_call(self.crm.url, call)


@dataclass(frozen=True)
class Tally:
    """Everything that must not move while nothing changes."""

    bitrix_writes: Counter[str]  # crm.item.add / crm.item.update calls Bitrix served
    crm_posts: Counter[str]  # "POST <route>" → order and customer write requests RetailCRM got
    # "<kind> <id> <field>" → RetailCRM history records the bridge's key made: one "created"
    # per entity it created, one per field an edit of it changed.
    crm_history: Counter[str]
    onec_saves: Counter[str]  # "<entity> <id>" → change log entries of origin bridge
    onec_versions: dict[str, int]  # 1C order (feed id) → version
    copies: tuple[
        int, int, int, int, int
    ]  # deals, contacts, RetailCRM orders, customers, 1C orders
    events: int  # events in the bridge's store

    def writes(self) -> tuple[int, int, int]:
        """(Bitrix writes, RetailCRM write requests, 1C saves)."""
        return (
            sum(self.bitrix_writes.values()),
            sum(self.crm_posts.values()),
            sum(self.onec_saves.values()),
        )


async def tally(rig: Rig) -> Tally:
    """Count from the emulators' own records and the bridge's store."""
    calls: dict[str, int] = rig.bitrix.snapshot()["stats"]["calls"]
    bitrix_writes = Counter({m: n for m, n in calls.items() if m in BITRIX_WRITES})
    crm_posts = Counter(
        {
            shape: n
            for shape, n in rig.crm.requests_by_route.items()
            if shape.startswith("POST ") and shape[5:].startswith(CRM_WRITE_ROUTES)
        }
    )
    crm_history = Counter(
        f"{kind} {r.entity_id} {'created' if r.created else r.field}"
        for kind, r in bridge_history(rig.crm)
    )
    onec_saves = bridge_saves(rig.onec)
    copies = (
        len(rig.deals()),
        len(rig.contacts()),
        len(rig.crm_orders()),
        len(rig.crm_customers()),
        len(rig.onec_orders()),
    )
    versions = {key: version for key, (_n, version, _d) in rig.onec_orders().items()}
    events = sum((await rig.bridge.runtime.store.count_events()).values())
    return Tally(bitrix_writes, crm_posts, crm_history, onec_saves, versions, copies, events)


async def settled_tally(rig: Rig) -> Tally:
    """The tally once a poll of every feed finds nothing more to deliver."""
    return await settled(rig.bridge.runtime, partial(tally, rig), WAIT)


async def assert_polling_writes_nothing(rig: Rig, before: Tally) -> None:
    """``POLLS`` direct polls of every feed, then the pollers' own loops for a while: no
    count moves, and the polls really reached every source."""
    calls_before = dict(rig.bitrix.snapshot()["stats"]["calls"])
    crm_before = dict(rig.crm.requests_by_route)
    for _ in range(POLLS):
        await poll_every_feed(rig.bridge.runtime, WAIT)
        assert await tally(rig) == before
    await asyncio.sleep(1.5)  # three of Bitrix's poll intervals, seven of the others'
    await wait_until_all_delivered(rig.bridge.runtime, WAIT)
    assert await tally(rig) == before
    calls = rig.bitrix.snapshot()["stats"]["calls"]
    assert calls["event.offline.get"] - calls_before["event.offline.get"] >= POLLS
    history = [s for s in rig.crm.requests_by_route if "history" in s]
    assert history and all(
        rig.crm.requests_by_route[s] - crm_before.get(s, 0) >= POLLS for s in history
    )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A started bridge with its three sandboxes; every feed polled once, Bitrix's events
    bound, so what a test does next is news."""
    bridge, stop = await start_bonus(tmp_path / "bridge.yaml", bitrix_mirroring_config(tmp_path))
    try:
        rig = Rig(bridge)
        await first_polls(bridge.runtime.store, WAIT)

        async def bound() -> bool:  # the connector binds its offline events on its first poll
            events = {b["event"] for b in rig.bitrix.snapshot()["bindings"]}
            return {"ONCRMDEALADD", "ONCRMDEALUPDATE", "ONCRMCONTACTADD"} <= events

        await eventually(bound, WAIT)
        yield rig
    finally:
        await stop()


def site_order(rig: Rig, contact: int | None = None, **fields: Any) -> int:
    """A deal made on the portal (as the site or a manager does: events are queued)."""
    values: dict[str, Any] = {
        "TITLE": "Заказ с сайта №501",
        "STAGE_ID": "NEW",
        "OPPORTUNITY": "2490.50",
        "CURRENCY_ID": "RUB",
        "COMMENTS": "Позвонить за час до доставки",
        "SOURCE_ID": "STORE",
    }
    if contact is not None:
        values["CONTACT_ID"] = contact
    return rig.bitrix.admin.edit("deal", values | fields)


def onec_customers(rig: Rig) -> dict[str, Any]:
    found = rig.onec.ledger.snapshot()["customers"]
    assert isinstance(found, dict)
    return found


def crm_copies(rig: Rig, deal: int) -> list[dict[str, Any]]:
    return [o for o in rig.crm_orders() if o.get("externalId") == f"bitrix-{deal}"]


def onec_copies(rig: Rig, deal: int) -> list[str]:
    """1C's orders of the deal: saved under its key, or carrying its number from the site
    (a RetailCRM change of the order is saved under the same key, with RetailCRM's view)."""
    return [
        key
        for key, (_n, _v, document) in rig.onec_orders().items()
        if key == f"bitrix-{deal}"
        or (document.get("source") == "bitrix" and document.get("number") == str(deal))
    ]


async def test_a_site_order_reaches_1c_and_retailcrm_once_and_its_1c_status_comes_back(
    rig: Rig,
) -> None:
    start = await tally(rig)
    deal = site_order(rig)
    key = f"bitrix-{deal}"

    # (a) The deal reaches 1C and RetailCRM, translated, exactly once each.
    async def arrived() -> bool:
        return bool(key in rig.onec_orders() and crm_copies(rig, deal))

    await eventually(arrived, WAIT)
    after_a = await settled_tally(rig)
    _number, version, document = rig.onec_orders()[key]
    assert version == 1
    assert (document["status"], document["total"], document["source"]) == (
        "Новый",
        "2490.50",
        "bitrix",
    )
    assert document["comment"] == "Позвонить за час до доставки"
    [order] = crm_copies(rig, deal)
    assert (order["status"], order["number"], order["totalSumm"]) == ("new", str(deal), 2490.5)
    assert order["customerComment"] == "Позвонить за час до доставки"
    assert onec_copies(rig, deal) == [key]
    store = rig.bridge.runtime.store
    crm_id = str(order["id"])
    assert await store.lookup_id("order", "bitrix", str(deal), "retailcrm") == crm_id
    assert await store.lookup_id("order", "bitrix", str(deal), "onec") == key
    # One write each: SaveOrder in 1C, the order created in RetailCRM (nothing else of it
    # changed there by the bridge), and nothing into Bitrix, where the order came from.
    assert after_a.onec_saves - start.onec_saves == Counter({f"order {key}": 1})
    assert after_a.writes()[2] - start.writes()[2] == 1
    assert after_a.crm_history - start.crm_history == Counter({f"order {crm_id} created": 1})
    assert after_a.bitrix_writes == start.bitrix_writes
    assert after_a.copies == (
        start.copies[0] + 1,  # the deal itself
        start.copies[1],
        start.copies[2] + 1,
        start.copies[3],
        start.copies[4] + 1,
    )

    # (b) 1C completes it: the deal is won and RetailCRM's copy complete, no new copy.
    rig.onec.ledger.change_order(key, status="Выполнен")

    async def back() -> bool:
        won = rig.deals()[deal]["STAGE_ID"] == "WON"
        return bool(won and crm_copies(rig, deal)[0]["status"] == "complete")

    await eventually(back, WAIT)
    after_b = await settled_tally(rig)
    assert after_b.copies == after_a.copies
    assert crm_copies(rig, deal)[0]["id"] == order["id"]  # the same RetailCRM order, edited
    assert onec_copies(rig, deal) == [key]
    assert after_b.bitrix_writes - after_a.bitrix_writes == Counter({"crm.item.update": 1})
    # RetailCRM's copy edited once, its status only: the number and date 1C writes back
    # are the ones it was created with.
    assert after_b.writes()[1] - after_a.writes()[1] == 1, after_b.crm_posts
    assert after_b.crm_history - after_a.crm_history == Counter({f"order {crm_id} status": 1})
    assert after_b.onec_saves == after_a.onec_saves  # 1C's own change goes nowhere back
    deal_now = rig.deals()[deal]
    assert (deal_now["TITLE"], str(deal_now["OPPORTUNITY"])) == ("Заказ с сайта №501", "2490.50")

    # (c) No echoes: polls of every source find nothing, so nothing is written anywhere.
    await assert_polling_writes_nothing(rig, after_b)


async def test_a_retailcrm_status_of_a_site_order_moves_its_deal_and_nothing_is_copied(
    rig: Rig,
) -> None:
    deal = site_order(rig)
    await until(lambda: crm_copies(rig, deal) and f"bitrix-{deal}" in rig.onec_orders(), WAIT)
    [order] = crm_copies(rig, deal)
    before = await settled_tally(rig)
    # A manager in RetailCRM has the site order assembled: the deal follows.
    change = {"id": order["id"], "status": "assembling"}
    await rig.manager(lambda c: c.order_edit(change, "id", "shop"))
    await until(lambda: rig.deals()[deal]["STAGE_ID"] == "EXECUTING", WAIT)
    # The same change's way to 1C has run too (see the xfails below); dead ones allowed.
    await wait_until_none_active(rig.bridge.runtime, WAIT)
    after = await tally(rig)
    assert after.copies == before.copies  # no new deal, RetailCRM order or 1C order
    assert after.bitrix_writes - before.bitrix_writes == Counter({"crm.item.update": 1})
    assert after.crm_history == before.crm_history  # nothing written back into RetailCRM
    assert onec_copies(rig, deal) == [f"bitrix-{deal}"]
    assert rig.deals()[deal]["TITLE"] == "Заказ с сайта №501"  # the stage alone changed


async def test_a_site_contact_becomes_one_customer_in_1c_and_in_retailcrm(rig: Rig) -> None:
    start = await tally(rig)
    onec_people = len(onec_customers(rig))
    # (d) One contact with a phone both systems already have (Мария, +79000000002, written
    # another way), one with a new phone.
    known = rig.bitrix.admin.edit(
        "contact",
        {
            "NAME": "Мария",
            "LAST_NAME": "Смирнова",
            "PHONE": [{"VALUE": "8 (900) 000-00-02", "VALUE_TYPE": "MOBILE"}],
        },
    )
    new = rig.bitrix.admin.edit(
        "contact",
        {
            "NAME": "Анна",
            "SECOND_NAME": "Петровна",
            "LAST_NAME": "Сайтова",
            "PHONE": [{"VALUE": "+7 900 555-20-01", "VALUE_TYPE": "MOBILE"}],
            "EMAIL": [{"VALUE": "anna@example.ru", "VALUE_TYPE": "WORK"}],
        },
    )
    store = rig.bridge.runtime.store

    async def both_mapped() -> bool:
        pairs = [
            await store.lookup_id("customer", "bitrix", str(contact), target)
            for contact in (known, new)
            for target in ("onec", "retailcrm")
        ]
        return all(pairs)

    await eventually(both_mapped, WAIT)
    after = await settled_tally(rig)

    ledger = rig.onec.ledger
    maria = ledger.find_customer(phone="+79000000002")
    anna = ledger.find_customer(phone="+79005552001")
    assert await store.lookup_id("customer", "bitrix", str(known), "onec") == maria.customer_id
    assert await store.lookup_id("customer", "bitrix", str(new), "onec") == anna.customer_id
    assert maria.card == "2000000000022"  # the seeded customer, matched by phone: card kept
    assert anna.name == "Анна Сайтова"
    assert len(onec_customers(rig)) == onec_people + 1  # Анна only

    def by_phone(digits: str) -> list[dict[str, Any]]:
        return [
            c
            for c in rig.crm_customers()
            if any(digits in p.get("number", "") for p in c.get("phones", []))
        ]

    [crm_maria] = by_phone("9000000002")
    [crm_anna] = by_phone("9005552001")
    assert crm_maria["externalId"] == "c-2"  # RetailCRM's own customer, its key kept
    assert crm_anna["externalId"] == f"bitrix-{new}"
    assert (crm_anna["firstName"], crm_anna["lastName"], crm_anna["patronymic"]) == (
        "Анна",
        "Сайтова",
        "Петровна",
    )
    assert crm_anna["phones"] == [{"number": "+79005552001"}]
    assert after.copies[3] == start.copies[3] + 1  # one new RetailCRM customer: Анна
    assert after.onec_saves - start.onec_saves == Counter(
        {f"customer {maria.customer_id}": 1, f"customer {anna.customer_id}": 1}
    )
    assert after.bitrix_writes == start.bitrix_writes  # nothing back into the contacts
    await assert_polling_writes_nothing(rig, after)


async def test_orders_the_site_does_not_have_do_not_become_deals(rig: Rig) -> None:
    before = await tally(rig)
    rig.onec.ledger.enter_order(
        document={
            "number": "T-77",
            "status": "Новый",
            "total": "300.00",
            "customer": {"phone": "+79000000001"},
            "items": [{"sku": "SKU-1", "name": "Кофе", "quantity": 1, "price": "300.00"}],
        },
        status=None,
    )
    call_centre = {
        "number": "CC-1",
        "status": "new",
        "customer": {"externalId": "c-1"},
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 500}],
    }
    created = await rig.manager(lambda c: c.order_create(call_centre, "shop"))

    async def mirrored() -> bool:  # each reached the other of 1C and RetailCRM
        numbers = {o.get("number") for o in rig.crm_orders()}
        return "T-77" in numbers and f"retailcrm-{created['id']}" in rig.onec_orders()

    await eventually(mirrored, WAIT)
    after = await settled_tally(rig)
    assert after.copies[0] == before.copies[0]  # no deal
    assert after.bitrix_writes == before.bitrix_writes
    events = await rig.bridge.runtime.store.list_events(EventFilter(limit=100))
    notes = []
    for event in events:
        if event.entity != "order" or event.source == "bitrix":
            continue
        detail = await rig.bridge.runtime.store.get_event(event.id)
        targets = {d.id: d.target for d in detail.deliveries}
        notes += [
            h.message
            for h in detail.history
            if h.kind == "attempt" and targets.get(h.delivery_id or "") == "bitrix"
        ]
    assert len(notes) >= 2, notes
    assert all(n and "only_deals_bitrix_holds" in n for n in notes), notes


async def test_a_retailcrm_status_of_a_site_order_reaches_1c_s_copy(rig: Rig) -> None:
    deal = site_order(rig)
    key = f"bitrix-{deal}"
    await until(lambda: crm_copies(rig, deal) and key in rig.onec_orders(), WAIT)
    [order] = crm_copies(rig, deal)
    change = {"id": order["id"], "status": "assembling"}
    await rig.manager(lambda c: c.order_edit(change, "id", "shop"))
    await until(lambda: rig.deals()[deal]["STAGE_ID"] == "EXECUTING", WAIT)
    await wait_until_all_delivered(rig.bridge.runtime, WAIT)  # fails on a dead delivery
    assert rig.onec_orders()[key][2]["status"] == "В сборке"
    assert onec_copies(rig, deal) == [key]
    assert not [k for k in rig.onec_orders() if k == f"retailcrm-{order['id']}"]


async def test_a_site_order_with_catalogue_lines_keeps_one_copy_in_1c(rig: Rig) -> None:
    deal = site_order(rig)
    key = f"bitrix-{deal}"
    await until(lambda: crm_copies(rig, deal) and key in rig.onec_orders(), WAIT)
    [order] = crm_copies(rig, deal)
    # A manager in RetailCRM puts the catalogue's goods on the order and confirms it.
    lines = [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 2490.5}]
    change = {"id": order["id"], "items": lines, "status": "availability-confirmed"}
    await rig.manager(lambda c: c.order_edit(change, "id", "shop"))
    await until(lambda: rig.deals()[deal]["STAGE_ID"] == "PREPARATION", WAIT)
    await wait_until_all_delivered(rig.bridge.runtime, WAIT)
    copies = [k for k, (_n, _v, d) in rig.onec_orders().items() if d.get("total") == "2490.50"]
    assert copies == [key], copies


async def test_a_site_order_carries_its_contacts_phone_and_name(rig: Rig) -> None:
    """The deal is read with its contact, so 1C's order names the buyer's phone (1C matches
    its customer by it) and RetailCRM's order the buyer's name and phone."""
    person = rig.bitrix.admin.edit(
        "contact",
        {"NAME": "Ольга", "LAST_NAME": "Иванова", "PHONE": [{"VALUE": "8 (900) 000-00-03"}]},
    )
    deal = site_order(rig, contact=person)
    key = f"bitrix-{deal}"
    await until(lambda: crm_copies(rig, deal) and key in rig.onec_orders())
    document = rig.onec_orders()[key][2]
    assert (document["customer"]["phone"], document["customer"]["name"]) == (
        "+79000000003",
        "Ольга Иванова",
    )
    [order] = crm_copies(rig, deal)
    assert (order["firstName"], order["lastName"], order["phone"]) == (
        "Ольга",
        "Иванова",
        "+79000000003",
    )
