"""1C answers in its own spellings, over the wire (issue 12, point 12).

A hand-written 1C service writes values as 1C's own functions print them (values.py): a
balance ``"1 000,50"`` with a no-break space and a decimal comma, a flag ``"false"`` or
``"Истина"``, the empty date ``0001-01-01T00:00:00``. The emulator answers so when told
(``faults.values``), over the HTTP service and SOAP alike. The bridge reads every such
value exactly; a value that still cannot be read is the master's fault, named (502
``master_invalid_answer`` with the field), never a 500 and never a spin of the poller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import InvalidAnswer
from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import Bonus, BonusFactory, bonus_config, bonus_factory
from tests.support.onec import onec_options
from tests.support.waiting import eventually, until

__all__ = ["bonus_factory"]  # the fixture, used by name

NBSP = "\u00a0"
IVAN = "+79000000001"  # the sandbox's customer with 1,000 points
TRANSPORTS = ["http", "soap"]
SPELLED_BALANCE = {
    "balance": f"1{NBSP}000,50",  # Формат(Число, "ЧДЦ=2") in a Russian infobase
    "reserved": "0,00",
    "available": "1 000,50",  # typed by hand: a plain space
    "max_redeemable": "150,5",
    "as_of": "0001-01-01T00:00:00",  # 1C's empty date
}


@pytest.fixture(params=TRANSPORTS)
async def onec(request: pytest.FixtureRequest) -> AsyncIterator[tuple[OnecEmulator, OnecConnector]]:
    """A started emulator and a connector talking to it over ``transport``."""
    emulator = OnecEmulator()
    await emulator.start()
    options = onec_options(emulator, request.param)
    system = SystemSettings(type="onec", delivery=DeliverySettings(timeout_seconds=2))
    connector = ONEC.create("onec", system, ONEC.options_model.model_validate(options))
    await connector.start()
    try:
        yield emulator, connector
    finally:
        await connector.close()
        await emulator.stop()


async def test_a_balance_in_1c_spellings_is_read_exactly(
    onec: tuple[OnecEmulator, OnecConnector],
) -> None:
    emulator, connector = onec
    customer = await connector.find_customer(phone=IVAN)
    emulator.faults.set(values=SPELLED_BALANCE)
    before = datetime.now(UTC)
    balance = await connector.balance(customer.customer_id, Decimal("301.00"))
    assert (balance.balance, balance.reserved, balance.available) == (
        Decimal("1000.50"),
        Decimal("0.00"),
        Decimal("1000.50"),
    )
    assert balance.max_redeemable == Decimal("150.5")
    # An empty AsOf: the balance is as of the answer.
    assert before - timedelta(seconds=1) <= balance.as_of <= datetime.now(UTC)
    # JSON numbers (ЗаписатьJSON writes an Число so), exact, to the kopeck.
    emulator.faults.set(values={"balance": 1000.1, "reserved": 0, "available": 0.3})
    balance = await connector.balance(customer.customer_id)
    assert (str(balance.balance), str(balance.reserved), str(balance.available)) == (
        "1000.10",
        "0.00",
        "0.30",
    )


async def test_more_is_read_in_every_spelling_and_never_without_progress(
    onec: tuple[OnecEmulator, OnecConnector],
) -> None:
    emulator, connector = onec
    for n in (1, 2):
        emulator.ledger.enter_order({"number": f"T-{n}", "status": "Новый"})
    for spelled, more in [("false", False), ("Ложь", False), ("Нет", False), ("Истина", True)]:
        emulator.faults.set(values={"more": spelled})
        result = await connector.poll("changes", None)
        assert (len(result.events), result.cursor, result.more) == (2, "2", more), spelled
    # "More" from where it was asked moves nothing: believed, the poller would call again at
    # once, for ever. Numbers in 1C's spelling too.
    emulator.faults.set(values={"more": "true", "last_message_no": "2"})
    result = await connector.poll("changes", "2")
    assert (result.events, result.cursor, result.more) == ([], "2", False)


async def test_unreadable_values_are_the_masters_fault_naming_the_field(
    onec: tuple[OnecEmulator, OnecConnector],
) -> None:
    emulator, connector = onec
    customer = await connector.find_customer(phone=IVAN)
    cases: list[tuple[dict[str, Any], str, Any]] = [
        ({"balance": "много"}, "balance", connector.balance(customer.customer_id)),
        ({"more": "maybe"}, "more", connector.poll("changes", None)),
        ({"last_message_no": "many"}, "last_message_no", connector.poll("changes", None)),
        ({"customer_id": None}, "customer_id", connector.find_customer(phone=IVAN)),
    ]
    for values, field, call in cases:
        emulator.faults.set(values=values)
        with pytest.raises(InvalidAnswer) as caught:
            await call
        assert caught.value.field == field
        assert field in str(caught.value)


def http_transport(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with 1C reached through its HTTP service (the sandbox serves both)."""
    options = config["systems"]["onec"]["options"]
    root = options.pop("address").split("/ws/")[0]
    options |= {"transport": "http", "url": f"{root}/hs/loyalty"}
    return config


async def bridge_on(bonus_factory: BonusFactory, tmp_path: Path, transport: str) -> Bonus:
    config = bonus_config(tmp_path, "onec")
    return await bonus_factory(
        "onec", config=http_transport(config) if transport == "http" else config
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_bonus_api_reads_1c_spellings_and_names_what_it_cannot(
    bonus_factory: BonusFactory, tmp_path: Path, transport: str
) -> None:
    bonus = await bridge_on(bonus_factory, tmp_path, transport)
    emulator: OnecEmulator = bonus.emulator
    emulator.faults.set(values=SPELLED_BALANCE)
    status, body = await bonus.balance({"customer": {"phone": IVAN}, "cart": {"total": "300"}})
    assert status == 200, body
    assert (body["balance"], body["available"], body["max_redeemable"]) == (
        "1000.50",
        "1000.50",
        "150.50",
    )
    emulator.faults.set(values={"balance": "много"})
    status, body = await bonus.balance({"customer": {"phone": IVAN}})
    assert status == 502, body
    assert (body["code"], body["field"]) == ("master_invalid_answer", "balance")
    assert body["_retry_after"] is not None
    assert "много" not in body["detail"]  # the value stays in the log, not in the answer


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_poller_does_not_spin_on_more(
    bonus_factory: BonusFactory, tmp_path: Path, transport: str
) -> None:
    """1C's HTTP service answering ``"more": "false"`` (a text) made the poller call
    GetChanges thousands of times a second."""
    config = bonus_config(tmp_path, "onec")
    config["systems"]["onec"]["options"]["poll_interval"] = 0.5
    bonus = await bonus_factory(
        "onec", config=http_transport(config) if transport == "http" else config
    )
    emulator: OnecEmulator = bonus.emulator
    emulator.ledger.enter_order({"number": "T-1", "status": "Новый"})
    await eventually(lambda: bonus.runtime.store.get_cursor("onec", "changes"))
    for spelled in ("false", "true", "Истина", "maybe"):
        emulator.faults.set(values={"more": spelled})
        before = emulator.calls["get_changes"]
        await asyncio.sleep(1.5)
        calls = emulator.calls["get_changes"] - before
        assert 1 <= calls <= 6, (spelled, calls)  # every 0.5 s (a failing one backs off)


async def test_a_reservation_the_master_answers_unreadably_is_named_and_its_hold_owed_back(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bridge_on(bonus_factory, tmp_path, "http")
    emulator: OnecEmulator = bonus.emulator
    emulator.faults.set(values={"amount": "сто"})  # Operation.Amount, of Reserve (and Release)
    body = {
        "customer": {"phone": IVAN},
        "amount": "100.00",
        "order": {"system": "onec", "id": "till-1"},
    }
    status, answer = await bonus.call("POST", "/api/v1/bonus/reservations", body)
    assert status == 502, answer
    assert (answer["code"], answer["field"]) == ("master_invalid_answer", "amount")
    # The hold may have landed: a release is owed and made once 1C answers readably again.
    emulator.faults.clear()
    customer = emulator.ledger.find_customer(phone=IVAN).customer_id
    await until(lambda: emulator.ledger.balance(customer).reserved == 0, 10)
