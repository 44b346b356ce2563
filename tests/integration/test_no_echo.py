"""No echo (issue 6, acceptance 3): after a round trip, polls that find nothing new write nothing.

An order and its customer go RetailCRM → 1C and come back changed in 1C, over the wire,
through the committed routes (orders and customers both ways) and `mappings/`. Then both
sources are polled again and again, and the writes each system received are counted.

What is counted. Neither emulator counts the write requests it serves (RetailCRM only counts
all requests per key, 1C nothing), so each sits behind a relay on loopback that keeps every
request it passed on and the answer's status: a RetailCRM write is a POST to its API, a 1C
write a SOAP call of a ledger-changing operation. Beside that, the emulators' own records
must not move either: RetailCRM's history records made with the bridge's key, 1C's change
log entries of origin ``bridge`` (one per SaveOrder/SaveCustomer it served) and its
document versions. And the bridge's store must hold no new event, delivery or attempt.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from bridge.store.records import EventFilter
from connectors.onec.emulator import OnecEmulator
from connectors.retailcrm.emulator import RetailcrmEmulator
from tests.support.bonus import Bonus, start_bonus
from tests.support.mirroring import (
    bridge_history,
    bridge_saves,
    first_polls,
    manager_call,
    mirroring_config,
    poll_every_feed,
    settled,
    shipped_route,
    wait_until_all_delivered,
)
from tests.support.waiting import eventually

POLLS = 6  # direct polls of every feed after the round trip (the acceptance asks for >= 5)
# The contract's operations that change 1C (connectors/onec/contract.py OPERATIONS); the
# others (FindCustomer, GetBalance, GetOrder, GetCustomer, GetChanges) only read.
ONEC_WRITES = frozenset(
    {"Reserve", "Commit", "Release", "Accrue", "Reverse", "SaveOrder", "SaveCustomer"}
)
ONEC_READS = frozenset({"FindCustomer", "GetBalance", "GetOrder", "GetCustomer", "GetChanges"})
CRM_FEEDS = (  # the history of orders and of customers, and the bonus operations
    "/api/v5/orders/history",
    "/api/v5/customers/history",
    "/api/v5/loyalty/bonus/operations",
)
# Hop-by-hop and length headers the relay must not copy; no Accept-Encoding, so the bytes
# relayed are the emulator's own.
_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_REQUEST_DROP = _HOP | {"host", "accept-encoding"}
_ANSWER_DROP = _HOP | {"content-encoding", "date", "server"}


@dataclass(frozen=True)
class Served:
    """One request the relay passed on: method, path, SOAP operation ("" if none), status."""

    method: str
    path: str
    operation: str
    status: int


class Relay:
    """A loopback HTTP relay in front of an emulator that keeps what it relayed."""

    def __init__(self, upstream: str) -> None:
        origin = URL(upstream)
        self.upstream = f"{origin.scheme}://{origin.host}:{origin.port}"
        self.served: list[Served] = []
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Listen on a free loopback port and publish ``url``."""
        self._http = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._relay)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        """Stop listening and close the upstream connections."""
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def _relay(self, request: web.Request) -> web.Response:
        assert self._http is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _REQUEST_DROP}
        target = URL(self.upstream + request.raw_path, encoded=True)
        async with self._http.request(
            request.method, target, data=body, headers=headers, allow_redirects=False
        ) as answer:
            data = await answer.read()
            back = {k: v for k, v in answer.headers.items() if k.lower() not in _ANSWER_DROP}
            status = answer.status
        # SOAP 1.1: SOAPAction is "<namespace>#<Service>:<Operation>" (onec.md §1.2).
        action = request.headers.get("SOAPAction", "").strip().strip('"')
        operation = action.rsplit(":", 1)[-1] if action else ""
        self.served.append(Served(request.method, request.path, operation, status))
        return web.Response(status=status, body=data, headers=back)


@dataclass
class Rig:
    """Both emulators behind their relays, and a bridge mirroring between them."""

    bridge: Bonus
    crm: RetailcrmEmulator
    onec: OnecEmulator
    crm_relay: Relay
    onec_relay: Relay

    async def manager(self, call: Callable[[Any], Any]) -> dict[str, Any]:
        """One call with the official client, as a RetailCRM manager (not through a relay)."""
        return await manager_call(self.crm.url, call)


@dataclass(frozen=True)
class Tally:
    """Everything that must not move while nothing changes."""

    crm_writes: Counter[str]  # "POST <path> <status>" → requests RetailCRM served
    onec_writes: Counter[str]  # "<Operation> <status>" → calls 1C served
    crm_history: Counter[str]  # "<kind>:<field>" → history records made with the bridge's key
    onec_log: Counter[str]  # "<entity> <id>" → change log entries of origin bridge
    onec_versions: dict[str, int]  # order (feed id) → document version
    events: int  # events in the bridge's store
    deliveries: frozenset[str]  # every delivery id
    attempts: frozenset[tuple[str, int]]  # (delivery id, attempt number)

    def writes(self) -> tuple[int, int]:
        """(writes RetailCRM served, writes 1C served)."""
        return sum(self.crm_writes.values()), sum(self.onec_writes.values())


async def tally(rig: Rig) -> Tally:
    """Count writes from the relays and the emulators' own records, and the store's rows."""
    crm_writes = Counter(
        f"{s.method} {s.path} {s.status}"
        for s in rig.crm_relay.served
        if s.method == "POST" and s.path.startswith("/api/")
    )
    onec_posts = [s for s in rig.onec_relay.served if s.method == "POST"]
    unknown = [s for s in onec_posts if s.operation not in ONEC_WRITES | ONEC_READS]
    assert not unknown, f"1C calls the relay cannot classify: {unknown}"
    onec_writes = Counter(
        f"{s.operation} {s.status}" for s in onec_posts if s.operation in ONEC_WRITES
    )
    crm_history = Counter(f"{kind}:{r.field}" for kind, r in bridge_history(rig.crm))
    onec_log = bridge_saves(rig.onec)
    orders = rig.onec.ledger.snapshot()["orders"]
    assert isinstance(orders, dict)
    store = rig.bridge.runtime.store
    events = await store.list_events(EventFilter(limit=1000))
    assert len(events) < 1000
    deliveries: set[str] = set()
    attempts: set[tuple[str, int]] = set()
    for event in events:
        detail = await store.get_event(event.id)
        deliveries |= {d.id for d in detail.deliveries}
        attempts |= {
            (h.delivery_id, h.attempt)
            for h in detail.history
            if h.kind == "attempt" and h.delivery_id and h.attempt is not None
        }
    return Tally(
        crm_writes,
        onec_writes,
        crm_history,
        onec_log,
        {key: version for key, (_n, version, _d) in orders.items()},
        sum((await store.count_events()).values()),
        frozenset(deliveries),
        frozenset(attempts),
    )


def feed_polls(rig: Rig) -> Counter[str]:
    """Poll requests each feed's source answered: RetailCRM's history and bonus-operation
    pages, 1C's GetChanges calls."""
    polls = Counter(
        s.path for s in rig.crm_relay.served if s.method == "GET" and s.path in CRM_FEEDS
    )
    polls.update(s.operation for s in rig.onec_relay.served if s.operation == "GetChanges")
    return polls


async def assert_no_writes_while_polling(rig: Rig, before: Tally) -> Tally:
    """Poll every feed ``POLLS`` times and let the pollers' own loops run for several
    intervals: the tally must not move, and the polls must really have reached both sources."""
    store = rig.bridge.runtime.store
    polls_before = feed_polls(rig)
    runtime = rig.bridge.runtime
    for _ in range(POLLS):
        await poll_every_feed(runtime)
        assert await tally(rig) == before
    direct = feed_polls(rig) - polls_before
    assert set(direct) == {*CRM_FEEDS, "GetChanges"}, direct
    assert all(n >= POLLS for n in direct.values()), direct
    # Then the pollers' own loops alone, for six of their intervals (0.2 s).
    polls_before = feed_polls(rig)
    cursors_before = {(c.source, c.name): c.updated_at for c in await store.list_cursors()}
    await asyncio.sleep(1.2)
    await wait_until_all_delivered(runtime)
    after = await tally(rig)
    looped = feed_polls(rig) - polls_before
    assert set(looped) == set(direct), looped
    assert all(n >= 3 for n in looped.values()), looped
    cursors = {(c.source, c.name): c.updated_at for c in await store.list_cursors()}
    assert set(cursors) == set(cursors_before), cursors
    assert all(cursors[k] > cursors_before[k] for k in cursors), "a poller's loop stood still"
    assert after.writes() == before.writes(), (after.crm_writes, after.onec_writes)
    assert after == before
    return after


def no_echo_config(tmp_path: Path, crm_url: str, onec_url: str) -> dict[str, Any]:
    """Both systems through their relays, polled every 0.2 s, the committed routes and
    mappings (config.yaml): orders and customers both ways. No bonus master: nothing here
    reserves points, and the emulators run outside the bridge (no sandbox)."""
    config = mirroring_config(tmp_path)
    del config["bonus"]
    config["sandbox"] = {"enabled": False}
    config["systems"]["onec"]["options"]["address"] = f"{onec_url}/base/ws/BridgeLoyalty.1cws"
    config["systems"]["retailcrm"]["options"]["url"] = crm_url
    config["mirror"] = {
        "routes": [
            shipped_route(source, entity, target)
            for source, target in (("retailcrm", "onec"), ("onec", "retailcrm"))
            for entity in ("order", "customer")
        ]
    }
    return config


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """The emulators, their relays and a started bridge; stopped in reverse order."""
    async with AsyncExitStack() as stack:
        crm = RetailcrmEmulator(rate_limit=50)
        onec = OnecEmulator()
        for emulator in (crm, onec):
            await emulator.start()
            stack.push_async_callback(emulator.stop)
        relays = (Relay(crm.url), Relay(onec.url))
        for relay in relays:
            await relay.start()
            stack.push_async_callback(relay.stop)
        config = no_echo_config(tmp_path, relays[0].url, relays[1].url)
        bridge, stop = await start_bonus(tmp_path / "bridge.yaml", config)
        stack.push_async_callback(stop)
        await first_polls(bridge.runtime.store)
        yield Rig(bridge, crm, onec, *relays)


async def round_trip(rig: Rig) -> tuple[str, str, str]:
    """A customer and an order made in RetailCRM reach 1C; 1C completes the order and gives
    the customer a card, and both come back to RetailCRM. (RetailCRM order id, its 1C key,
    RetailCRM customer id.)"""
    customer = {
        "externalId": "site-c-77",
        "firstName": "Анна",
        "lastName": "Эхова",
        "phones": [{"number": "+7 (900) 555-10-77"}],
    }
    crm_customer = str((await rig.manager(lambda c: c.customer_create(customer, "shop")))["id"])
    order = {
        "externalId": "site-7701",
        "number": "7701A",
        "status": "new",
        "customer": {"externalId": "site-c-77"},
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 990}],
    }
    crm_order = str((await rig.manager(lambda c: c.order_create(order, "shop")))["id"])
    key = f"retailcrm-{crm_order}"
    store = rig.bridge.runtime.store

    async def in_1c() -> Any:
        found = rig.onec.ledger.snapshot()["orders"]
        assert isinstance(found, dict)
        return found.get(key)

    await eventually(in_1c)
    onec_customer = await eventually(
        lambda: store.lookup_id("customer", "retailcrm", crm_customer, "onec")
    )
    assert rig.onec.ledger.find_customer(phone="+79005551077").customer_id == onec_customer

    # In 1C: the order is completed and the customer gets a loyalty card.
    rig.onec.ledger.change_order(key, status="Выполнен")
    rig.onec.ledger.change_customer(onec_customer, card="2000000000770")

    async def back_in_crm() -> bool:
        got = await rig.manager(lambda c: c.order(crm_order, "id", "shop"))
        person = await rig.manager(lambda c: c.customer(crm_customer, "id", "shop"))
        card = person["customer"].get("discountCardNumber")
        return bool(got["order"]["status"] == "complete" and card == "2000000000770")

    await eventually(back_in_crm)
    return crm_order, key, crm_customer


async def test_after_a_round_trip_polling_writes_nothing_more_to_either_system(
    rig: Rig,
) -> None:
    crm_order, _key, crm_customer = await round_trip(rig)
    before = await settled(rig.bridge.runtime, partial(tally, rig))
    # The round trip wrote each change once, where it had to go, and nothing else: the
    # customer and the order into 1C, the order's status and the customer's card back.
    assert before.onec_writes == Counter({"SaveCustomer 200": 1, "SaveOrder 200": 1})
    assert before.crm_writes == Counter(
        {
            f"POST /api/v5/orders/{crm_order}/edit 200": 1,
            f"POST /api/v5/customers/{crm_customer}/edit 200": 1,
        }
    )
    assert before.writes() == (2, 2)
    # Each SaveOrder/SaveCustomer 1C served is one entry of origin bridge in its change log.
    saves = sum(n for k, n in before.onec_writes.items() if k.startswith("Save"))
    assert saves == sum(before.onec_log.values()), (before.onec_writes, before.onec_log)
    # Every request the bridge made to RetailCRM passed the relay (its own count by key).
    assert len(rig.crm_relay.served) == rig.crm.requests_by_key["bridge"]

    await assert_no_writes_while_polling(rig, before)


async def test_a_real_change_after_the_round_trip_is_written_once_then_nothing(
    rig: Rig,
) -> None:
    crm_order, key, _crm_customer = await round_trip(rig)
    before = await settled(rig.bridge.runtime, partial(tally, rig))

    # A manager moves the order on in RetailCRM: that is news, and 1C must get it once.
    change = {"id": int(crm_order), "status": "send-to-delivery"}
    await rig.manager(lambda c: c.order_edit(change, "id", "shop"))

    async def shipped_in_1c() -> bool:
        found = rig.onec.ledger.snapshot()["orders"]
        assert isinstance(found, dict)
        return bool(found[key][2].get("status") == "Передан в доставку")

    await eventually(shipped_in_1c)
    after = await settled(rig.bridge.runtime, partial(tally, rig))
    assert after.onec_writes - before.onec_writes == Counter({"SaveOrder 200": 1})
    assert before.onec_writes - after.onec_writes == Counter()
    assert after.onec_versions[key] == before.onec_versions[key] + 1
    assert after.onec_log - before.onec_log == Counter({f"order {key}": 1})
    # 1C's copy is the bridge's own write: nothing goes back to RetailCRM.
    assert after.crm_writes == before.crm_writes
    assert after.crm_history == before.crm_history
    assert len(after.deliveries - before.deliveries) == 1

    await assert_no_writes_while_polling(rig, after)
