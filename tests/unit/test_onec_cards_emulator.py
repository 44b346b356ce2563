"""The emulated infobase's cards (emulator/cards.py): several cards per customer, the main
card carrying the customer-keyed ledger calls, holds settled on the card they were made
on, the questionnaire's checks and the change feed of card calls (CONTRACT.md "Cards,
questionnaire, registration")."""

from __future__ import annotations

import json
from decimal import Decimal as D

import pytest

from connectors.onec.contract import ORIGIN_BRIDGE
from connectors.onec.emulator.checks import LedgerError
from connectors.onec.emulator.ledger import OnecLedger

MARIA = "+79000000005"
FIRST, SECOND, LOOSE = "2000000000053", "2000000000060", "2000000000077"


@pytest.fixture
def ledger() -> OnecLedger:
    seeded = OnecLedger()
    seeded.seed_sandbox()
    return seeded


def maria(ledger: OnecLedger) -> str:
    return ledger.find_customer(phone=MARIA).customer_id


def fails(code: str, call: object) -> LedgerError:
    assert callable(call)
    with pytest.raises(LedgerError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def test_the_sandbox_seed_of_the_cards_journey(ledger: OnecLedger) -> None:
    cards = ledger.find_cards(MARIA).items
    assert [(c.number, c.balance, c.main) for c in cards] == [
        (FIRST, D("120.50"), True),
        (SECOND, D("80.00"), False),
    ]
    assert ledger.balance(maria(ledger)).balance == D("120.50")  # the main card's
    loose = ledger.get_card(LOOSE)
    assert (loose.balance, loose.customer_id, loose.main) == (D("0.00"), None, False)
    fails("unknown_customer", lambda: ledger.find_customer(card=LOOSE))  # no owner
    assert ledger.find_customer(card=SECOND).customer_id == maria(ledger)
    assert ledger.snapshot()["last_message_no"] == 0  # entered before the exchange began


def test_a_hold_is_settled_on_the_card_it_was_made_on(ledger: OnecLedger) -> None:
    cid = maria(ledger)
    ledger.reserve("r1", cid, "100.00", "o-1")
    fails("invalid_request", lambda: ledger.set_main_card("m1", SECOND))  # settle it first
    ledger.commit("c1", "r1", "40.00")
    assert ledger.set_main_card("m1", SECOND).main is True
    assert ledger.balance(cid).balance == D("80.00")
    assert ledger.get_card(FIRST).balance == D("80.50")
    assert ledger.reverse("v1", "c1", "40.00").balance == D("120.00")  # onto the main card


def test_move_points_is_exact_and_from_free_points_only(ledger: OnecLedger) -> None:
    cid = maria(ledger)
    ledger.reserve("r1", cid, "120.00", "o-1")
    fails("insufficient_balance", lambda: ledger.move_points("mv", FIRST, SECOND, "0.51"))
    moved = ledger.move_points("mv", FIRST, SECOND, "0.50")
    assert (moved.kind, moved.status, moved.balance) == ("move", "moved", D("80.50"))
    assert ledger.move_points("mv", FIRST, SECOND, D("0.5")) is moved  # the same amount
    fails("operation_conflict", lambda: ledger.move_points("mv", FIRST, SECOND, "0.49"))
    fails("operation_conflict", lambda: ledger.accrue("mv", cid, "0.50", "o-1"))
    fails("invalid_request", lambda: ledger.move_points("m2", FIRST, FIRST, "1"))
    fails("invalid_request", lambda: ledger.move_points("m3", FIRST, SECOND, "0.001"))
    fails("unknown_card", lambda: ledger.move_points("m4", FIRST, "nope", "1"))


def test_a_blocked_card_gives_its_points_away_but_takes_none(ledger: OnecLedger) -> None:
    ledger.set_card_status("b1", FIRST, "blocked")
    assert ledger.move_points("m1", FIRST, SECOND, "120.50").balance == D("200.50")
    fails("card_blocked", lambda: ledger.move_points("m2", SECOND, FIRST, "1"))
    fails("card_blocked", lambda: ledger.accrue("a1", maria(ledger), "1", "o-1"))
    fails("invalid_request", lambda: ledger.set_card_status("b2", FIRST, "lost"))


def test_attach_registers_a_new_phone_and_keeps_card_less_points(ledger: OnecLedger) -> None:
    olga = ledger.find_customer(phone="+79000000003").customer_id  # no card
    ledger.accrue("a1", olga, "12.00", "o-1")
    attached = ledger.attach_card("at1", LOOSE, "+79000000003")
    assert (attached.main, attached.balance) == (True, D("12.00"))
    assert ledger.find_customer(phone="+79000000003").card == LOOSE
    assert ledger.balance(olga).balance == D("12.00")
    assert ledger.attach_card("at2", LOOSE, "8 900 000-00-03").number == LOOSE  # its own
    fails("card_taken", lambda: ledger.attach_card("at3", LOOSE, MARIA))
    fails("unknown_card", lambda: ledger.attach_card("at4", "nope", MARIA))


def test_register_is_one_customer_per_phone_with_a_new_card(ledger: OnecLedger) -> None:
    first = ledger.register_customer("rg1", "+79000000050", "Пётр")
    second = ledger.register_customer("rg2", "+79000000051")
    assert first.card is not None and second.card is not None and first.card != second.card
    assert ledger.register_customer("rg3", "89000000050") == first  # the same one
    assert ledger.register_customer("rg4", MARIA).card == FIRST  # on file: as it is
    assert len(ledger.find_cards("+79000000050").items) == 1


def test_card_calls_are_customer_changes_in_the_feed(ledger: OnecLedger) -> None:
    cid = maria(ledger)
    ledger.set_card_status("s1", FIRST, "accumulate_only")
    ledger.move_points("m1", FIRST, SECOND, "1.00")
    new = ledger.register_customer("rg1", "+79000000052").customer_id
    ledger.register_customer("rg2", "+79000000052")  # nothing new: no change
    ledger.save_profile("p1", cid, json.dumps({"email": "m@example.com"}))
    changes = [(c.id, c.action, c.origin) for c in ledger.get_changes(0).items]
    assert changes == [
        (cid, "changed", ORIGIN_BRIDGE),  # the status: the bridge's own write
        (cid, "changed", None),  # points moved: the balance the other systems mirror
        (new, "created", ORIGIN_BRIDGE),
        (cid, "changed", ORIGIN_BRIDGE),
    ]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"nick": "x"}, "profile.nick"),
        ({"birth_date": "1990-02-30"}, "profile.birth_date"),
        ({"birth_date": "17.05.1990"}, "profile.birth_date"),
        ({"gender": "f"}, "profile.gender"),
        ({"email": "m at example.com"}, "profile.email"),
        ({"last_name": 7}, "profile.last_name"),
        ({"first_name": "М" * 101}, "profile.first_name"),
    ],
)
def test_a_bad_questionnaire_field_is_named(
    ledger: OnecLedger, document: dict[str, object], field: str
) -> None:
    before = ledger.snapshot()
    error = fails(
        "invalid_request", lambda: ledger.save_profile("p1", maria(ledger), json.dumps(document))
    )
    assert error.message.startswith(f"{field}:")
    assert ledger.snapshot() == before


def test_the_questionnaire_keeps_what_is_left_out_and_clears_null(ledger: OnecLedger) -> None:
    cid = maria(ledger)
    given = {"birth_date": "1990-05-17", "gender": "female", "middle_name": "Ивановна"}
    ledger.save_profile("p1", cid, json.dumps(given))
    same = ledger.save_profile("p1", cid, json.dumps(given, indent=2))  # spacing: the same
    assert same.birth_date == "1990-05-17"
    cleared = ledger.save_profile("p2", cid, json.dumps({"middle_name": None, "gender": ""}))
    assert (cleared.first_name, cleared.middle_name, cleared.gender) == ("Мария", None, None)
    assert cleared.birth_date == "1990-05-17"
    assert ledger.get_profile(cid) == cleared
    fails("unknown_customer", lambda: ledger.get_profile("nobody"))


def test_a_customer_edit_may_name_another_of_its_cards_as_main(ledger: OnecLedger) -> None:
    cid = maria(ledger)
    ledger.change_customer(cid, card=SECOND)
    assert ledger.balance(cid).balance == D("80.00")
    assert [c.number for c in ledger.find_cards(MARIA).items] == [SECOND, FIRST]
    fails("invalid_request", lambda: ledger.change_customer(cid, card=LOOSE))  # ownerless
    ledger.change_customer(cid, card="2000000000999")  # a new number: the main card renumbered
    assert ledger.get_card("2000000000999").balance == D("80.00")
    fails("unknown_card", lambda: ledger.get_card(SECOND))
