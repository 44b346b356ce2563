"""``bridge backfill``: RetailCRM's existing orders into 1C, over the wire (issue 6).

The orders are seeded into the RetailCRM emulator as history that was there before the
bridge (no change records), so only the backfill can bring them; the daemon's backfiller
lists them page by page and the ordinary pipeline writes them into the 1C emulator.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from pathlib import Path
from typing import Any

from bridge.mirror.backfill import BACKLOG
from bridge.store.backfills import BackfillSpec, BackfillStatus
from bridge.store.records import AttemptOutcome, EventFilter, InboundEvent, NewEvent, Status
from connectors.retailcrm.emulator.history import ORDER
from tests.support.bonus import Bonus, BonusFactory, bonus_factory
from tests.support.emulators import crm_emulator, onec_emulator
from tests.support.mirroring import (
    backfill_done,
    crm_call,
    mirroring_config,
    retry_onec_soon,
    shipped_route,
)
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name

SPEC = BackfillSpec("retailcrm", "order", ("onec",), date(2026, 1, 1))
READ_ONE_ORDER = "GET v5/orders/(?P<ref>[^/]+)"


def seed_orders(bonus: Bonus, count: int, created: str = "2026-03-01 10:00:00") -> list[str]:
    """Orders that were in RetailCRM before the bridge: no history records."""
    state = crm_emulator(bonus.runtime).state
    ids = []
    for n in range(count):
        data = {
            "number": f"H{n}",
            "status": "complete",
            "createdAt": created,
            "customer": {"externalId": "c-1"},
            "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 100 + n}],
        }
        ids.append(str(state.insert(ORDER, data, "shop", None)["id"]))
    return ids


def onec_orders(bonus: Bonus) -> dict[str, tuple[str, int, dict[str, Any]]]:
    orders: dict[str, tuple[str, int, dict[str, Any]]] = onec_emulator(
        bonus.runtime
    ).ledger.snapshot()["orders"]
    return orders


async def test_a_backfill_brings_each_order_since_the_date_once_from_listed_pages(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    crm = crm_emulator(bonus.runtime)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    old = seed_orders(bonus, 5, created="2025-06-01 09:00:00")  # before --since
    ids = seed_orders(bonus, 250)
    reads_before = crm.requests_by_route.get(READ_ONE_ORDER, 0)

    backfill, created = await bonus.runtime.store.open_backfill(SPEC, "test")
    assert created
    again, created = await bonus.runtime.store.open_backfill(SPEC, "test")
    assert (again.id, created) == (backfill.id, False)  # the same command resumes it

    done = await backfill_done(bonus, backfill.id)
    assert (done.listed, done.total, done.finished, done.waiting) == (250, 250, 250, 0)
    orders = onec_orders(bonus)
    assert sorted(k for k in orders if k.startswith("retailcrm-")) == sorted(
        f"retailcrm-{i}" for i in ids
    )
    assert not {f"retailcrm-{i}" for i in old} & set(orders)  # --since kept them out
    assert {v for _n, v, _d in orders.values()} == {1}  # each written once
    assert orders[f"retailcrm-{ids[7]}"][2]["total"] == "107.00"  # mapped like live orders
    # Each order came with its page: RetailCRM was not asked for one order at a time.
    assert crm.requests_by_route.get(READ_ONE_ORDER, 0) == reads_before
    assert crm.requests_by_route["GET v5/orders"] >= 3  # 250 orders in pages of 100


async def test_a_live_change_after_the_listing_wins_over_the_listed_state(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    """The listed state serves instead of a read only while no live change came after the
    listing: here a manager's change is waiting in its own delivery (1C is down) when the
    older listed state arrives behind it, and the listed one must not overwrite it."""
    config = retry_onec_soon(mirroring_config(tmp_path), max_attempts=100)
    bonus = await bonus_factory("onec", config=config)
    store = bonus.runtime.store
    onec = onec_emulator(bonus.runtime)
    await eventually(lambda: store.get_cursor("retailcrm", "orders"))
    [crm_id] = seed_orders(bonus, 1)
    listed_at = time.time()
    stale = (await crm_call(bonus, lambda c: c.order(crm_id, "id", "shop")))["order"]
    onec.faults.set(outage=True)
    change = {"id": int(crm_id), "status": "cancel-other"}
    await crm_call(bonus, lambda c: c.order_edit(change, "id", "shop"))

    async def retrying() -> Any:
        events = await store.list_events(EventFilter(source="retailcrm"))
        return [e for e in events if e.entity_id == crm_id and e.status == "retry"]

    await eventually(retrying)
    listed = InboundEvent(
        "backfill-9:" + crm_id, "order", crm_id, "listed", {"data": stale, "listed_at": listed_at}
    )
    await store.append_events([NewEvent("retailcrm", listed, ("onec",), backfill=9)])
    onec.faults.set(outage=False)

    async def settled() -> Any:
        events = await store.list_events(EventFilter(source="retailcrm"))
        mine = [e for e in events if e.entity_id == crm_id]
        return len(mine) == 2 and all(e.status == "done" for e in mine)

    await eventually(settled)
    _number, _version, document = onec_orders(bonus)[f"retailcrm-{crm_id}"]
    assert document["status"] == "Отменен"  # the manager's change, not the listed state


async def test_a_backfill_pauses_for_its_backlog_and_resumes_after_the_source_fails(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = retry_onec_soon(mirroring_config(tmp_path), max_attempts=1000)
    bonus = await bonus_factory("onec", config=config)
    store = bonus.runtime.store
    crm, onec = crm_emulator(bonus.runtime), onec_emulator(bonus.runtime)
    await eventually(lambda: store.get_cursor("retailcrm", "orders"))
    ids = seed_orders(bonus, 1000)
    onec.faults.set(outage=True)  # nothing is delivered: the backlog fills up
    backfill, _ = await store.open_backfill(SPEC, "test")

    async def paused() -> Any:
        found = await store.get_backfill(backfill.id)
        return found if found.listed >= BACKLOG else None

    await eventually(paused)
    await asyncio.sleep(1)
    held = await store.get_backfill(backfill.id)
    assert held.listed == BACKLOG, "no page is listed while the backlog is full"
    crm.faults.set(http_status=500, count=-1)  # RetailCRM breaks before the next page
    onec.faults.set(outage=False)

    async def stalled() -> Any:
        found = await store.get_backfill(backfill.id)
        return found if found.error else None

    stuck = await eventually(stalled, seconds=30)
    assert stuck.status is BackfillStatus.LISTING and "500" in stuck.error
    crm.faults.set()  # and recovers
    done = await backfill_done(bonus, backfill.id, seconds=60)
    assert (done.listed, done.finished, done.error) == (1000, 1000, None)
    orders = onec_orders(bonus)
    assert sorted(k for k in orders if k.startswith("retailcrm-")) == sorted(
        f"retailcrm-{i}" for i in ids
    )
    assert {v for _n, v, _d in orders.values()} == {1}


async def test_live_deliveries_are_claimed_before_backfilled_ones(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = mirroring_config(tmp_path)
    config["mirror"]["routes"] = []  # no dispatcher lanes: the claims are ours to make
    bonus = await bonus_factory("onec", config=config)
    store = bonus.runtime.store
    backfill, _ = await store.open_backfill(SPEC, "test")
    listed = [
        NewEvent(
            "retailcrm",
            InboundEvent(f"backfill-x:{n}", "order", str(n), "listed", {"data": {"id": n}}),
            ("onec",),
            backfill=int(backfill.id.removeprefix("bf_")),
        )
        for n in range(5)
    ]
    await store.append_listed(backfill.id, listed, "2", 5)
    live = NewEvent("retailcrm", InboundEvent("live-1", "order", "99"), ("onec",))
    joined = NewEvent("retailcrm", InboundEvent("live-2", "order", "3"), ("onec",))
    await store.append_events([live, joined])
    claimed = await store.claim_due("onec", "test", 3)
    # The live change first; a live change joining a backfilled delivery lifts it too.
    assert [c.delivery.entity_id for c in claimed] == ["3", "99", "0"]

    # A backfilled delivery already tried (due again) and a live change of its entity: the
    # live one must wait behind it (per-entity order), so it is lifted as well.
    for c in claimed:
        await store.finish_attempt(c, "test", AttemptOutcome(Status.DONE))
    [tried] = await store.claim_due("onec", "test", 1)
    assert tried.delivery.entity_id == "1"
    await store.finish_attempt(tried, "test", AttemptOutcome(Status.RETRY, time.time()))
    more = [NewEvent("retailcrm", InboundEvent(f"later-{n}", "order", n), ("onec",)) for n in "1ab"]
    await store.append_events(more)
    claimed = await store.claim_due("onec", "test", 2)
    assert [c.delivery.entity_id for c in claimed] == ["1", "a"]


async def test_customers_are_backfilled_too(bonus_factory: BonusFactory, tmp_path: Path) -> None:
    config = mirroring_config(tmp_path)
    config["mirror"]["routes"].append(shipped_route("retailcrm", "customer", "onec"))
    bonus = await bonus_factory("onec", config=config)
    spec = BackfillSpec("retailcrm", "customer", ("onec",))
    backfill, _ = await bonus.runtime.store.open_backfill(spec, "test")
    done = await backfill_done(bonus, backfill.id)
    assert (done.listed, done.total, done.finished) == (3, 3, 3)  # the sandbox's three
    for crm_id in ("101", "102", "103"):
        assert await bonus.runtime.store.lookup_id("customer", "retailcrm", crm_id, "onec")
