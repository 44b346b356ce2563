"""RetailCRM as the master: what a balance look-up asks of the rate-limited API.

Every call waits its turn at the key's limiter, so a look-up reads the account and the
cart's cap every time and keeps the two bonus-detail calls (pending, burning soon) per
account for a while (``connectors/retailcrm/accounts.py``); the account find_customer found
in the accounts list answers the balance asked right after. These tests pin the number of
calls and the trade-offs: details are fresh after a write through the connector, and at
most ``details_ttl`` old after a write made elsewhere; a listed account answers one balance,
within ``JUST_READ_SECONDS`` and with no write of ours in between.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from typing import TypeVar

import pytest

from bridge.ledger import LedgerBalance
from bridge.settings import SystemSettings
from connectors.retailcrm.connector import RETAILCRM, RetailcrmConnector
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.master import JUST_READ_SECONDS, RetailcrmMaster
from tests.contract.conftest import start_retailcrm

IVAN, MARIA_CARD = "+79000000001", "2000000000022"  # Maria: 100 pending, 250 burning soon
T = TypeVar("T")
ACCOUNTS = "GET v5/loyalty/accounts"
ACCOUNT = "GET v5/loyalty/account/(?P<ref>[^/]+)"
CALCULATE = "POST v5/loyalty/calculate"


@pytest.fixture
async def crm() -> AsyncIterator[tuple[RetailcrmConnector, RetailcrmEmulator]]:
    connector, emulator = await start_retailcrm()
    yield connector, emulator
    await connector.close()
    await emulator.stop()


async def look_up(
    ledger: RetailcrmMaster | RetailcrmConnector,
    emulator: RetailcrmEmulator,
    cart: Decimal | None = None,
    *,
    card: str = MARIA_CARD,
) -> tuple[LedgerBalance, int]:
    """find_customer then balance, as the bonus service does; the answer and its calls."""
    before = emulator.stats["requests"]
    customer = await ledger.find_customer(card=card)
    balance = await ledger.balance(customer.customer_id, cart)
    return balance, emulator.stats["requests"] - before


async def test_a_repeat_look_up_reads_only_the_account_and_the_cap(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    first, calls = await look_up(connector, emulator, Decimal("300.00"))
    assert calls == 4  # accounts, waiting_activation, burn_soon, calculate
    again, calls = await look_up(connector, emulator, Decimal("300.00"))
    assert calls == 2  # accounts, calculate
    assert (again.pending, again.expiring) == (first.pending, first.expiring)
    assert first.pending == Decimal("100.00")
    assert [amount for amount, _day in first.expiring] == [Decimal("250.00")]
    _, calls = await look_up(connector, emulator)
    assert calls == 1  # no cart: no calculate


async def test_details_are_kept_per_account(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    await look_up(connector, emulator)
    ivan, calls = await look_up(connector, emulator, card="2000000000015")
    assert calls == 3  # another account: its own details
    assert (ivan.pending, ivan.expiring) == (Decimal("0.00"), ())


async def test_a_write_through_the_connector_makes_the_next_look_up_read_them_again(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    before, _ = await look_up(connector, emulator)
    await connector.master.charge("op-1", before.customer_id, Decimal("100.00"), "till sale")
    after, calls = await look_up(connector, emulator)
    assert calls == 3  # the details again
    fresh = RETAILCRM.create("crm", SystemSettings(type="retailcrm"), connector.options)
    try:
        expected, _ = await look_up(fresh, emulator)  # a connector that never saw Maria
    finally:
        await fresh.close()
    assert (after.balance, after.pending, after.expiring) == (
        expected.balance,
        expected.pending,
        expected.expiring,
    )
    assert after.balance == before.balance - Decimal("100.00")


async def test_a_write_made_elsewhere_shows_in_the_details_after_the_ttl(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    now = [0.0]
    ledger = RetailcrmMaster(
        connector._client, connector._run, details_ttl=60.0, clock=lambda: now[0]
    )
    before, _ = await look_up(ledger, emulator)
    # Elsewhere: another connector (another bridge, the CRM's UI) charges Maria.
    await connector.master.charge("op-2", before.customer_id, Decimal("250.00"), "elsewhere")
    now[0] = 59.0
    kept, calls = await look_up(ledger, emulator)
    assert calls == 1
    assert kept.balance == before.balance - Decimal("250.00")  # the balance is never kept
    assert (kept.pending, kept.expiring) == (before.pending, before.expiring)
    now[0] = 60.0
    later, calls = await look_up(ledger, emulator)
    assert calls == 3
    elsewhere, _ = await look_up(connector, emulator)  # forgot Maria at its own write
    assert (later.pending, later.expiring) == (elsewhere.pending, elsewhere.expiring)


async def test_details_read_while_a_write_lands_are_not_kept(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    customer = await connector.find_customer(card=MARIA_CARD)
    runs = [0]

    async def run(fn: object) -> object:
        runs[0] += 1
        if runs[0] == 3:  # between the two detail calls of the first balance
            ledger.forget_details(customer.customer_id)
        return await connector._run(fn)  # type: ignore[arg-type]

    ledger = RetailcrmMaster(connector._client, run)
    await ledger.balance(customer.customer_id)
    before = emulator.stats["requests"]
    await ledger.balance(customer.customer_id)
    assert emulator.stats["requests"] - before == 3  # read again: account and both details


async def requests_of(emulator: RetailcrmEmulator, call: Awaitable[T]) -> tuple[T, list[str]]:
    """The answer of ``call`` and the routes of the requests it made, in order."""
    before = dict(emulator.requests_by_route)
    answer = await call
    made = Counter(emulator.requests_by_route) - Counter(before)
    return answer, sorted(made.elements())


async def test_a_warm_balance_is_the_account_alone_and_a_cart_adds_calculate(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    customer = await connector.find_customer(card=MARIA_CARD)
    await connector.balance(customer.customer_id)  # the details read once
    for cart, routes in ((None, [ACCOUNT]), (Decimal("300.00"), [ACCOUNT, CALCULATE])):
        found, made = await requests_of(emulator, connector.balance(customer.customer_id, cart))
        assert made == routes  # what the bonus service asks on a warm look-up
        assert found.balance == Decimal("250.00")


async def test_a_listed_account_answers_one_balance_only(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    await look_up(connector, emulator)  # the details read once
    customer, made = await requests_of(emulator, connector.find_customer(card=MARIA_CARD))
    assert made == [ACCOUNTS]
    listed, made = await requests_of(emulator, connector.balance(customer.customer_id))
    assert made == []  # the list entry holds the amount and the level
    again, made = await requests_of(emulator, connector.balance(customer.customer_id))
    assert made == [ACCOUNT]  # used once: a later balance reads the account
    assert (listed.balance, listed.level) == (again.balance, again.level)
    assert listed.level is not None


async def test_a_listed_account_is_not_used_after_a_write_or_when_old(
    crm: tuple[RetailcrmConnector, RetailcrmEmulator],
) -> None:
    connector, emulator = crm
    now = [0.0]
    ledger = RetailcrmMaster(connector._client, connector._run, clock=lambda: now[0])
    before, _ = await look_up(ledger, emulator)
    customer = await ledger.find_customer(card=MARIA_CARD)
    await ledger.charge("op-3", customer.customer_id, Decimal("100.00"), "till sale")
    after, made = await requests_of(emulator, ledger.balance(customer.customer_id))
    assert ACCOUNT in made
    assert after.balance == before.balance - Decimal("100.00")  # not the listed amount
    await ledger.find_customer(card=MARIA_CARD)
    now[0] += JUST_READ_SECONDS + 0.1
    _, made = await requests_of(emulator, ledger.balance(customer.customer_id))
    assert ACCOUNT in made
