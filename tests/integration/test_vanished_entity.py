"""A change of an entity its source no longer holds is not mapped from the change's own
fragment: the delivery is done without a write, and its history says the source has no such
entity. A replay of it says the same, instead of claiming a filter let it pass or stopped it."""

from __future__ import annotations

from bridge.store.records import EventFilter
from tests.integration.test_bitrix_mirroring import WAIT, Rig, crm_copies, rig, site_order
from tests.support.mirroring import wait_until_none_active
from tests.support.waiting import eventually

__all__ = ["rig"]  # the fixture, used by name


async def test_a_replay_of_a_deleted_site_order_says_the_source_has_none(rig: Rig) -> None:
    deal = site_order(rig)

    async def copied() -> bool:
        return bool(crm_copies(rig, deal))

    await eventually(copied, WAIT)
    runtime = rig.bridge.runtime
    await wait_until_none_active(runtime, WAIT)
    store = runtime.store
    events = await store.list_events(EventFilter(source="bitrix", limit=50))
    [first] = [e for e in events if e.entity == "order" and e.entity_id == str(deal)][-1:]
    assert {"onec", "retailcrm"} <= set(first.targets)
    before = len(rig.crm_orders())

    rig.bitrix.admin.delete("deal", deal)  # a manager deletes the deal on the portal
    await store.replay([first.id], None, "test", dry_run=False)
    assert runtime.dispatcher is not None
    for target in ("onec", "retailcrm"):
        runtime.dispatcher.wake(target)

    async def replayed_and_settled() -> list[str]:
        detail = await store.get_event(first.id)
        messages = [h.message or "" for h in detail.history if h.kind == "attempt"]
        found = [m for m in messages if "source entity not found" in m]
        return found if len(found) >= 2 else []  # one per target: 1C and RetailCRM

    messages = await eventually(replayed_and_settled, WAIT)
    assert all(f"bitrix has no order {deal}" in m for m in messages), messages
    assert not any("filters[" in m for m in messages)
    assert len(rig.crm_orders()) == before  # nothing created from the change's fragment
