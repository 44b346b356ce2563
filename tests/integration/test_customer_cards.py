"""The seed journey against the 1C sandbox (issue 17): a phone with three cards (one an
ownerless card attached first) → verify → list → merge into the second → the others
blocked at 1C, the main card holds 200.50 exactly; a proof of one phone never reads or
moves another's cards."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.support.bonus import Bonus, BonusFactory, bonus_factory
from tests.support.customers import BASE, customers_bridge, prove, with_proof

__all__ = ["bonus_factory"]  # the fixture, used by name

MARIA = "+79000000005"  # the sandbox's phone with two cards (120.50 main, 80.00)
OWNERLESS = "2000000000077"  # issued, never registered (0.00)
IVAN = "+79000000001"  # the sandbox's first customer, one card


async def cards(bonus: Bonus, proof: str) -> dict[str, dict[str, Any]]:
    status, body = await bonus.call("GET", f"{BASE}/cards", None, with_proof(proof))
    assert status == 200, body
    return {c["card"]: c for c in body["cards"]}


async def merged(bonus: Bonus, proof: str, merge_id: str, seconds: float = 15) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        status, body = await bonus.call("GET", f"{BASE}/merges/{merge_id}", None, with_proof(proof))
        assert status == 200, body
        if body["status"] != "running":
            return dict(body)
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.1)


async def test_the_seed_journey_merges_three_cards_into_the_second_to_the_kopeck(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    proof = await prove(bonus, MARIA)
    before = await cards(bonus, proof)
    assert {n: (c["balance"], c["status"]) for n, c in before.items()} == {
        "2000000000053": ("120.50", "active"),
        "2000000000060": ("80.00", "active"),
    }
    status, attached = await bonus.call(
        "POST", f"{BASE}/cards/attach", {"card": OWNERLESS}, with_proof(proof)
    )
    assert (status, attached["card"], attached["balance"]) == (200, OWNERLESS, "0.00"), attached
    listed = await cards(bonus, proof)
    assert sorted(listed) == ["2000000000053", "2000000000060", OWNERLESS]

    status, started = await bonus.call(
        "POST", f"{BASE}/cards/merge", {"main_card": "2000000000060"}, with_proof(proof)
    )
    assert (status, started["status"]) == (202, "running"), started
    done = await merged(bonus, proof, started["merge_id"])
    assert done["status"] == "done", done
    assert {c["card"]: c["state"] for c in done["cards"]} == {
        "2000000000053": "moved",
        OWNERLESS: "empty",
    }
    after = await cards(bonus, proof)
    assert {n: (c["balance"], c["status"], c["main"]) for n, c in after.items()} == {
        "2000000000053": ("0.00", "blocked", False),
        "2000000000060": ("200.50", "active", True),
        OWNERLESS: ("0.00", "blocked", False),
    }
    # The balance look-up by phone now reads the main card.
    status, balance = await bonus.balance({"customer": {"phone": MARIA}})
    assert (status, balance["balance"]) == (200, "200.50"), balance


async def test_a_proof_of_one_phone_never_reads_or_moves_anothers_cards(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    maria = await prove(bonus, MARIA)
    ivan = await prove(bonus, IVAN)
    assert sorted(await cards(bonus, ivan)) == ["2000000000015"]  # Ivan's own only
    status, refused = await bonus.call(
        "POST", f"{BASE}/cards/merge", {"main_card": "2000000000053"}, with_proof(ivan)
    )
    assert (status, refused["code"]) == (404, "unknown_card")  # Maria's card: not Ivan's
    status, taken = await bonus.call(
        "POST", f"{BASE}/cards/attach", {"card": "2000000000060"}, with_proof(ivan)
    )
    assert (status, taken["code"]) == (409, "card_taken")
    status, started = await bonus.call(
        "POST", f"{BASE}/cards/merge", {"main_card": "2000000000053"}, with_proof(maria)
    )
    assert status == 202, started
    status, hidden = await bonus.call(
        "GET", f"{BASE}/merges/{started['merge_id']}", None, with_proof(ivan)
    )
    assert (status, hidden["code"]) == (404, "merge_not_found")
    assert (await cards(bonus, maria))["2000000000060"]["balance"] in ("80.00", "0.00")
    assert (await cards(bonus, ivan))["2000000000015"]["balance"] == "1000.00"  # untouched


async def test_a_master_that_cannot_move_points_refuses_a_merge_at_once(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path, master="retailcrm")
    proof = await prove(bonus, IVAN)
    listed = await cards(bonus, proof)
    assert listed, "RetailCRM's sandbox customer has a loyalty account"
    main = next(iter(listed))
    status, refused = await bonus.call(
        "POST", f"{BASE}/cards/merge", {"main_card": main}, with_proof(proof)
    )
    assert (status, refused["code"]) == (501, "not_supported"), refused
    assert "operation id" in refused["detail"] or "RetailCRM" in refused["detail"], refused


async def test_a_card_with_points_held_refuses_the_merge_and_nothing_moves(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    proof = await prove(bonus, MARIA)
    main = bonus.emulator.ledger.get_card("2000000000053")
    bonus.emulator.ledger.reserve("till-hold-1", main.customer_id, "20.00", "till-9")  # a till's
    status, refused = await bonus.call(
        "POST", f"{BASE}/cards/merge", {"main_card": "2000000000060"}, with_proof(proof)
    )
    assert (status, refused["code"], refused["cards"]) == (
        409,
        "open_reservation",
        ["2000000000053"],
    )
    after = await cards(bonus, proof)
    assert (after["2000000000053"]["balance"], after["2000000000053"]["status"]) == (
        "120.50",
        "active",
    )
    assert after["2000000000060"]["balance"] == "80.00"


async def test_two_merges_of_one_phone_at_once_one_runs_the_other_is_refused(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    proof = await prove(bonus, MARIA)
    answers = await asyncio.gather(
        bonus.call(
            "POST", f"{BASE}/cards/merge", {"main_card": "2000000000060"}, with_proof(proof)
        ),
        bonus.call(
            "POST", f"{BASE}/cards/merge", {"main_card": "2000000000053"}, with_proof(proof)
        ),
    )
    statuses = sorted(status for status, _ in answers)
    assert statuses == [202, 409], answers
    started = next(body for status, body in answers if status == 202)
    refused = next(body for status, body in answers if status == 409)
    assert refused["code"] == "merge_running", refused
    done = await merged(bonus, proof, started["merge_id"])
    assert done["status"] == "done", done
    after = await cards(bonus, proof)
    active = [n for n, c in after.items() if c["status"] == "active"]
    assert len(active) == 1 and after[active[0]]["balance"] == "200.50", after
    # Once it is done, the phone may merge again (into the same card: nothing to move).
    status, again = await bonus.call(
        "POST", f"{BASE}/cards/merge", {"main_card": active[0]}, with_proof(proof)
    )
    assert status == 202, again
