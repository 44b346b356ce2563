"""Who a phone or card is, remembered by the bonus service (issue 16), counted at the
1C emulator over loopback: a warm look-up is one master call (GetBalance)."""

from __future__ import annotations

from collections import Counter

import structlog

from bridge.bonus.phones import mask
from tests.support.bonus import Bonus, BonusFactory, bonus_factory

__all__ = ["bonus_factory"]  # the fixture, used by name

PHONE, CARD = "+79000000001", "2000000000015"
NEW_PHONE = "+79000000077"


def calls(bonus: Bonus) -> Counter[str]:
    """The 1C operations served so far, by name (a copy)."""
    return Counter(bonus.emulator.calls)


async def look_up(bonus: Bonus, customer: dict[str, str]) -> Counter[str]:
    """One look-up with a cart; the 1C calls it made."""
    before = calls(bonus)
    status, body = await bonus.balance({"customer": customer, "cart": {"total": "300.00"}})
    assert status == 200, body
    assert (body["balance"], body["max_redeemable"]) == ("1000.00", "150.00")
    return calls(bonus) - before


async def test_a_warm_look_up_is_one_call_and_each_key_is_remembered_alone(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec")
    assert await look_up(bonus, {"phone": "8 900 000-00-01"}) == {"find_customer": 1, "balance": 1}
    for notation in ("8 900 000-00-01", PHONE, "+7 (900) 000 00 01"):  # one normalised key
        assert await look_up(bonus, {"phone": notation}) == {"balance": 1}
    assert await look_up(bonus, {"card": CARD}) == {"find_customer": 1, "balance": 1}
    assert await look_up(bonus, {"card": CARD}) == {"balance": 1}
    cid = bonus.runtime.bonus.known.get(f"phone:{PHONE}")  # type: ignore[union-attr]
    assert cid is not None
    by_id = {"system": "onec", "id": cid.customer_id}
    assert await look_up(bonus, by_id) == {"find_customer": 1, "balance": 1}
    assert await look_up(bonus, by_id) == {"balance": 1}


async def test_nothing_is_remembered_with_a_ttl_of_zero_nor_for_an_unknown_phone(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec", customer_cache_seconds=0)
    for _ in range(2):
        assert await look_up(bonus, {"phone": PHONE}) == {"find_customer": 1, "balance": 1}
    before = calls(bonus)
    for _ in range(2):
        status, body = await bonus.balance({"customer": {"phone": "+79000000099"}})
        assert (status, body["code"]) == (404, "unknown_customer")
    assert calls(bonus) - before == {"find_customer": 2}


async def test_an_id_the_master_no_longer_knows_is_dropped_and_resolved_again_at_once(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec")
    await look_up(bonus, {"phone": PHONE})
    # 1C answers the next call (the warm look-up's GetBalance) with unknown_customer, as it
    # does for a customer deleted or merged away since it was found.
    bonus.emulator.faults.set(soap_fault="unknown_customer", count=1)
    with structlog.testing.capture_logs() as logs:
        made = await look_up(bonus, {"phone": PHONE})  # answered, within the one request
    # The refused GetBalance is answered by the injected fault before 1C counts a call.
    assert bonus.emulator.faults.soap_fault is None  # taken: the warm call was made
    assert made == {"find_customer": 1, "balance": 1}
    dropped = [e for e in logs if e["event"] == "known_customer_dropped"]
    assert len(dropped) == 1 and dropped[0]["system"] == "onec"
    assert PHONE not in str(logs) and PHONE[1:] not in str(logs)  # phones never logged
    assert await look_up(bonus, {"phone": PHONE}) == {"balance": 1}  # remembered anew


async def test_a_customer_gone_for_good_is_asked_about_once_more_only(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec")
    await look_up(bonus, {"phone": PHONE})
    # Both the warm GetBalance and the FindCustomer after it: unknown_customer.
    bonus.emulator.faults.set(soap_fault="unknown_customer", count=2)
    status, body = await bonus.balance({"customer": {"phone": PHONE}})
    assert (status, body["code"]) == (404, "unknown_customer")
    assert bonus.emulator.faults.soap_fault is None  # both taken, no third call
    assert bonus.runtime.bonus.known.get(f"phone:{PHONE}") is None  # type: ignore[union-attr]
    assert await look_up(bonus, {"phone": PHONE}) == {"find_customer": 1, "balance": 1}


async def test_a_reservation_asks_the_master_for_the_phone_on_file_now(
    bonus_factory: BonusFactory,
) -> None:
    bonus = await bonus_factory("onec")
    await look_up(bonus, {"card": CARD})  # remembers the card's customer, phone PHONE
    cid = bonus.runtime.bonus.known.get(f"card:{CARD}")  # type: ignore[union-attr]
    assert cid is not None and cid.phone == PHONE
    bonus.emulator.ledger.change_customer(id=cid.customer_id, phone=NEW_PHONE)  # in 1C
    body = {"customer": {"card": CARD}, "amount": "10.00", "order": {"system": "onec", "id": "t"}}
    before = calls(bonus)
    status, rsv = await bonus.call("POST", "/api/v1/bonus/reservations", body)
    assert status == 201, rsv
    assert rsv["code_sent_to"] == mask(NEW_PHONE)  # PRODUCT 3.2: the phone on file now
    assert (calls(bonus) - before)["find_customer"] == 1
    assert await look_up(bonus, {"card": CARD}) == {"balance": 1}  # the memory refreshed
    known = bonus.runtime.bonus.known.get(f"card:{CARD}")  # type: ignore[union-attr]
    assert known is not None and known.phone == NEW_PHONE
