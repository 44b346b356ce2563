"""Reading 1C's answers to the card calls (card_answers.py): 1C's own spellings read, a value
that cannot be read refused naming its field (the master's fault, never made up)."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from bridge.errors import InvalidAnswer
from bridge.ledger import CardStatus, LedgerCard
from connectors.onec import card_answers
from connectors.onec.answers import read_answer
from connectors.onec.values import OnecBadValue

CARD = {"number": "2000000000053", "status": "active", "balance": "120.5", "main": "true"}


def test_a_card_in_1c_s_spellings() -> None:
    spelled = CARD | {"balance": "1 000,5", "main": "Истина", "customer_id": "", "phone": None}
    assert card_answers.card(spelled) == LedgerCard(
        "2000000000053", CardStatus.ACTIVE, D("1000.50"), True, None, None
    )
    assert card_answers.card(CARD | {"main": None}).main is False  # nil: not the main card


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        (CARD | {"status": "закрыта"}, "status"),
        (CARD | {"status": ""}, "status"),
        (CARD | {"balance": "много"}, "balance"),
        (CARD | {"main": "может быть"}, "main"),
        ({k: v for k, v in CARD.items() if k != "number"}, "number"),
    ],
)
def test_a_card_that_cannot_be_read_names_its_field(answer: dict[str, Any], field: str) -> None:
    with pytest.raises(OnecBadValue) as caught:
        card_answers.card(answer)
    assert caught.value.field == field
    with pytest.raises(InvalidAnswer) as classified:
        read_answer("get_card", card_answers.card, answer)
    assert "GetCard" in str(classified.value)


def test_a_card_list_main_first_one_card_or_none() -> None:
    second = CARD | {"number": "2000000000060", "main": "false"}
    cards = card_answers.card_list({"items": [second, CARD], "total": 2})
    assert [c.number for c in cards] == ["2000000000053", "2000000000060"]
    assert [c.number for c in card_answers.card_list({"items": CARD})] == ["2000000000053"]
    assert card_answers.card_list({"items": None, "total": 0}) == []
    with pytest.raises(OnecBadValue, match="items"):
        card_answers.card_list({"items": ["2000000000053"]})


def test_a_profile_in_1c_s_spellings() -> None:
    answer = {
        "customer_id": "c1",
        "last_name": "Соколова",
        "first_name": "Мария",
        "middle_name": "",
        "birth_date": "1990-05-17T00:00:00",  # a Дата, as 1C writes it
        "gender": "Женский",  # ПолФизическогоЛица as 1C presents it
        "email": None,
    }
    assert card_answers.profile(answer) == {
        "last_name": "Соколова", "first_name": "Мария", "middle_name": None,
        "birth_date": "1990-05-17", "gender": "female", "email": None,
    }  # fmt: skip
    empty_date = card_answers.profile({"customer_id": "c1", "birth_date": "0001-01-01T00:00:00"})
    assert empty_date["birth_date"] is None


@pytest.mark.parametrize(
    ("answer", "field"),
    [
        ({"customer_id": "c1", "birth_date": "17.05.1990"}, "birth_date"),
        ({"customer_id": "c1", "gender": "other"}, "gender"),
        ({"last_name": "Соколова"}, "customer_id"),
    ],
)
def test_a_profile_that_cannot_be_read_names_its_field(answer: dict[str, Any], field: str) -> None:
    with pytest.raises(OnecBadValue) as caught:
        card_answers.profile(answer)
    assert caught.value.field == field
