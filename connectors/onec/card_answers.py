"""What the connector reads out of 1C's answers to the card, questionnaire and registration
calls (CONTRACT.md "Cards, questionnaire, registration"): a ``Card``, a ``CardList`` and a
``Profile``. Values go through ``values.py`` (1C's own spellings); one that cannot be read
raises ``OnecBadValue`` naming its field, the master's fault (``errors.py``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bridge.ledger import CardStatus, LedgerCard
from connectors.onec.answers import amount, text
from connectors.onec.contract import PROFILE_FIELDS
from connectors.onec.values import OnecBadValue, read_bool, required, shown

# 1C writes a Дата as a dateTime (onec.md §5.3) and an unset one as 0001-01-01 (CONTRACT.md
# "Conventions"); the questionnaire wants the day alone.
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:T00:00:00)?")
_EMPTY_DATE = "0001-01-01"
# Decision: 1C's own enumeration ПолФизическогоЛица, as its presentation prints it, is read too.
_GENDERS = {"male": "male", "female": "female", "мужской": "male", "женский": "female"}


def card(r: Mapping[str, Any]) -> LedgerCard:
    """A ``Card``."""
    status = str(required(r, "status")).strip()
    try:
        state = CardStatus(status)
    except ValueError:
        known = ", ".join(s.value for s in CardStatus)
        raise OnecBadValue("status", f"{shown(status)} is not a card status ({known})") from None
    main = r.get("main")
    return LedgerCard(
        number=str(required(r, "number")).strip(),
        status=state,
        balance=amount(r, "balance"),
        main=False if text(main) is None else read_bool(main, "main"),
        customer_id=text(r.get("customer_id")),
        phone=text(r.get("phone")),
        reserved=_maybe_reserved(r),
    )


def _maybe_reserved(r: Mapping[str, Any]) -> Decimal:
    """The card's held points (a service that does not say: none known)."""
    return Decimal("0.00") if text(r.get("reserved")) is None else amount(r, "reserved")


def card_list(r: Mapping[str, Any]) -> list[LedgerCard]:
    """A ``CardList``: its cards, the main one first."""
    items = r.get("items") or []
    if not isinstance(items, list):
        items = [items]  # one Card, as a single XDTO element
    cards = []
    for item in items:
        if not isinstance(item, Mapping):
            raise OnecBadValue("items", f"a card that is no record: {shown(item)}")
        cards.append(card(item))
    return sorted(cards, key=lambda c: not c.main)  # stable: 1C's order otherwise


def profile(r: Mapping[str, Any]) -> dict[str, str | None]:
    """A ``Profile`` by the bridge's names (``customer_id`` left out)."""
    required(r, "customer_id")
    read = {name: text(r.get(name)) for name in PROFILE_FIELDS}
    born = read["birth_date"]
    if born is not None:
        match = _DATE.fullmatch(born.strip())
        if match is None:
            raise OnecBadValue("birth_date", f"{shown(born)} is not a date YYYY-MM-DD")
        read["birth_date"] = None if match.group(1) == _EMPTY_DATE else match.group(1)
    gender = read["gender"]
    if gender is not None:
        if gender.strip().lower() not in _GENDERS:
            raise OnecBadValue("gender", f"{shown(gender)} is not male or female")
        read["gender"] = _GENDERS[gender.strip().lower()]
    return read
