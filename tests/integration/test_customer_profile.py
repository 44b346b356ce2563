"""The questionnaire and accumulate-only (issue 17): prefilled from 1C, checked field by
field, saved back; until it is complete a card accrues but spends nothing (the balance says
why, a reservation is refused naming the missing fields); saving it lifts that."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from bridge.store.records import EventFilter
from tests.support.bonus import BonusFactory, bonus_factory
from tests.support.customers import BASE, customers_bridge, prove, with_proof

__all__ = ["bonus_factory"]  # the fixture, used by name

IVAN = "+79000000001"  # the sandbox's "Иван Петров": names prefilled, no birth date
RSV = "/api/v1/bonus/reservations"


async def test_an_incomplete_profile_accrues_spends_nothing_until_it_is_saved_complete(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path, accumulate_only_until_profile=True)
    status, before = await bonus.balance({"customer": {"phone": IVAN}})
    assert status == 200, before
    assert (before["spendable"], before["reason"], before["missing"]) == (
        False, "profile_incomplete", ["birth_date"],
    )  # fmt: skip

    # A sale at 1C accrues as usual (the till's own accrual, by 1C's rules).
    customer_id = before["customer"]["id"]
    bonus.emulator.ledger.accrue("sale-77", customer_id, Decimal("25.50"), "till-77")
    status, accrued = await bonus.balance({"customer": {"phone": IVAN}})
    assert (status, accrued["balance"], accrued["spendable"]) == (200, "1025.50", False)

    body = {
        "customer": {"phone": IVAN},
        "amount": "100.00",
        "order": {"system": "onec", "id": "till-1"},
    }
    status, refused = await bonus.call("POST", RSV, body)
    assert (status, refused["code"], refused["missing"]) == (
        409,
        "profile_incomplete",
        ["birth_date"],
    )

    proof = await prove(bonus, IVAN)
    status, shown = await bonus.call("GET", f"{BASE}/profile", None, with_proof(proof))
    assert status == 200, shown
    assert (shown["profile"]["first_name"], shown["profile"]["last_name"]) == ("Иван", "Петров")
    assert (shown["complete"], shown["missing"]) == (False, ["birth_date"])
    status, cards = await bonus.call("GET", f"{BASE}/cards", None, with_proof(proof))
    assert [c["status"] for c in cards["cards"]] == ["accumulate_only"], cards

    status, bad = await bonus.call(
        "PUT", f"{BASE}/profile", {"birth_date": "1990-13-01"}, with_proof(proof)
    )
    assert (status, bad["code"], bad["field"]) == (422, "invalid_request", "birth_date")
    status, saved = await bonus.call(
        "PUT", f"{BASE}/profile", {"birth_date": "1990-05-01", "email": "Ivan@Shop.example"},
        with_proof(proof),
    )  # fmt: skip
    assert status == 200, saved
    assert (saved["complete"], saved["profile"]["email"]) == (True, "ivan@shop.example")
    assert bonus.emulator.ledger.get_profile(customer_id).birth_date == "1990-05-01"  # in 1C
    # ... and a change of the customer stored for the routes to mirror to the others.
    events = await bonus.runtime.store.list_events(EventFilter(source="onec"))
    assert [(e.entity, e.entity_id) for e in events if e.entity == "customer"] == [
        ("customer", customer_id)
    ]

    status, held = await bonus.call("POST", RSV, body)
    assert status == 201, held  # the same reservation goes through now
    status, after = await bonus.balance({"customer": {"phone": IVAN}})
    assert after["spendable"] is True and "reason" not in after


async def test_without_the_setting_an_incomplete_profile_spends_as_always(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    status, balance = await bonus.balance({"customer": {"phone": IVAN}})
    assert (status, balance["spendable"]) == (200, True)
    assert "reason" not in balance
