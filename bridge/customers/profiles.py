"""The questionnaire: read from the master, checked against ``customers.profile.required``,
saved back, mirrored to the other systems as a change of the customer; and what it gates
(``customers.accumulate_only_until_profile``: an incomplete one spends nothing)."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any

from bridge.bonus.balance import BonusService, CustomerRef, MasterUnavailable
from bridge.bonus.reservation_rules import ReservationProblem
from bridge.customers.merges import cards_of
from bridge.ledger import LedgerCustomer, LedgerErrorCode, LedgerRefused
from bridge.logs import get_logger
from bridge.lru import LruCache
from bridge.settings_customers import PROFILE_FIELDS, CustomerSettings

log = get_logger("bridge.customers")

_NAME = re.compile(r"^[^\W\d_]+(?:[ '\-][^\W\d_]+)*$")  # letters, single inner ' - or space
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
_EMAIL = re.compile(rf"^[^@\s]{{1,64}}@{_LABEL}(?:\.{_LABEL})+$")
Profile = dict[str, str | None]
# A complete questionnaire is trusted this long without asking the master again (it may be
# cleared at the master or through another instance; then spending stops within this).
COMPLETE_SECONDS = 300.0


def check_profile(given: Mapping[str, Any]) -> Profile:
    """The given fields, each checked; ReservationProblem(invalid_request) naming the first
    field that is wrong."""
    out: Profile = {}
    for name, value in given.items():
        if name not in PROFILE_FIELDS:
            raise _invalid(
                name, "unknown field; the questionnaire has " + ", ".join(PROFILE_FIELDS)
            )
        if value is None:
            out[name] = None
            continue
        if not isinstance(value, str):
            raise _invalid(name, "must be a string or null")
        text = value.strip()
        out[name] = _checked(name, text) if text else None
    return out


def _checked(name: str, text: str) -> str:
    if name in ("last_name", "first_name", "middle_name"):
        if len(text) > 64 or not _NAME.match(text):
            raise _invalid(
                name, "must be letters (a hyphen, apostrophe or space between), at most 64"
            )
        return text
    if name == "birth_date":
        try:
            born = date.fromisoformat(text)
        except ValueError:
            raise _invalid(name, "must be a date as YYYY-MM-DD") from None
        if len(text) != 10 or not date(1900, 1, 1) <= born <= date.today():
            raise _invalid(name, "must be a date as YYYY-MM-DD, from 1900 to today")
        return text
    if name == "gender":
        if text not in ("male", "female"):
            raise _invalid(name, "must be male or female")
        return text
    if len(text) > 254 or not _EMAIL.match(text):
        raise _invalid(name, "must be an e-mail address")
    return text.lower()


def _invalid(field: str, message: str) -> ReservationProblem:
    return ReservationProblem("invalid_request", f"{field}: {message}", field=field)


def missing(profile: Mapping[str, str | None], required: list[str]) -> list[str]:
    """The required fields the questionnaire lacks, in the configured order."""
    return [name for name in required if not (profile.get(name) or "").strip()]


class Profiles:
    """Reads and saves questionnaires; says whether a customer may spend."""

    def __init__(
        self,
        bonus: BonusService,
        settings: CustomerSettings,
        mirror: Callable[[str], Awaitable[None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bonus, self.settings = bonus, settings
        self._mirror = mirror
        # Complete questionnaires are remembered for COMPLETE_SECONDS (the balance hot
        # path); an incomplete one is asked again each time (it may have been filled).
        self._complete: LruCache[str, float] = LruCache(100_000)
        self._clock = clock

    @property
    def gates(self) -> bool:
        """Whether an incomplete questionnaire keeps a customer from spending."""
        return self.settings.accumulate_only_until_profile

    async def customer(self, phone: str) -> LedgerCustomer:
        """The master's customer of a proven phone (unknown_customer when none)."""
        return await self.bonus.resolve(CustomerRef(phone=phone))

    async def read(self, customer_id: str) -> Profile:
        """The questionnaire as the master keeps it."""
        ledger = cards_of(self.bonus)
        got = await self.bonus.call_master("profile", lambda: ledger.profile(customer_id))
        return {name: got.get(name) for name in PROFILE_FIELDS}

    async def save(self, customer_id: str, given: Mapping[str, Any]) -> Profile:
        """Check ``given``, save it at the master, mirror the change; the whole questionnaire."""
        fields = check_profile(given)
        ledger = cards_of(self.bonus)
        operation = f"profile:{customer_id}:{secrets.token_hex(6)}"
        saved = await self.bonus.call_master(
            "save_profile", lambda: ledger.save_profile(operation, customer_id, fields)
        )
        profile = {name: saved.get(name) for name in PROFILE_FIELDS}
        if not missing(profile, list(self.settings.profile.required)):
            self._complete.put(customer_id, self._clock())
        else:
            self._complete.pop(customer_id)
        await self._mirror(customer_id)
        log.info("profile_saved", customer=customer_id, fields=sorted(fields))
        return profile

    async def spend_blocked(self, customer_id: str) -> list[str]:
        """The required fields that keep ``customer_id`` from spending ([] when they may:
        the setting is off, or the questionnaire is complete)."""
        if not self.settings.accumulate_only_until_profile:
            return []
        seen = self._complete.get(customer_id)
        if seen is not None and self._clock() - seen < COMPLETE_SECONDS:
            return []
        lacking = missing(await self.read(customer_id), list(self.settings.profile.required))
        if not lacking:
            self._complete.put(customer_id, self._clock())
        return lacking

    async def spend_reason(self, customer_id: str) -> tuple[str, list[str]] | None:
        """Why a balance is shown not spendable: (``profile_incomplete``, the missing
        fields), (``profile_unavailable``, []) when the master did not say; None to spend."""
        try:
            lacking = await self.spend_blocked(customer_id)
        except MasterUnavailable:
            return ("profile_unavailable", [])
        except LedgerRefused as exc:
            if exc.code is LedgerErrorCode.NOT_SUPPORTED:
                return None  # a master without questionnaires gates nothing
            return ("profile_unavailable", [])
        return ("profile_incomplete", lacking) if lacking else None
