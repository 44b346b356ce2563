"""The customer's questionnaire at RetailCRM: the customer record behind a loyalty account.

The core's customer id is the loyalty account id (``master.py``); the account names its
customer (``customer.id``, §4.1), whose fields hold the questionnaire (retailcrm-api.md
§3.1, PHP ``Customer``):

================  ==============  ===============================================
bridge            RetailCRM       form
================  ==============  ===============================================
``last_name``     ``lastName``    text
``first_name``    ``firstName``   text
``middle_name``   ``patronymic``  text
``birth_date``    ``birthday``    ``YYYY-MM-DD`` (§1.3 dates ``Y-m-d``)
``gender``        ``sex``         ``male`` / ``female`` (PHP ``Enum\\Customers\\Gender``)
``email``         ``email``       an address
================  ==============  ===============================================

A read is the account and the customer (2 requests); a save adds ``/customers/{id}/edit``
with only the fields given (``by=id``), then reads the customer back: the answer is the
questionnaire as RetailCRM keeps it. Setting fields is idempotent by itself, so a repeated
save changes nothing twice. A bad value is refused naming the field before anything is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import date
from typing import Any

from bridge.errors import PermanentError
from bridge.ledger import LedgerErrorCode, LedgerRefused
from connectors.retailcrm.accounts import LoyaltyAccounts
from connectors.retailcrm.client import RetailcrmClient

FIELDS = {  # bridge key -> RetailCRM customer field (module docstring)
    "last_name": "lastName",
    "first_name": "firstName",
    "middle_name": "patronymic",
    "birth_date": "birthday",
    "gender": "sex",
    "email": "email",
}
GENDERS = ("male", "female")


def as_profile(customer: Mapping[str, Any]) -> dict[str, str | None]:
    """A RetailCRM customer as the bridge's questionnaire (absent and empty are None)."""
    out: dict[str, str | None] = {}
    for key, field in FIELDS.items():
        value = customer.get(field)
        out[key] = None if value in (None, "") else str(value)
    return out


def as_customer_fields(profile: Mapping[str, str | None]) -> dict[str, str | None]:
    """The questionnaire's given fields as RetailCRM's, each checked; ``invalid_request``
    naming the first bad one, ``not_supported`` for a key RetailCRM has no field for."""
    fields: dict[str, str | None] = {}
    for key, raw in profile.items():
        if key not in FIELDS:
            raise LedgerRefused(
                LedgerErrorCode.NOT_SUPPORTED,
                f"{key}: RetailCRM's customer has no field the bridge maps it to",
            )
        value = None if raw is None or str(raw).strip() == "" else str(raw).strip()
        if value is not None:
            _check(key, value)
        fields[FIELDS[key]] = value
    return fields


def _check(key: str, value: str) -> None:
    if key == "birth_date":
        try:
            born = date.fromisoformat(value)
        except ValueError:
            born = None
        if born is None or len(value) != 10:
            raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, f"{key}: give YYYY-MM-DD")
    elif key == "gender" and value not in GENDERS:
        raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, f"{key}: male or female")
    elif key == "email" and ("@" not in value or " " in value):
        raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, f"{key}: not an e-mail address")


class Profiles:
    """Questionnaire reads and saves of one API key."""

    def __init__(
        self,
        client: RetailcrmClient,
        run: Callable[..., Awaitable[Any]],
        accounts: LoyaltyAccounts,
    ) -> None:
        self._client = client
        self._run = run
        self._accounts = accounts

    async def profile(self, customer_id: str) -> dict[str, str | None]:
        """The questionnaire of the account's customer."""
        return as_profile(await self._customer(await self._customer_id(customer_id)))

    async def save_profile(
        self, operation_id: str, customer_id: str, profile: dict[str, str | None]
    ) -> dict[str, str | None]:
        """Save the given fields; the whole questionnaire as RetailCRM then keeps it."""
        fields = as_customer_fields(profile)
        owner = await self._customer_id(customer_id)
        if fields:
            changes = {"id": owner, **fields}
            try:
                await self._run(lambda: self._client.customer_edit(changes, by="id"))
            except PermanentError as exc:  # RetailCRM's own validation (§1.4 `errors`)
                raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, str(exc)) from exc
        return as_profile(await self._customer(owner))

    async def _customer_id(self, customer_id: str) -> Any:
        """The RetailCRM customer behind a loyalty account (``unknown_customer`` if none)."""
        account = await self._accounts.account(customer_id)
        owner = (account.get("customer") or {}).get("id")
        if owner is None:
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, f"no customer of {customer_id}")
        return owner

    async def _customer(self, owner: Any) -> Mapping[str, Any]:
        try:
            answer = await self._run(lambda: self._client.customer(owner, by="id"))
        except PermanentError as exc:  # merged away or deleted since the account was read
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, str(exc)) from exc
        customer = answer.get("customer")
        return customer if isinstance(customer, Mapping) else {}
