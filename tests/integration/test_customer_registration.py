"""Automatic registration (issue 17), over the wire: 1C (the emulator) is the bonus master;
a RetailCRM manager takes a phone order from a first-time customer; the bridge polls the
order, registers the phone at 1C and texts one link whose proof opens the customer's cards,
however often the order changes afterwards."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import structlog

from bridge.logs import configure_logging
from bridge.settings import LogFormat, LogSettings
from bridge.store.customer_records import RecordKind, customer_records_of
from connectors.onec.emulator.checks import LedgerError
from tests.support.bonus import Bonus, BonusFactory, bonus_factory
from tests.support.customers import BASE, customers_config, with_proof
from tests.support.emulators import onec_emulator
from tests.support.mirroring import create_order, crm_call, edit_order, wait_until_none_active
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name

NEW = "+79005550101"  # in neither sandbox
LINK = "https://shop.example/profile?proof={proof}"


def registration_config(tmp_path: Path, channel: str | None = "phone") -> dict[str, Any]:
    """1C the master; RetailCRM's orders polled every 0.2 s and registering customers."""
    source: dict[str, Any] = {"system": "retailcrm"}
    if channel is not None:
        source["channel"] = channel
    config = customers_config(
        tmp_path,
        "onec",
        registration={"sources": [source], "text": "Добро пожаловать: {link}", "link": LINK},
    )
    config["systems"]["retailcrm"]["options"]["poll_interval"] = 0.2
    return config


async def started(factory: BonusFactory, config: dict[str, Any]) -> Bonus:
    bonus = await factory("onec", config=config)
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    return bonus


def phone_order(number: str, phone: str = NEW, method: str = "phone") -> dict[str, Any]:
    """A RetailCRM order taken by phone, with the caller's contact copy and no customer."""
    return {
        "number": number,
        "status": "new",
        "orderMethod": method,
        "firstName": "Анна",
        "lastName": "Новикова",
        "phone": "8 (900) 555-01-01" if phone == NEW else phone,
        "items": [{"offer": {"externalId": "SKU-A"}, "quantity": 1, "initialPrice": 500}],
    }


async def texts_to(bonus: Bonus, phone: str) -> list[str]:
    found = await bonus.runtime.store.list_sandbox_messages(phone, 100)
    return [m.text for m in found]


def onec_knows(bonus: Bonus, phone: str) -> bool:
    try:
        onec_emulator(bonus.runtime).ledger.find_customer(phone=phone)
    except LedgerError:
        return False
    return True


async def test_a_new_phone_order_registers_once_and_texts_one_link(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(level="debug", format=LogFormat.JSON), stream=stream, cache=False)
    try:
        bonus = await started(bonus_factory, registration_config(tmp_path))
        assert not onec_knows(bonus, NEW)
        order_id = (await crm_call(bonus, create_order(phone_order("P-1"))))["id"]

        async def texted() -> list[str]:
            return await texts_to(bonus, NEW)

        (text,) = await eventually(texted)
        customer = onec_emulator(bonus.runtime).ledger.find_customer(phone=NEW)
        assert customer.name == "Анна Новикова"
        assert text.startswith("Добро пожаловать: https://shop.example/profile?proof=")
        proof = parse_qs(urlparse(text.split(": ", 1)[1]).query)["proof"][0]
        status, cards = await bonus.call("GET", f"{BASE}/cards", None, with_proof(proof))
        assert status == 200, cards
        assert cards["phone"] == "+7 900 ***-**-01"
        assert [c["status"] for c in cards["cards"]] == ["active"]

        for n in range(5):  # the manager edits the order five times
            change = {"id": order_id, "managerComment": f"call back #{n}"}
            await crm_call(bonus, edit_order(change))
        status_change = {"id": order_id, "status": "complete"}
        await crm_call(bonus, edit_order(status_change))
        await asyncio.sleep(1.0)  # polled every 0.2 s
        await wait_until_none_active(bonus.runtime)
        assert len(await texts_to(bonus, NEW)) == 1
        record = await customer_records_of(bonus.runtime.store).get_record(
            RecordKind.REGISTRATION, NEW
        )
        assert record is not None
        assert (record.status, record.body["customer_id"]) == ("notified", customer.customer_id)
        logged = stream.getvalue()
        assert "customer_registered" in logged and "registration_sms_sent" in logged
        assert proof not in logged and proof[3:30] not in logged
        assert NEW not in logged  # masked: +7 900 ***-**-01
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


async def test_a_second_order_of_the_phone_and_other_channels_send_nothing(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await started(bonus_factory, registration_config(tmp_path))
    web = "+79005550102"
    await crm_call(bonus, create_order(phone_order("W-1", web, method="shopping-cart")))
    await crm_call(bonus, create_order(phone_order("P-2")))
    await eventually(lambda: texts_to(bonus, NEW))
    await crm_call(bonus, create_order(phone_order("P-3")))  # the same phone again
    known = "+79000000001"  # seeded at 1C
    await crm_call(bonus, create_order(phone_order("P-4", known)))
    await asyncio.sleep(1.0)
    await wait_until_none_active(bonus.runtime)
    assert len(await texts_to(bonus, NEW)) == 1
    assert await texts_to(bonus, web) == []  # a web order: not the configured channel
    assert not onec_knows(bonus, web)
    assert await texts_to(bonus, known) == []  # 1C knows them: nothing to register
    records = customer_records_of(bonus.runtime.store)
    assert [r.subject for r in await records.list_records(RecordKind.REGISTRATION)] == [NEW]


async def test_while_1c_is_down_the_delivery_retries_and_registers_once(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    # No channel configured: an order of any channel registers its customer.
    bonus = await started(bonus_factory, registration_config(tmp_path, channel=None))
    onec = onec_emulator(bonus.runtime)
    onec.faults.set(outage=True)
    await crm_call(bonus, create_order(phone_order("P-5", method="shopping-cart")))

    async def retried() -> bool:
        depth = await bonus.runtime.store.queue_depth()
        return any(d.target == "_customers" and d.status == "retry" and d.count for d in depth)

    await eventually(retried)
    assert await texts_to(bonus, NEW) == []
    onec.faults.set(outage=False)
    await eventually(lambda: texts_to(bonus, NEW), 30)
    await wait_until_none_active(bonus.runtime, 30)
    assert len(await texts_to(bonus, NEW)) == 1
    assert onec_knows(bonus, NEW)
