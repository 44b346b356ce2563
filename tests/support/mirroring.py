"""Mirroring between the sandboxes, over the wire: configs with the shipped routes, calls as
a RetailCRM manager, the emulators' own records of what the bridge wrote, and waiting until
the bridge's deliveries have settled."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import retailcrm

from bridge.runtime import Runtime
from bridge.store.backfills import Backfill, BackfillStatus
from bridge.store.protocol import Store
from bridge.store.records import ACTIVE
from connectors.onec.contract import ORIGIN_BRIDGE
from connectors.onec.emulator import OnecEmulator
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.emulator.history import HistoryRecord
from tests.support.bonus import Bonus, bonus_config
from tests.support.waiting import eventually

T = TypeVar("T")

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
BRIDGE_KEY = "sandbox-bridge-key-0001"  # the bridge's RetailCRM key (bonus_config)
MANAGER_KEY = "sandbox-manager-key-0001"  # a RetailCRM user other than the bridge
# Every feed of both sources: RetailCRM's histories and bonus operations, 1C's change feed.
FEEDS = (
    ("retailcrm", "orders"),
    ("retailcrm", "customers"),
    ("retailcrm", "bonus_operations"),
    ("onec", "changes"),
)


def shipped_route(source: str, entity: str, target: str) -> dict[str, Any]:
    """A route through the shipped ``mappings/<source>_<entity>_to_<target>.yaml``."""
    return {
        "source": source,
        "entity": entity,
        "targets": [target],
        "mapping": str(MAPPINGS / f"{source}_{entity}_to_{target}.yaml"),
    }


def mirroring_config(tmp_path: Path) -> dict[str, Any]:
    """Both sandboxes (1C the bonus master), both polled every 0.2 s, and orders mirrored
    both ways between RetailCRM and 1C through the shipped mappings."""
    config = bonus_config(tmp_path, "onec")
    for name in ("onec", "retailcrm"):
        config["systems"][name]["options"]["poll_interval"] = 0.2
    config["mirror"] = {
        "routes": [
            shipped_route("retailcrm", "order", "onec"),
            shipped_route("onec", "order", "retailcrm"),
        ]
    }
    return config


def retry_onec_soon(config: dict[str, Any], max_attempts: int) -> dict[str, Any]:
    """``config`` with 1C's deliveries timed out after 1 s and retried every 0.2–0.5 s."""
    config["systems"]["onec"]["delivery"] = {
        "timeout_seconds": 1,
        "retry": {"base_seconds": 0.2, "cap_seconds": 0.5, "max_attempts": max_attempts},
    }
    return config


async def manager_call(crm_url: str, call: Callable[[Any], Any]) -> dict[str, Any]:
    """One call with the official client, as a RetailCRM manager."""
    client = retailcrm.v5(crm_url, MANAGER_KEY)
    answer: dict[str, Any] = await asyncio.to_thread(lambda: call(client).get_response())
    assert answer.get("success"), answer
    return answer


def create_order(order: dict[str, Any]) -> Callable[[Any], Any]:
    """The official client's order create on the shop's site, as a call for ``crm_call``."""
    return lambda client: client.order_create(order, "shop")


def edit_order(change: dict[str, Any]) -> Callable[[Any], Any]:
    """An order edit by internal id, as a call for ``crm_call``."""
    return lambda client: client.order_edit(change, "id", "shop")


def read_order(order_id: object) -> Callable[[Any], Any]:
    """An order read by internal id, as a call for ``crm_call``."""
    return lambda client: client.order(order_id, "id", "shop")


async def crm_call(bonus: Bonus, call: Callable[[Any], Any]) -> dict[str, Any]:
    """One call to the bridge's RetailCRM sandbox, as a RetailCRM manager."""
    return await manager_call(bonus.runtime.emulators["retailcrm"].url, call)


async def first_polls(store: Store, seconds: float = 15) -> None:
    """Wait until every feed of both sources has been polled once. On its first start the
    RetailCRM poller walks past the history it finds: after this, what a test does is news."""
    for source, feed in FEEDS:
        await eventually(partial(store.get_cursor, source, feed), seconds)


def bridge_history(crm: RetailcrmEmulator) -> Iterator[tuple[str, HistoryRecord]]:
    """(kind, record) of every RetailCRM history record made with the bridge's key."""
    for kind, feed in crm.state.feeds.items():
        for record in feed.records:
            if record.change.api_key == BRIDGE_KEY:
                yield kind, record


def bridge_saves(onec: OnecEmulator) -> Counter[str]:
    """ "<entity> <id>" → 1C's change log entries of origin bridge (one per SaveOrder or
    SaveCustomer it served)."""
    changes = onec.ledger.get_changes(0, 1000)
    assert not changes.more
    return Counter(f"{c.entity} {c.id}" for c in changes.items if c.origin == ORIGIN_BRIDGE)


async def wait_until_all_delivered(runtime: Runtime, seconds: float = 15) -> None:
    """Wait until no delivery is pending, in flight or due for a retry; fails on a dead one."""

    async def nothing_waits() -> bool:
        depth = await runtime.store.queue_depth()
        assert not [d for d in depth if d.count and d.status not in ACTIVE], depth  # dead
        return not [d for d in depth if d.count and d.status in ACTIVE]

    await eventually(nothing_waits, seconds)


async def wait_until_none_active(runtime: Runtime, seconds: float = 15) -> None:
    """Wait until no delivery is pending, in flight or due for a retry (dead ones allowed)."""

    async def nothing_waits() -> bool:
        depth = await runtime.store.queue_depth()
        return not [d for d in depth if d.count and d.status in ACTIVE]

    await eventually(nothing_waits, seconds)


async def poll_every_feed(runtime: Runtime, seconds: float = 15) -> None:
    """One direct poll of every feed of every source (beside the pollers' own loops), then
    wait until whatever it stored has been delivered (no dead delivery)."""
    assert runtime.poller is not None
    for name, source in runtime.connectors.sources().items():
        for feed in source.feeds:
            while await runtime.poller.poll_once(name, source, feed):
                pass
    await wait_until_all_delivered(runtime, seconds)


async def settled(runtime: Runtime, count: Callable[[], Awaitable[T]], seconds: float = 15) -> T:
    """What ``count`` finds once a poll of every feed finds nothing more to deliver:
    everything the last change caused has been delivered and its own writes read back."""
    previous = None
    for _ in range(10):
        await poll_every_feed(runtime, seconds)
        now = await count()
        if now == previous:
            return now
        previous = now
    raise AssertionError(f"the writes never stop (an echo?): {previous}")


async def backfill_done(bonus: Bonus, backfill_id: str, seconds: float = 30) -> Backfill:
    """The backfill once it is done; fails after ``seconds``."""

    async def done() -> Backfill | None:
        found = await bonus.runtime.store.get_backfill(backfill_id)
        return found if found.status is BackfillStatus.DONE else None

    found = await eventually(done, seconds)
    assert found is not None
    return found
