"""1C as a mirroring source and target: GetOrder/GetCustomer behind ``read_entity``,
SaveOrder/SaveCustomer behind ``deliver``, and no echoes through ``GetChanges``.

Every test runs the real connector against the real emulator over sockets, for each way an
installation publishes the contract (SOAP 1.1, SOAP 1.2, the HTTP service, and a service
with Cyrillic names reached through ``options.operations``). Nothing is mocked.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from lxml import etree

from bridge.connector import DeliveryJob, EntityReader, Sink, Source
from bridge.errors import AuthError, DeliveryError, PermanentError, TransientError
from bridge.ledger import LedgerRefused
from bridge.settings import DeliverySettings, SystemSettings
from bridge.store.records import EventRecord, Status
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.emulator import OnecEmulator
from connectors.onec.naming import Naming
from tests.support.onec import onec_options

CYRILLIC = Path(__file__).resolve().parents[2] / "connectors/onec/wsdl/cyrillic_example.yaml"
IVAN = "+79000000001"
# An order in 1C's shape, as a route's mapping file would hand it to the sink.
ORDER = {
    "number": "A-1001",
    "status": "new",
    "total": "1500.00",
    "customer": {"phone": IVAN},
    "items": [{"sku": "SKU-1", "quantity": 2, "price": "750.00"}],
}


def _variants() -> dict[str, dict[str, Any]]:
    cyrillic = Naming.model_validate(yaml.safe_load(CYRILLIC.read_text(encoding="utf-8")))
    return {
        "soap11": {"transport": "soap"},
        "soap12": {"transport": "soap", "soap_version": "1.2"},
        "http": {"transport": "http"},
        "cyrillic": {"transport": "soap", "naming": cyrillic},
    }


VARIANTS = _variants()


class Onec:
    """A started emulator and a connector talking to it, with helpers to play 1C's side."""

    def __init__(self, emulator: OnecEmulator, connector: OnecConnector) -> None:
        self.emulator = emulator
        self.connector = connector
        self.admin = f"http://127.0.0.1:{emulator.port}/__emulator__"
        self.cursor: str | None = None

    async def in_1c(self, what: str, body: dict[str, Any]) -> dict[str, Any]:
        """A change made in 1C itself, through the emulator's admin API."""
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.admin}/{what}", json=body) as response,
        ):
            assert response.status == 200, await response.text()
            answer: dict[str, Any] = await response.json()
            return answer

    async def poll(self) -> list[tuple[str, str, str]]:
        """One poll of the change feed from where the last one stopped."""
        result = await self.connector.poll("changes", self.cursor)
        self.cursor = result.cursor
        return [(e.entity, e.entity_id, e.action) for e in result.events]


async def start(
    transport: str,
    naming: Naming | None = None,
    soap_version: str = "1.1",
    timeout: float = 2.0,
) -> tuple[OnecEmulator, OnecConnector]:
    emulator = OnecEmulator(naming=naming)
    await emulator.start()
    options = onec_options(emulator, transport, naming, soap_version=soap_version)
    system = SystemSettings(
        type="onec", delivery=DeliverySettings(timeout_seconds=timeout, concurrency=4)
    )
    connector = ONEC.create("onec", system, ONEC.options_model.model_validate(options))
    await connector.start()
    return emulator, connector


@pytest.fixture(params=sorted(VARIANTS))
async def onec(request: pytest.FixtureRequest) -> AsyncIterator[Onec]:
    emulator, connector = await start(**VARIANTS[request.param])
    try:
        yield Onec(emulator, connector)
    finally:
        await connector.close()
        await emulator.stop()


@pytest.fixture
async def http_onec() -> AsyncIterator[Onec]:
    """One variant, for what does not depend on how the contract is published."""
    emulator, connector = await start("http", timeout=0.5)
    try:
        yield Onec(emulator, connector)
    finally:
        await connector.close()
        await emulator.stop()


def job(
    document: dict[str, Any] | None,
    *,
    entity: str = "order",
    entity_id: str = "77",
    delivery: str = "1",
    payload: dict[str, Any] | None = None,
) -> DeliveryJob:
    """A delivery from RetailCRM (system ``crm``) as the dispatcher hands it to the sink."""
    event = EventRecord(
        id="evt_1",
        source="crm",
        source_key=f"hist-{delivery}",
        entity=entity,
        entity_id=entity_id,
        action="changed",
        status=Status.IN_FLIGHT,
        reason=None,
        payload=payload or {},
        received_at=0.0,
        updated_at=0.0,
    )
    return DeliveryJob(
        delivery_id=delivery,
        operation_key=f"bridge-{delivery}",
        target="onec",
        source="crm",
        entity=entity,
        entity_id=entity_id,
        attempt=1,
        events=(event,),
        document=document,
    )


async def failure(call: Callable[[], Any]) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await call()
    return caught.value


# -- the protocols ---------------------------------------------------------------------------


async def test_the_connector_is_an_entity_reader_a_sink_and_a_source(onec: Onec) -> None:
    assert isinstance(onec.connector, EntityReader)
    assert isinstance(onec.connector, Sink)
    assert isinstance(onec.connector, Source)


# -- write, then read back --------------------------------------------------------------------


async def test_an_order_saved_is_read_back_with_1c_fields(onec: Onec) -> None:
    delivery = job(ORDER)
    saved = await onec.connector.write(delivery)
    assert (saved["external_id"], saved["number"], saved["created"]) == (
        "crm-77",
        "00-000001",
        True,
    )
    state = await onec.connector.read_entity("order", delivery.external_id)
    assert state is not None
    assert state["document"] == ORDER  # amounts stay decimal strings both ways
    assert (state["external_id"], state["number"], state["status"]) == (
        "crm-77",
        "00-000001",
        "new",
    )
    assert state["version"] == "1"
    assert state["date"].endswith("Z")
    # 1C's own id reads the same order.
    assert await onec.connector.read_entity("order", state["id"]) == state

    edited = {**ORDER, "status": "paid", "total": "1400.00"}
    await onec.connector.deliver(job(edited, delivery="2"))
    again = await onec.connector.read_entity("order", "crm-77")
    assert again is not None
    assert (again["status"], again["document"]["total"], again["version"]) == (
        "paid",
        "1400.00",
        "2",
    )
    assert again["number"] == "00-000001"  # updated in place, not a second order


async def test_a_customer_saved_is_read_back_by_its_1c_id_and_its_external_id(onec: Onec) -> None:
    document = {"phone": "8 (900) 555-12-34", "name": "Анна Орлова", "email": "anna@example.ru"}
    saved = await onec.connector.write(job(document, entity="customer", entity_id="c-5"))
    assert (saved["external_id"], saved["created"]) == ("crm-c-5", True)
    by_id = await onec.connector.read_entity("customer", saved["customer_id"])
    by_external = await onec.connector.read_entity("customer", "crm-c-5")
    assert by_id == by_external
    assert by_id is not None
    assert (by_id["phone"], by_id["name"], by_id["card"]) == ("+79005551234", "Анна Орлова", None)
    # The document as 1C holds it: its catalog fields normalised, the rest as sent.
    assert by_id["document"] == {**document, "phone": "+79005551234"}
    # It is a customer of the bonus program too.
    found = await onec.connector.find_customer(phone="+79005551234")
    assert found.customer_id == saved["customer_id"]


async def test_a_customer_with_a_phone_on_file_is_that_customer(onec: Onec) -> None:
    ivan = await onec.connector.find_customer(phone=IVAN)
    saved = await onec.connector.write(
        job({"phone": "89000000001", "name": "Иван Петров"}, entity="customer", entity_id="9")
    )
    assert (saved["customer_id"], saved["created"]) == (ivan.customer_id, False)
    state = await onec.connector.read_entity("customer", "crm-9")
    assert state is not None
    assert (state["customer_id"], state["card"]) == (ivan.customer_id, ivan.card)
    assert (await onec.connector.balance(ivan.customer_id)).balance == 1000  # one account


async def test_unknown_ids_and_entities_read_as_none(onec: Onec) -> None:
    assert await onec.connector.read_entity("order", "crm-404") is None
    assert await onec.connector.read_entity("customer", "crm-404") is None
    assert await onec.connector.read_entity("receipt", "ЧК-1") is None  # arrives whole in pushes


# -- idempotency ------------------------------------------------------------------------------


async def test_a_repeated_delivery_changes_nothing(onec: Onec) -> None:
    delivery = job(ORDER)
    first = await onec.connector.write(delivery)
    after_first = onec.emulator.ledger.snapshot()
    # A retry of the same delivery and state: 1C answers from memory.
    assert await onec.connector.write(delivery) == first
    assert first["created"] is True  # the remembered answer, not "updated"
    # The same state in another key order and spelling is the same document.
    shuffled = job(dict(reversed(list(ORDER.items()))))
    assert await onec.connector.write(shuffled) == first
    assert onec.emulator.ledger.snapshot() == after_first


async def test_a_retry_that_reads_newer_state_writes_it(onec: Onec) -> None:
    # The first attempt may have landed before a timeout; the retry re-read the source and
    # carries newer state under the same delivery: it must be written, not refused.
    await onec.connector.deliver(job(ORDER))
    await onec.connector.deliver(job({**ORDER, "status": "paid"}))
    state = await onec.connector.read_entity("order", "crm-77")
    assert state is not None
    assert (state["status"], state["version"]) == ("paid", "2")


async def test_the_same_operation_id_with_other_data_is_refused_and_changes_nothing(
    http_onec: Onec,
) -> None:
    ledger = http_onec.emulator.ledger
    ledger.save_order("bridge-1-x", "crm-77", json.dumps(ORDER))
    before = ledger.snapshot()
    again = ledger.save_order("bridge-1-x", "crm-77", json.dumps(ORDER, indent=2))
    assert again.created is True
    assert ledger.snapshot() == before
    # By hand: aiohttp.BasicAuth is deprecated in recent aiohttp.
    auth = {"Authorization": "Basic " + base64.b64encode(b"bridge:sandbox").decode()}
    async with aiohttp.ClientSession(headers=auth) as http:
        body = {"operation_id": "bridge-1-x", "external_id": "crm-77", "order": "{}"}
        url = http_onec.emulator.hs_url + "/v1/save-order"
        async with http.post(url, json=body) as response:
            assert response.status == 409
            assert (await response.json())["error"]["code"] == "operation_conflict"
    assert ledger.snapshot() == before


# -- the change feed: status changes flow back, own writes do not -----------------------------


async def test_the_bridges_own_saves_do_not_come_back_as_changes(onec: Onec) -> None:
    await onec.poll()
    await onec.connector.deliver(job(ORDER))
    await onec.connector.deliver(job({**ORDER, "status": "paid"}, delivery="2"))
    await onec.connector.deliver(job({"phone": "+79005550000"}, entity="customer", entity_id="5"))
    assert await onec.poll() == []
    # They are in the feed, marked as the bridge's: the cursor moved past them.
    assert onec.cursor == str(onec.emulator.ledger.snapshot()["last_message_no"]) == "3"
    assert await onec.poll() == []


async def test_a_status_change_made_in_1c_flows_back_and_reads_back(onec: Onec) -> None:
    await onec.connector.deliver(job(ORDER))
    assert await onec.poll() == []
    changed = await onec.in_1c("orders", {"id": "crm-77", "status": "shipped"})
    assert changed["status"] == "shipped"
    assert await onec.poll() == [("order", "crm-77", "changed")]
    state = await onec.connector.read_entity("order", "crm-77")
    assert state is not None
    assert (state["status"], state["document"]["status"], state["version"]) == (
        "shipped",
        "shipped",
        "2",
    )
    # The bridge writing that state on to the order again is its own change: no echo.
    await onec.connector.deliver(job(state["document"], delivery="2"))
    assert await onec.poll() == []


async def test_an_order_entered_in_1c_is_named_by_1c_id(onec: Onec) -> None:
    entered = await onec.in_1c("orders", {"document": {"total": "99.00"}, "status": "sold"})
    assert entered["external_id"] is None
    assert await onec.poll() == [("order", entered["id"], "created")]
    state = await onec.connector.read_entity("order", entered["id"])
    assert state is not None
    assert (state["number"], state["status"], state["document"]) == (
        entered["number"],
        "sold",
        {"total": "99.00"},
    )


async def test_a_customer_edited_in_1c_flows(onec: Onec) -> None:
    saved = await onec.connector.write(job({"phone": "+79005550000"}, entity="customer"))
    assert await onec.poll() == []
    await onec.in_1c("customers", {"id": "crm-77", "name": "Пётр"})
    assert await onec.poll() == [("customer", saved["customer_id"], "changed")]
    state = await onec.connector.read_entity("customer", saved["customer_id"])
    assert state is not None
    assert state["name"] == "Пётр"


# -- what is written when no mapping ran ------------------------------------------------------


async def test_without_a_mapped_document_the_changes_own_document_is_written(
    http_onec: Onec,
) -> None:
    await http_onec.connector.deliver(job(None, payload={"document": ORDER, "other": 1}))
    state = await http_onec.connector.read_entity("order", "crm-77")
    assert state is not None
    assert state["document"] == ORDER
    error = await failure(lambda: http_onec.connector.deliver(job(None, delivery="2")))
    assert type(error) is PermanentError
    assert "nothing to write" in str(error)


# -- errors -----------------------------------------------------------------------------------


async def test_refusals_are_permanent_and_name_the_field(onec: Onec) -> None:
    no_phone = job({"name": "Без телефона"}, entity="customer")
    error = await failure(lambda: onec.connector.deliver(no_phone))
    assert type(error) is PermanentError  # not a ledger refusal: this is no bonus call
    assert not isinstance(error, LedgerRefused)
    assert "invalid_request" in str(error)
    assert "customer.phone" in str(error)
    long_id = job(ORDER, entity_id="9" * 300)
    error = await failure(lambda: onec.connector.deliver(long_id))
    assert (type(error), "external_id" in str(error)) == (PermanentError, True)
    receipt = job(ORDER, entity="receipt")
    assert type(await failure(lambda: onec.connector.deliver(receipt))) is PermanentError
    assert onec.emulator.ledger.snapshot()["orders"] == {}


async def test_a_document_that_is_not_json_is_permanent(http_onec: Onec) -> None:
    error = await failure(lambda: http_onec.connector.deliver(job({"when": object()})))
    assert type(error) is PermanentError
    assert "document" in str(error)


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"http_status": 503}, TransientError),
        ({"http_status": 500}, TransientError),
        ({"outage": True}, TransientError),
        ({"hang": 5}, TransientError),
        ({"soap_fault": "Ошибка СУБД: блокировка"}, TransientError),
        ({"http_status": 401}, AuthError),
        ({"http_status": 403}, AuthError),
        ({"soap_fault": "invalid_request: Order.items: unknown SKU-1"}, PermanentError),
    ],
)
async def test_failures_are_classified_for_reads_and_writes(
    http_onec: Onec, fault: dict[str, Any], expected: type[DeliveryError]
) -> None:
    await http_onec.connector.deliver(job(ORDER))
    http_onec.emulator.faults.set(**fault)
    write = await failure(lambda: http_onec.connector.deliver(job(ORDER, delivery="2")))
    read = await failure(lambda: http_onec.connector.read_entity("order", "crm-77"))
    http_onec.emulator.faults.clear()
    assert (type(write), type(read)) == (expected, expected)
    if expected is PermanentError:
        assert "Order.items" in str(write)


async def test_classified_alike_over_soap(onec: Onec) -> None:
    for fault, expected in (
        ({"http_status": 503}, TransientError),
        ({"http_status": 401}, AuthError),
        ({"soap_fault": "invalid_request: Order: broken"}, PermanentError),
    ):
        onec.emulator.faults.set(**fault, count=1)
        error = await failure(lambda: onec.connector.deliver(job(ORDER)))
        assert type(error) is expected, fault
    assert onec.emulator.ledger.snapshot()["orders"] == {}


async def test_a_1c_that_publishes_only_the_loyalty_calls_is_still_a_master() -> None:
    """A service published before the mirroring operations existed (no GetOrder,
    SaveCustomer, GetCustomer in its WSDL) keeps serving balances; reading an order names
    the operation it lacks."""
    emulator = OnecEmulator()
    await emulator.start()
    older = etree.fromstring(emulator._wsdl)
    for name in ("GetOrder", "SaveCustomer", "GetCustomer"):
        for node in older.xpath(f"//*[local-name()='operation' and @name='{name}']"):
            node.getparent().remove(node)
    emulator._wsdl = etree.tostring(older)
    options = {
        "transport": "soap",
        "address": emulator.url,
        "username": "bridge",
        "password": "sandbox",
    }
    system = SystemSettings(type="onec", delivery=DeliverySettings(timeout_seconds=2))
    connector = ONEC.create("onec", system, ONEC.options_model.model_validate(options))
    try:
        await connector.start()
        customer = await connector.find_customer(phone="+79000000001")
        assert (await connector.balance(customer.customer_id)).balance == 1000
        with pytest.raises(DeliveryError) as caught:
            await connector.read_entity("order", "1")
        assert "GetOrder" in str(caught.value)
    finally:
        await connector.close()
        await emulator.stop()


async def test_a_customer_written_back_by_its_1c_id_stays_one_customer() -> None:
    """A 1C customer mirrored to RetailCRM, given a new phone there, comes back to the same
    1C customer (by 1C's id, the job's target_ref / mapped_id), not as a second one."""
    emulator, connector = await start("http")
    try:
        ivan = await connector.find_customer(phone="+79000000002")
        before = len(emulator.ledger.snapshot()["customers"])
        back = dataclasses.replace(
            job({"phone": "+79005559999", "name": "Иван"}, entity="customer", entity_id="77"),
            target_ref=ivan.customer_id,
        )
        saved = await connector.write(back)
        assert (saved["customer_id"], saved["created"]) == (ivan.customer_id, False)
        known = dataclasses.replace(
            job({"phone": "+79005558888"}, entity="customer", entity_id="77", delivery="2"),
            mapped_id=ivan.customer_id,
        )
        saved = await connector.write(known)
        assert (saved["customer_id"], saved["created"]) == (ivan.customer_id, False)
        assert len(emulator.ledger.snapshot()["customers"]) == before
        assert (await connector.find_customer(phone="+79005558888")).customer_id == ivan.customer_id
    finally:
        await connector.close()
        await emulator.stop()
