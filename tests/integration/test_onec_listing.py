"""1C listing its orders and customers for ``bridge backfill``: ListOrders / ListCustomers
behind ``EntityLister``, over the wire.

Every test runs the real connector against the real emulator on loopback, for each way an
installation publishes the contract (SOAP 1.1, SOAP 1.2 with Cyrillic names through
``options.operations``, and the HTTP service). Only the emulator's clock is set by hand.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from bridge.connector import EntityLister, ListedEntity
from bridge.errors import AuthError, ConfigError, DeliveryError, PermanentError, TransientError
from bridge.settings import DeliverySettings, SystemSettings
from bridge.store.backfills import BackfillSpec
from bridge.store.records import EventFilter
from connectors.onec.client import OnecFault
from connectors.onec.connector import ONEC, OnecConnector, build_client
from connectors.onec.declared.calls import DeclaredService
from connectors.onec.emulator import OnecEmulator
from connectors.onec.emulator.ledger import SANDBOX_CUSTOMERS, OnecLedger
from connectors.onec.errors import classify
from connectors.onec.naming import Naming
from connectors.onec.options import OnecOptions
from tests.support.bonus import BonusFactory, bonus_factory
from tests.support.emulators import onec_emulator
from tests.support.mirroring import backfill_done, crm_call, mirroring_config
from tests.support.onec import onec_options
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name

CYRILLIC = Path(__file__).resolve().parents[2] / "connectors/onec/wsdl/cyrillic_example.yaml"
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SEEDED = len(SANDBOX_CUSTOMERS)  # the sandbox customers


class Clock:
    """The emulated infobase's clock, the one thing set by hand."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _variants() -> dict[str, dict[str, Any]]:
    cyrillic = Naming.model_validate(yaml.safe_load(CYRILLIC.read_text(encoding="utf-8")))
    return {
        "soap11": {"transport": "soap"},
        "soap12-cyrillic": {"transport": "soap", "soap_version": "1.2", "naming": cyrillic},
        "http": {"transport": "http"},
    }


VARIANTS = _variants()
TRANSPORTS = {"soap": VARIANTS["soap11"], "http": VARIANTS["http"]}


@dataclass
class Onec:
    """A started emulator with a settable clock, and a connector talking to it."""

    emulator: OnecEmulator
    connector: OnecConnector
    clock: Clock
    options: OnecOptions

    @property
    def ledger(self) -> OnecLedger:
        return self.emulator.ledger

    def enter_orders(self, count: int, step: timedelta = timedelta(minutes=1)) -> list[str]:
        """Orders entered in 1C, one a ``step`` apart; their ids as the change feed gives them."""
        ids = []
        for _ in range(count):
            self.clock.now += step
            ids.append(self.ledger.enter_order({"total": "10.00"}, status="new").id)
        return ids

    def save_order(self, external_id: str) -> str:
        """An order the bridge saved (its external id names it in the feed)."""
        self.clock.now += timedelta(minutes=1)
        document = json.dumps({"number": external_id, "total": "25.50"})
        self.ledger.save_order(f"op-{external_id}", external_id, document)
        return external_id

    def feed_ids(self, entity: str) -> list[str]:
        """Every id the change feed gave ``entity`` so far, in feed order, once each."""
        items = self.ledger.get_changes(0, 1000).items
        return list(dict.fromkeys(c.id for c in items if c.entity == entity))

    async def list_all(
        self, entity: str, since: date | None = None
    ) -> tuple[list[ListedEntity], list[int | None], list[int]]:
        """Every page of a listing: the entities in order, each page's total and size."""
        listed: list[ListedEntity] = []
        totals: list[int | None] = []
        sizes: list[int] = []
        cursor = None
        while True:
            page = await self.connector.list_entities(entity, since, cursor)
            listed += page.entities
            totals.append(page.total)
            sizes.append(len(page.entities))
            if page.cursor is None:
                return listed, totals, sizes
            cursor = page.cursor


async def start(
    transport: str,
    naming: Naming | None = None,
    soap_version: str = "1.1",
    unpublished: Collection[str] = (),
    **extra: Any,
) -> Onec:
    clock = Clock()
    ledger = OnecLedger(clock=clock)
    ledger.seed_sandbox()
    emulator = OnecEmulator(naming=naming, ledger=ledger, unpublished=unpublished)
    await emulator.start()
    raw = onec_options(emulator, transport, naming, soap_version=soap_version, **extra)
    options = ONEC.options_model.model_validate(raw)
    system = SystemSettings(
        type="onec", delivery=DeliverySettings(timeout_seconds=2.0, concurrency=4)
    )
    connector = ONEC.create("onec", system, options)
    await connector.start()
    return Onec(emulator, connector, clock, options)


async def stop(onec: Onec) -> None:
    await onec.connector.close()
    await onec.emulator.stop()


@pytest.fixture(params=sorted(VARIANTS))
async def onec(request: pytest.FixtureRequest) -> AsyncIterator[Onec]:
    started = await start(**VARIANTS[request.param])
    try:
        yield started
    finally:
        await stop(started)


@pytest.fixture(params=sorted(TRANSPORTS))
async def older_onec(request: pytest.FixtureRequest) -> AsyncIterator[Onec]:
    """A 1C whose service was published before the listings existed."""
    unpublished = ("list_orders", "list_customers")
    started = await start(**TRANSPORTS[request.param], unpublished=unpublished)
    try:
        yield started
    finally:
        await stop(started)


def declared_service(onec: Onec) -> DeclaredService:
    """The connector's declaration over a wire client of its own (no checks of the
    connector's in between), one connection, 2 s a call."""
    declaration = onec.connector.declaration
    return DeclaredService(declaration, build_client(onec.options, declaration, 2.0, 1))


async def failure(call: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await call()
    return caught.value


# -- paging -----------------------------------------------------------------------------------


async def test_it_lists_orders_and_customers_and_nothing_else(onec: Onec) -> None:
    assert isinstance(onec.connector, EntityLister)
    assert (onec.connector.lists("order"), onec.connector.lists("customer")) == (True, True)
    assert not onec.connector.lists("receipt")
    error = await failure(lambda: onec.connector.list_entities("receipt", None, None))
    assert type(error) is PermanentError
    assert "receipt" in str(error)


async def test_250_orders_in_pages_of_100_each_once_with_the_total(onec: Onec) -> None:
    saved = [onec.save_order(f"crm-{n}") for n in range(40)]  # mirrored in by the bridge
    entered = onec.enter_orders(210)  # entered in 1C
    listed, totals, sizes = await onec.list_all("order")
    assert sizes == [100, 100, 50]
    assert totals == [250, 250, 250]
    ids = [entity.entity_id for entity in listed]
    # Oldest first, each once, and each named exactly as the change feed names it, so a
    # backfilled order and a live change of it are one entity.
    assert ids == saved + entered == onec.feed_ids("order")


async def test_a_listed_state_is_what_read_entity_gives(onec: Onec) -> None:
    onec.save_order("crm-77")
    [entered] = onec.enter_orders(1)
    onec.ledger.change_order("crm-77", status="shipped")
    page = await onec.connector.list_entities("order", None, None)
    assert [e.entity_id for e in page.entities] == ["crm-77", entered]
    assert page.cursor is None
    for entity in page.entities:
        assert entity.state == await onec.connector.read_entity("order", entity.entity_id)
    mirrored = page.entities[0].state
    assert (mirrored["external_id"], mirrored["status"], mirrored["version"]) == (
        "crm-77",
        "shipped",
        "2",
    )
    assert mirrored["document"] == {"number": "crm-77", "total": "25.50"}
    assert (page.entities[1].state["external_id"], page.entities[1].state["id"]) == (
        None,
        entered,
    )


async def test_a_backfilled_order_and_its_live_change_share_one_id(onec: Onec) -> None:
    onec.save_order("crm-5")
    [entered] = onec.enter_orders(1)
    onec.ledger.change_order("crm-5", status="shipped")
    onec.ledger.change_order(entered, status="sold")
    polled = await onec.connector.poll("changes", None)
    live = {(e.entity, e.entity_id) for e in polled.events}  # the bridge's own save is skipped
    listed, _, _ = await onec.list_all("order")
    assert (
        live
        == {("order", e.entity_id) for e in listed}
        == {
            ("order", "crm-5"),
            ("order", entered),
        }
    )


async def test_created_from_keeps_what_was_made_from_that_day_on_utc(onec: Onec) -> None:
    day = date(2026, 11, 22)
    midnight = datetime(2026, 11, 22, tzinfo=UTC)
    onec.clock.now = midnight - timedelta(hours=2)
    before = onec.enter_orders(3, step=timedelta(minutes=30))  # the last at 23:30 the day before
    onec.clock.now = midnight - timedelta(minutes=1)
    at_midnight = onec.enter_orders(1, step=timedelta(minutes=1))  # 00:00:00 exactly
    after = onec.enter_orders(4, step=timedelta(hours=5))
    listed, totals, _ = await onec.list_all("order", since=day)
    assert [e.entity_id for e in listed] == at_midnight + after
    assert totals == [5]
    everything, totals, _ = await onec.list_all("order")
    assert [e.entity_id for e in everything] == before + at_midnight + after
    assert totals == [8]
    later, totals, _ = await onec.list_all("order", since=date(2027, 1, 1))
    assert (later, totals) == ([], [0])


async def test_orders_made_during_a_listing_come_after_it_and_none_is_skipped(
    onec: Onec,
) -> None:
    first_batch = onec.enter_orders(150)
    page1 = await onec.connector.list_entities("order", None, None)
    assert [e.entity_id for e in page1.entities] == first_batch[:100]
    assert (page1.total, page1.cursor is not None) == (150, True)
    # Made while the listing runs, some with a clock that went back (1C's is a server's):
    # creation order, not the clock, places them.
    onec.clock.now -= timedelta(days=1)
    meanwhile = onec.enter_orders(60)
    page2 = await onec.connector.list_entities("order", None, page1.cursor)
    # The boundary did not move: the second page starts right after the first.
    assert [e.entity_id for e in page2.entities] == first_batch[100:] + meanwhile[:50]
    assert page2.total == 210
    again = await onec.connector.list_entities("order", None, page1.cursor)
    assert [e.entity_id for e in again.entities] == [e.entity_id for e in page2.entities]
    page3 = await onec.connector.list_entities("order", None, page2.cursor)
    assert [e.entity_id for e in page3.entities] == meanwhile[50:]
    assert page3.cursor is None


async def test_customers_are_listed_by_their_1c_id(onec: Onec) -> None:
    saved = []
    for n in range(120):
        onec.clock.now += timedelta(minutes=1)
        document = json.dumps({"phone": f"+7901{n:07d}", "name": f"Клиент {n}"})
        saved.append(onec.ledger.save_customer(f"op-c{n}", f"crm-c{n}", document).customer_id)
    listed, totals, sizes = await onec.list_all("customer")
    assert sizes == [100, 20 + SEEDED]
    assert totals == [120 + SEEDED] * 2
    ids = [e.entity_id for e in listed]
    seeded = [onec.ledger.find_customer(phone=c[0]).customer_id for c in SANDBOX_CUSTOMERS]
    assert ids == seeded + saved
    # The id the feed gives a customer (its points moved, it was saved) and the ledger takes.
    assert set(onec.feed_ids("customer")) == set(saved)
    for entity in (listed[0], listed[SEEDED + 7]):
        assert entity.state == await onec.connector.read_entity("customer", entity.entity_id)
    assert listed[SEEDED + 7].state["external_id"] == "crm-c7"
    assert listed[0].state["card"] == "2000000000015"
    since = (T0 + timedelta(days=1)).date()
    assert await onec.list_all("customer", since=since) == ([], [0], [0])


async def test_the_page_size_is_an_option() -> None:
    started = await start(**VARIANTS["http"], list_page=7)
    try:
        started.enter_orders(20)
        _, totals, sizes = await started.list_all("order")
        assert (sizes, totals) == ([7, 7, 6], [20, 20, 20])
    finally:
        await stop(started)
    for bad in (0, 1001):
        with pytest.raises(ValidationError, match="list_page"):
            OnecOptions.model_validate({"transport": "http", "url": "http://x", "list_page": bad})


# -- a 1C without the listings ---------------------------------------------------------------


async def test_a_1c_without_the_listings_says_so_and_still_works(older_onec: Onec) -> None:
    connector = older_onec.connector
    assert (connector.lists("order"), connector.lists("customer")) == (False, False)
    # Everything else works as before: the bonus calls, reading, writing, the change feed.
    customer = await connector.find_customer(phone="+79000000001")
    assert (await connector.balance(customer.customer_id)).balance == 1000
    [entered] = older_onec.enter_orders(1)
    assert (await connector.read_entity("order", entered) or {})["id"] == entered
    assert [e.entity_id for e in (await connector.poll("changes", None)).events] == [entered]
    # Asked all the same, it names what 1C lacks.
    error = await failure(lambda: connector.list_entities("order", None, None))
    assert type(error) is ConfigError
    assert "ListOrders" in str(error)
    assert "CONTRACT.md" in str(error)


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
async def test_a_1c_with_one_listing_lists_that_one(transport: str) -> None:
    started = await start(**TRANSPORTS[transport], unpublished=("list_customers",))
    try:
        assert started.connector.lists("order")
        assert not started.connector.lists("customer")
        started.enter_orders(2)
        _, totals, _ = await started.list_all("order")
        assert totals == [2]
    finally:
        await stop(started)


async def test_an_emulator_leaves_out_only_optional_operations() -> None:
    with pytest.raises(ValueError, match="balance"):
        OnecEmulator(unpublished=("balance", "list_orders"))


# -- errors ----------------------------------------------------------------------------------


async def test_a_bad_limit_is_refused_naming_it(onec: Onec) -> None:
    """The connector never sends one (``list_page`` is 1..1000); a 1C refuses it anyway."""
    service = declared_service(onec)
    client = service.client
    try:
        if not client.loaded:  # zeep reads the WSDL synchronously: not on this loop
            await asyncio.to_thread(client.load)
        for limit in (0, 1001):
            with pytest.raises(OnecFault) as caught:
                await service.call("list_orders", {"limit": limit})
            error = classify(caught.value, ledger=False)
            assert type(error) is PermanentError
            assert "invalid_request" in str(error)
            assert "limit" in str(error)
            assert "1..1000" in str(error)
        page = await service.call("list_orders", {"limit": 1000})
        assert (page["items"], page["total"]) == ([], 0)
    finally:
        await client.close()


async def test_a_bad_cursor_is_refused_naming_it(onec: Onec) -> None:
    onec.enter_orders(3)
    for cursor in ("nonsense", "orders.99", "customers.1"):
        error = await failure(lambda c=cursor: onec.connector.list_entities("order", None, c))
        assert type(error) is PermanentError, cursor
        assert "invalid_request" in str(error)
        assert "after" in str(error)
    customers = await onec.connector.list_entities("customer", None, None)
    assert customers.cursor is None  # three seeded customers: one page


async def test_a_bad_created_from_is_refused_naming_it() -> None:
    """Over the HTTP service a CreatedFrom is any JSON; one that is no moment is refused. A
    time without an offset is one: 1C reads it as its local time (Moscow here, issue 14)."""
    started = await start("http")
    try:
        service = declared_service(started)
        try:
            for moment in ("2026-11-22", "yesterday", 20261122):
                with pytest.raises(OnecFault) as caught:
                    await service.call("list_customers", {"created_from": moment})
                assert caught.value.code == "invalid_request", moment
                assert "created_from" in caught.value.text
            started.clock.now = datetime(2026, 11, 22, 6, 30, tzinfo=UTC)  # 09:30 in Moscow
            started.ledger.save_customer(
                "op-late", "crm-late", json.dumps({"phone": "+79000000077"})
            )
            # Read as UTC, 09:00 would be after the customer was entered: it is Moscow's 09:00.
            for local, total in (("2026-11-22T09:00:00", 1), ("2026-11-22T10:00:00", 0)):
                page = await service.call("list_customers", {"created_from": local})
                assert page["total"] == total, local
        finally:
            await service.client.close()
    finally:
        await stop(started)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"http_status": 503}, TransientError),
        ({"outage": True}, TransientError),
        ({"soap_fault": "Ошибка СУБД: блокировка"}, TransientError),
        ({"http_status": 401}, AuthError),
    ],
)
async def test_failures_are_classified_as_for_every_call(
    onec: Onec, fault: dict[str, Any], expected: type[DeliveryError]
) -> None:
    onec.enter_orders(1)
    onec.emulator.faults.set(**fault, count=1)
    error = await failure(lambda: onec.connector.list_entities("order", None, None))
    assert type(error) is expected
    page = await onec.connector.list_entities("order", None, None)  # count=1: over
    assert page.total == 1


# -- through the daemon ------------------------------------------------------------------------


async def test_a_backfill_into_retailcrm_keeps_one_copy_of_each_order(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    """``bridge backfill orders --from onec --to retailcrm`` in the daemon: a listed order
    and the live changes of it are one entity, so RetailCRM holds one copy of each order,
    the one it sent into 1C itself included (written back to it, not created again)."""
    bonus = await bonus_factory("onec", config=mirroring_config(tmp_path))
    store, onec = bonus.runtime.store, onec_emulator(bonus.runtime)
    await eventually(lambda: store.get_cursor("retailcrm", "orders"))
    order = {
        "number": "1001A",
        "status": "new",
        "customer": {"externalId": "c-1"},
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 990}],
    }
    crm_id = str((await crm_call(bonus, lambda c: c.order_create(order, "shop")))["id"])
    key = f"retailcrm-{crm_id}"
    await eventually(lambda: asyncio.sleep(0, key in onec.ledger.snapshot()["orders"]))
    entered = [onec.ledger.enter_order({"number": f"Т-{n}"}, status="Новый").id for n in range(3)]

    spec = BackfillSpec("onec", "order", ("retailcrm",), None)
    backfill, _ = await store.open_backfill(spec, "test")
    done = await backfill_done(bonus, backfill.id)
    assert (done.listed, done.total) == (4, 4)
    events = await store.list_events(EventFilter(source="onec", limit=100))
    assert {e.entity_id for e in events if e.action == "listed"} == {key, *entered}

    ours = ["1001A", "Т-0", "Т-1", "Т-2"]

    async def one_copy_each() -> Any:
        listed = (await crm_call(bonus, lambda c: c.orders({}, 100, 1)))["orders"]
        mine = [o for o in listed if o.get("number") in ours]  # the sandbox has its own too
        return mine if sorted(o["number"] for o in mine) == ours else None

    by_number = {o["number"]: o for o in await eventually(one_copy_each)}
    assert str(by_number["1001A"]["id"]) == crm_id
    assert {by_number[f"Т-{n}"].get("externalId") for n in range(3)} == {
        f"onec-{order_id}" for order_id in entered
    }
