"""RetailCRM ⇄ 1C order mirroring through the shipped mapping files, over the wire (issue 6).

The bridge runs with both sandbox emulators, both pollers and the routes of the shipped
`mappings/`. An order a manager creates in RetailCRM appears in 1C translated; a status
change made in 1C flows back to that same RetailCRM order; each system keeps one copy.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bridge.store.records import EventFilter
from tests.support.bonus import BonusFactory, bonus_factory
from tests.support.emulators import onec_emulator
from tests.support.mirroring import (
    create_order,
    crm_call,
    edit_order,
    mirroring_config,
    retry_onec_soon,
    shipped_route,
)
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name


async def test_an_order_goes_to_1c_and_its_status_comes_back_one_copy_each(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = onec_emulator(bonus.runtime)
    store = bonus.runtime.store
    # On its first start the RetailCRM poller walks past the history it finds; wait for
    # that, so the order below is news.
    await eventually(lambda: store.get_cursor("retailcrm", "orders"))
    order = {
        "externalId": "site-1001",
        "number": "1001A",
        "status": "new",
        "customer": {"externalId": "c-1"},
        "phone": "+7 900 000-00-01",
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 2, "initialPrice": 1500}],
    }
    created = await crm_call(bonus, lambda c: c.order_create(order, "shop"))
    crm_id = str(created["id"])
    key = f"retailcrm-{crm_id}"

    async def in_1c() -> Any:
        return onec.ledger.snapshot()["orders"].get(key)

    _number, _version, document = await eventually(in_1c)
    assert await eventually(lambda: store.lookup_id("order", "retailcrm", crm_id, "onec")) == key
    assert (document["status"], document["number"], document["source"]) == (
        "Новый",
        "1001A",
        "retailcrm",
    )
    assert document["customer"]["phone"] == "+79000000001"  # the customer's, normalised
    assert document["customer"]["card"] == "2000000000015"
    assert document["total"] == "3000.00"
    assert [(i["sku"], i["quantity"], i["price"]) for i in document["items"]] == [
        ("SKU-1", 2, "1500.00")
    ]

    # A manager in 1C marks it done: the status flows back to the same RetailCRM order.
    onec.ledger.change_order(key, status="Выполнен")

    async def back_in_crm() -> Any:
        answer = await crm_call(bonus, lambda c: c.order(crm_id, "id", "shop"))
        return answer["order"] if answer["order"]["status"] == "complete" else None

    back = await eventually(back_in_crm)
    assert back["externalId"] == "site-1001"  # the site's own key is kept
    listed = await crm_call(bonus, lambda c: c.orders({}, 100, 1))
    assert [o["id"] for o in listed["orders"] if o.get("number") == "1001A"] == [int(crm_id)]
    copies = [
        k
        for k, (_n, _v, d) in onec.ledger.snapshot()["orders"].items()
        if d.get("number") == "1001A"
    ]
    assert copies == [key]  # one copy in 1C

    # Nothing changes any more: the pollers run on and no write comes back (no echo).
    await asyncio.sleep(1.5)
    versions = {k: v for k, (_n, v, _d) in onec.ledger.snapshot()["orders"].items()}
    await asyncio.sleep(1.5)
    assert {k: v for k, (_n, v, _d) in onec.ledger.snapshot()["orders"].items()} == versions


async def test_ten_changes_while_1c_is_down_become_one_write_of_the_final_state(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = retry_onec_soon(mirroring_config(tmp_path), max_attempts=100)
    bonus = await bonus_factory("onec", config=config)
    onec = onec_emulator(bonus.runtime)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    onec.faults.set(outage=True)
    order = {
        "externalId": "site-2002",
        "number": "2002A",
        "status": "new",
        "customer": {"externalId": "c-1"},
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 100}],
    }
    created = await crm_call(bonus, lambda c: c.order_create(order, "shop"))
    crm_id = created["id"]

    async def failing() -> Any:  # the first change's delivery has tried 1C and failed
        events = await bonus.runtime.store.list_events(EventFilter(source="retailcrm"))
        return [e for e in events if e.entity == "order" and e.status == "retry"]

    await eventually(failing)
    for n in range(2, 11):  # nine more changes while it waits to retry
        change = {"id": crm_id, "customerComment": f"change {n}"}
        await crm_call(bonus, edit_order(change))
    await asyncio.sleep(1.5)  # the pollers pick the changes up; the 1C deliveries fail
    assert onec.ledger.snapshot()["orders"] == {}
    onec.faults.set(outage=False)
    key = f"retailcrm-{crm_id}"

    async def written() -> Any:
        return onec.ledger.snapshot()["orders"].get(key)

    _number, version, document = await eventually(written)
    assert document["comment"] == "change 10"  # the final state
    await asyncio.sleep(2)  # every delivery has run by now
    _number, version, document = onec.ledger.snapshot()["orders"][key]
    assert version == 1, "one write into 1C"
    events = await bonus.runtime.store.list_events(EventFilter(source="retailcrm", limit=100))
    order_events = [e for e in events if e.entity == "order"]
    assert order_events and all(e.status == "done" for e in order_events)
    deliveries: dict[str, list[str | None]] = {}
    for event in order_events:
        detail = await bonus.runtime.store.get_event(event.id)
        for h in detail.history:
            if h.kind == "attempt" and h.outcome == "done" and h.delivery_id:
                deliveries.setdefault(h.delivery_id, []).append(h.message)
    # The changes rode in more than one delivery (one was already failing when the rest
    # came); the later ones found the final state already written and wrote nothing.
    assert len(deliveries) >= 2, deliveries
    notes = [m for messages in deliveries.values() for m in messages]
    assert notes.count(None) == 1, notes
    assert all(n in (None, "skipped: unchanged since the last write") for n in notes), notes


async def test_a_1c_customer_already_in_retailcrm_by_phone_is_not_created_twice(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = mirroring_config(tmp_path)
    config["mirror"]["routes"].append(shipped_route("onec", "customer", "retailcrm"))
    bonus = await bonus_factory("onec", config=config)
    onec = onec_emulator(bonus.runtime)
    await eventually(lambda: bonus.runtime.store.get_cursor("onec", "changes"))
    seeded = onec.ledger.find_customer(phone="+79000000001")
    onec.ledger.change_customer(seeded.customer_id, card="2000000000099")

    async def carded() -> Any:
        answer = await crm_call(bonus, lambda c: c.customers({"name": "9000000001"}, 20, 1))
        mine = [c for c in answer["customers"] if c.get("discountCardNumber") == "2000000000099"]
        return answer["customers"] if mine else None

    customers = await eventually(carded)
    same_phone = [
        c for c in customers if any("9000000001" in p["number"] for p in c.get("phones", []))
    ]
    assert len(same_phone) == 1, same_phone  # the seeded c-1, edited; not a second one
    assert same_phone[0]["externalId"] == "c-1"  # the site's own key is kept

    # The id map knows the pair, so RetailCRM's id now finds the customer's 1C balance.
    crm_id = str(same_phone[0]["id"])
    store = bonus.runtime.store
    mapped = await eventually(
        lambda: store.lookup_id("customer", "onec", seeded.customer_id, "retailcrm")
    )
    assert mapped == crm_id
    status, balance = await bonus.balance({"customer": {"system": "retailcrm", "id": crm_id}})
    assert (status, balance["master"], balance["balance"]) == (200, "onec", "1000.00")

    # The phone changes in 1C: the id map leads to the same RetailCRM customer, no new one.
    onec.ledger.change_customer(seeded.customer_id, phone="+79000000077")

    async def rephoned() -> Any:
        answer = await crm_call(bonus, lambda c: c.customer(crm_id, "id", "shop"))
        phones = [p["number"] for p in answer["customer"].get("phones", [])]
        return phones if any("9000000077" in n for n in phones) else None

    await eventually(rephoned)
    everyone = await crm_call(bonus, lambda c: c.customers({}, 100, 1))
    assert not [
        c for c in everyone["customers"] if str(c.get("externalId", "")).startswith("onec-")
    ]


async def test_order_statuses_commit_and_release_their_reservations(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = mirroring_config(tmp_path)
    config["bonus"]["order_statuses"] = {
        "retailcrm": {"commit": ["complete"], "release": ["cancel-other"]},
        "onec": {"commit": ["Выполнен"]},
    }
    bonus = await bonus_factory("onec", config=config)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    ids = []
    for number in ("3001A", "3002A", "3003A"):
        order = {
            "number": number,
            "status": "new",
            "customer": {"externalId": "c-1"},
            "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 500}],
        }
        ids.append((await crm_call(bonus, create_order(order)))["id"])
    reservations = []
    for crm_id in ids:
        body = {
            "customer": {"phone": "+79000000001"},
            "amount": "100.00",
            "order": {"system": "retailcrm", "id": str(crm_id)},
        }
        status, rsv = await bonus.call("POST", "/api/v1/bonus/reservations", body)
        assert status == 201, rsv
        _, sms = await bonus.call("GET", "/sandbox/messages?limit=1")
        code = next(w for w in sms["messages"][0]["text"].replace(":", " ").split() if w.isdigit())
        status, held = await bonus.call(
            "POST", f"/api/v1/bonus/reservations/{rsv['id']}/confirm", {"code": code}
        )
        assert held["status"] == "held", held
        reservations.append(rsv["id"])

    # The site completes the first order and cancels the second, in RetailCRM; the third
    # is completed in 1C (where it was mirrored as retailcrm-<id>).
    for crm_id, status_code in zip(ids[:2], ("complete", "cancel-other"), strict=True):
        change = {"id": crm_id, "status": status_code}
        await crm_call(bonus, edit_order(change))
    onec = onec_emulator(bonus.runtime)
    key = f"retailcrm-{ids[2]}"

    async def in_1c() -> Any:
        return onec.ledger.snapshot()["orders"].get(key)

    await eventually(in_1c)
    onec.ledger.change_order(key, status="Выполнен")

    async def moved() -> Any:
        found = [
            (await bonus.call("GET", f"/api/v1/bonus/reservations/{r}"))[1]["status"]
            for r in reservations
        ]
        return found if found == ["committed", "released", "committed"] else None

    await eventually(moved)
    status, balance = await bonus.balance({"customer": {"phone": "+79000000001"}})
    assert balance["balance"] == "800.00"  # the two committed 100s; the released came back


async def test_several_write_backs_at_once_edit_the_orders_and_create_none(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    onec = onec_emulator(bonus.runtime)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    ids = []
    for n in range(3):
        order = {
            "number": f"40{n}A",
            "status": "new",
            "customer": {"externalId": "c-1"},
            "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 100}],
        }
        ids.append((await crm_call(bonus, create_order(order)))["id"])

    async def all_in_1c() -> Any:
        orders = onec.ledger.snapshot()["orders"]
        return all(f"retailcrm-{i}" in orders for i in ids)

    await eventually(all_in_1c)
    before = await crm_call(bonus, lambda c: c.orders({}, 100, 1))
    for i in ids:  # three statuses changed in 1C within one poll: one batch back
        onec.ledger.change_order(f"retailcrm-{i}", status="Выполнен")

    async def all_complete() -> Any:
        listed = await crm_call(bonus, lambda c: c.orders({}, 100, 1))
        mine = [o for o in listed["orders"] if o["id"] in ids]
        return listed if all(o["status"] == "complete" for o in mine) else None

    after = await eventually(all_complete)
    assert len(after["orders"]) == len(before["orders"])  # edited, none created
