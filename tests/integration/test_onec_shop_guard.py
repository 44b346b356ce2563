"""A 1C push for an order 1C's GetOrder does not know creates nothing (issue 12, point 3).

The committed routes over the three sandboxes. 1C pushes ``doc-78`` for order 78, which its
``GetOrder`` answers ``unknown_order``: the bridge has only the push's own data
(``{"status": "Новый"}``, no id) to map. config.yaml promises that only the site's own
orders go back to the site, and an order 1C does not hold is no order to mirror anywhere:
no Bitrix deal ``onec-78``, no RetailCRM order; each delivery is done with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.store.records import EventFilter
from tests.integration.test_bitrix_mirroring import WAIT, Rig, bitrix_mirroring_config
from tests.support.bonus import start_bonus
from tests.support.mirroring import first_polls, wait_until_all_delivered
from tests.support.waiting import eventually

HOOK_TOKEN = "sandbox-onec-hook-token"
DOC_78 = {"event_id": "doc-78-v1", "entity": "order", "id": "78", "data": {"status": "Новый"}}


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The committed routes, and 1C's webhook as config.yaml has it."""
    config = bitrix_mirroring_config(tmp_path)
    config["systems"]["onec"]["webhook"] = {"auth": "bearer", "token": HOOK_TOKEN}
    bridge, stop = await start_bonus(tmp_path / "bridge.yaml", config)
    try:
        await first_polls(bridge.runtime.store, WAIT)
        yield Rig(bridge)
    finally:
        await stop()


async def test_a_push_for_an_order_1c_does_not_know_creates_no_deal_and_no_order(
    rig: Rig,
) -> None:
    deals, orders = len(rig.deals()), len(rig.crm_orders())
    headers = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    status, body = await rig.bridge.call("POST", "/hooks/onec", DOC_78, headers)
    assert status == 202, body
    store = rig.bridge.runtime.store

    async def tried() -> bool:
        detail = await store.get_event(body["event_id"])
        return bool(detail.deliveries) and all(d.status == "done" for d in detail.deliveries)

    await eventually(tried, WAIT)
    await wait_until_all_delivered(rig.bridge.runtime, WAIT)
    assert len(rig.deals()) == deals
    assert not [d for d in rig.deals().values() if d.get("ORIGIN_ID") == "onec-78"]
    assert len(rig.crm_orders()) == orders
    assert not [o for o in rig.crm_orders() if o.get("externalId") == "onec-78"]
    detail = await store.get_event(body["event_id"])
    targets = {d.id: d.target for d in detail.deliveries}
    assert set(targets.values()) == {"bitrix", "retailcrm"}
    notes = {
        targets[h.delivery_id or ""]: h.message
        for h in detail.history
        if h.kind == "attempt" and h.delivery_id in targets
    }
    assert all(n and n.startswith("skipped") for n in notes.values()), notes
    # Nothing else was made of it either.
    assert await store.lookup_id("order", "onec", "78", "bitrix") is None
    assert await store.lookup_id("order", "onec", "78", "retailcrm") is None
    events = await store.list_events(EventFilter(limit=10))
    assert [e.source_key for e in events if e.source == "onec"] == ["doc-78-v1"]
