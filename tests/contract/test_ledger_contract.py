"""What every bonus master must do, over the wire, whatever its protocol or names."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from bridge.errors import AuthError, TransientError
from bridge.ledger import Ledger, LedgerErrorCode, LedgerRefused
from tests.contract.conftest import Variant

PHONE = "+79000000001"
CARD = "2000000000015"


async def customer_id(master: Variant) -> str:
    return str((await master.connector.find_customer(phone=PHONE)).customer_id)


async def test_it_is_a_ledger(master: Variant) -> None:
    assert isinstance(master.connector, Ledger)


@pytest.mark.parametrize("phone", ["+79000000001", "+7 900 000-00-01", "89000000001"])
async def test_find_customer_by_phone_returns_the_phone_on_file(
    master: Variant, phone: str
) -> None:
    found = await master.connector.find_customer(phone=phone)
    assert found.phone == PHONE
    assert found.card == CARD
    by_card = await master.connector.find_customer(card=CARD)
    by_id = await master.connector.find_customer(customer_id=found.customer_id)
    assert by_card == by_id == found


async def test_unknown_customer_is_a_refusal_with_its_code(master: Variant) -> None:
    with pytest.raises(LedgerRefused) as caught:
        await master.connector.find_customer(phone="+79990000000")
    assert caught.value.code is LedgerErrorCode.UNKNOWN_CUSTOMER


async def test_balance_and_max_redeemable(master: Variant) -> None:
    cid = await customer_id(master)
    plain = await master.connector.balance(cid)
    assert (plain.balance, plain.reserved, plain.available) == (
        Decimal("1000.00"),
        Decimal("0.00"),
        Decimal("1000.00"),
    )
    assert plain.as_of.tzinfo is not None
    with_cart = await master.connector.balance(cid, Decimal("300.00"))
    assert with_cart.max_redeemable is not None
    assert Decimal(0) < with_cart.max_redeemable <= Decimal("300.00")


async def test_hold_then_release_restores_the_available_balance(master: Variant) -> None:
    ledger = master.connector
    cid = await customer_id(master)
    held = await ledger.reserve("op-h1", cid, Decimal("100.00"), master.order_id)
    assert held.status == "reserved"
    assert (await ledger.balance(cid)).available == Decimal("900.00")
    again = await ledger.reserve("op-h1", cid, Decimal("100.00"), master.order_id)
    assert (again.status, again.amount) == (held.status, held.amount)
    assert (await ledger.balance(cid)).available == Decimal("900.00")  # held once
    with pytest.raises(LedgerRefused) as conflict:
        await ledger.reserve("op-h1", cid, Decimal("150.00"), master.order_id)
    assert conflict.value.code is LedgerErrorCode.OPERATION_CONFLICT
    assert held.reservation_id is not None
    # Known without asking: how the bridge releases a hold whose answer a crash lost.
    assert ledger.reservation_ref("op-h1", master.order_id) == held.reservation_id
    released = await ledger.release("op-h2", held.reservation_id)
    assert released.status == "released"
    assert (await ledger.balance(cid)).available == Decimal("1000.00")


async def test_reserve_commit_release_and_idempotency(master: Variant) -> None:
    master.requires("holds")
    ledger = master.connector
    cid = await customer_id(master)
    held = await ledger.reserve("op-r1", cid, Decimal("100.00"), "order-1")
    assert (held.status, held.available) == ("reserved", Decimal("900.00"))
    again = await ledger.reserve("op-r1", cid, Decimal("100.00"), "order-1")
    assert again == held
    assert (await ledger.balance(cid)).available == Decimal("900.00")
    with pytest.raises(LedgerRefused) as conflict:
        await ledger.reserve("op-r1", cid, Decimal("150.00"), "order-1")
    assert conflict.value.code is LedgerErrorCode.OPERATION_CONFLICT

    done = await ledger.commit("op-c1", "op-r1", Decimal("60.00"))
    assert done.status == "committed"
    assert await ledger.commit("op-c1", "op-r1", Decimal("60.00")) == done
    after = await ledger.balance(cid)
    assert (after.balance, after.reserved, after.available) == (
        Decimal("940.00"),
        Decimal("0.00"),
        Decimal("940.00"),
    )
    with pytest.raises(LedgerRefused) as closed:
        await ledger.release("op-x1", "op-r1")
    assert closed.value.code is LedgerErrorCode.RESERVATION_CLOSED

    await ledger.reserve("op-r2", cid, Decimal("40.00"), "order-2")
    released = await ledger.release("op-l2", "op-r2")
    assert released.status == "released"
    assert (await ledger.balance(cid)).available == Decimal("940.00")


async def test_refusals_carry_their_codes(master: Variant) -> None:
    master.requires("holds")
    ledger = master.connector
    cid = await customer_id(master)
    cases = [
        (ledger.reserve("op-big", cid, Decimal("5000.00"), "o"), "insufficient_balance"),
        (ledger.commit("op-c9", "no-such-reservation"), "reservation_not_found"),
    ]
    for call, code in cases:
        with pytest.raises(LedgerRefused) as caught:
            await call
        assert caught.value.code == code


async def test_accrue_and_reverse(master: Variant) -> None:
    master.requires("reverse")
    ledger = master.connector
    cid = await customer_id(master)
    await ledger.accrue("op-a1", cid, Decimal("50.00"), "order-3")
    assert (await ledger.balance(cid)).balance == Decimal("1050.00")
    await ledger.reverse("op-v1", "op-a1", Decimal("20.00"))
    assert (await ledger.balance(cid)).balance == Decimal("1030.00")
    with pytest.raises(LedgerRefused) as caught:
        await ledger.reverse("op-v2", "op-a1", Decimal("40.00"))
    assert caught.value.code is LedgerErrorCode.AMOUNT_EXCEEDS_ORIGINAL


async def test_probe_reaches_the_service(master: Variant) -> None:
    assert master.emulator.url.split("//")[1].split("/")[0] in await master.connector.probe()


async def test_change_feed_is_polled_from_the_cursor(master: Variant) -> None:
    master.requires("change_feed")
    master.emulator.ledger.push_change("receipt", "ЧК-1")
    master.emulator.ledger.push_change("customer", "c-2")
    first = await master.connector.poll("changes", None)
    assert [(e.entity, e.entity_id) for e in first.events] == [
        ("receipt", "ЧК-1"),
        ("customer", "c-2"),
    ]
    assert await master.connector.poll("changes", first.cursor) == type(first)(
        [], first.cursor, False
    )


async def test_a_hanging_master_never_holds_the_caller_past_the_timeout(
    master: Variant,
) -> None:
    cid = await customer_id(master)
    master.emulator.faults.set(hang=10)
    started = time.monotonic()
    with pytest.raises(TransientError):
        await master.connector.balance(cid)
    assert time.monotonic() - started < master.timeout + 1.0


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ({"soap_fault": "insufficient_balance"}, LedgerRefused),
        ({"soap_fault": "Ошибка СУБД: блокировка"}, TransientError),
        ({"http_status": 500}, TransientError),
        ({"http_status": 503}, TransientError),
        ({"http_status": 401}, AuthError),
        ({"outage": True}, TransientError),
        ({"hang": 10}, TransientError),
    ],
)
async def test_each_injected_fault_is_classified_as_the_table_says(
    master: Variant, fault: dict[str, object], expected: type[Exception]
) -> None:
    if "soap_fault" in fault:
        master.requires("business_faults")
    cid = await customer_id(master)
    master.emulator.faults.set(**fault)
    with pytest.raises(expected):
        await asyncio.wait_for(master.connector.balance(cid), master.timeout + 2)
