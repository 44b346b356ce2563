"""The customer's questionnaire (анкета) in the emulated infobase: SaveProfile's document
checked field by field as the 1C module would, and merged into what 1C holds (CONTRACT.md
"Cards, questionnaire, registration")."""

from __future__ import annotations

import re
from datetime import date

from connectors.onec.contract import GENDERS, PROFILE_FIELDS
from connectors.onec.emulator.checks import invalid, is_blank
from connectors.onec.emulator.customers import BonusAccount
from connectors.onec.emulator.operations import ProfileRecord

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_LONGEST = 100  # Decision: the length of 1C's string attributes of a ФизическоеЛицо


def profile_changes(document: dict[str, object]) -> dict[str, str | None]:
    """The fields ``document`` sets (None: clears), each checked; ``invalid_request`` names
    the first bad one as ``profile.<field>``."""
    changes: dict[str, str | None] = {}
    for key, value in document.items():
        field = f"profile.{key}"
        if key not in PROFILE_FIELDS:
            raise invalid(field, f"unknown field (one of {', '.join(PROFILE_FIELDS)})")
        if is_blank(value):
            changes[key] = None
            continue
        if not isinstance(value, str):
            raise invalid(field, "a string or null")
        changes[key] = _checked(key, value.strip(), field)
    return changes


def _checked(key: str, text: str, field: str) -> str:
    if len(text) > _LONGEST:
        raise invalid(field, f"longer than {_LONGEST} characters")
    if key == "birth_date":
        try:
            born = date.fromisoformat(text) if _DATE.fullmatch(text) else None
        except ValueError:
            born = None
        if born is None:
            raise invalid(field, f"{text!r} is not a date YYYY-MM-DD")
    elif key == "gender" and text not in GENDERS:
        raise invalid(field, f"{text!r} is not one of {', '.join(sorted(GENDERS))}")
    elif key == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+", text):
        raise invalid(field, f"{text!r} is not an e-mail address")
    return text


def profile_of(account: BonusAccount) -> dict[str, str | None]:
    """What 1C holds. Decision: a customer whose questionnaire was never saved has it
    prefilled from the catalog's name, "Имя Фамилия" (how the sandbox enters its customers)."""
    if account.profile is not None:
        return dict(account.profile)
    held: dict[str, str | None] = dict.fromkeys(PROFILE_FIELDS)
    first, _, last = (account.customer.name or "").strip().partition(" ")
    held["first_name"], held["last_name"] = first or None, last.strip() or None
    return held


def profile_record(account: BonusAccount) -> ProfileRecord:
    """The questionnaire as GetProfile answers it."""
    return ProfileRecord(account.customer.customer_id, **profile_of(account))
