"""RetailCRM's loyalty accounts as the cards of issue 17 (the core's ``CardsAtMaster``).

RetailCRM keeps one loyalty account per customer per programme (retailcrm-api.md §4.3
"Registration": a second one is refused with "The customer is in this loyalty program
already"), and the account carries the card: ``cardNumber`` and ``phoneNumber`` (§4.1). So
a card here *is* a loyalty account, and several cards on one phone are several customers
sharing it. How each call maps (the README lists the same, for support):

=====================  ==========================================================================
call                   RetailCRM
=====================  ==========================================================================
cards(phone)           ``GET /loyalty/accounts?filter[phoneNumber]=…`` (one page of 100), the
                       phone compared digit by digit; main = the account find_customer lands on
card(number)           ``filter[cardNumber]``; ``#<id>`` names an account without a card number
                       (``GET /loyalty/account/{id}``)
attach_card            a card whose account has no phone (a customer known only by the card) gets
                       the phone: ``/loyalty/account/{id}/edit`` ``phoneNumber`` and the
                       customer's ``phones`` (``/customers/{id}/edit``, only if it has none)
set_card_status        ``active``: ``/loyalty/account/{id}/activate`` (a ``not_confirmed``
                       account); ``blocked`` / ``accumulate_only``: not_supported (below)
set_main_card          the phone's main card already: as it is; another: not_supported (below)
move_points            not_supported (below)
register_customer      the phone's account if any; else its customer (``filter[name]``), else the
                       customer with ``externalId`` ``bridge-<operation id>``, else
                       ``/customers/create``; then ``/loyalty/account/create``, and
                       ``/activate`` for an account with no SMS check started (``lastCheckId``)
=====================  ==========================================================================

Status: ``activated`` is ``active``, ``deactivated`` is ``blocked`` and ``not_confirmed``
(registered, not yet activated) is ``accumulate_only``: §4.3 step 1 charges only an
activated account; that it still accrues is the emulator's reading [unconfirmed].

Every call goes through the connector's ``run`` (the key's limiter, its worker pool and
timeout); every write is followed by ``forget`` (the balance details kept a minute).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, NoReturn

from bridge.errors import PermanentError
from bridge.ledger import (
    CardStatus,
    LedgerCard,
    LedgerCustomer,
    LedgerErrorCode,
    LedgerOperation,
    LedgerRefused,
)
from connectors.retailcrm.accounts import as_customer, main_account, money, same_phone
from connectors.retailcrm.client import RetailcrmClient, phone_digits

# "#12": the card of account 12, which has no card number (cardNumber is optional, §4.2)
ACCOUNT_REF = "#"
PAGE = 100  # accounts read per phone: more customers than this on one phone are not listed
STATUSES = {  # §4.1 account status -> the core's card status (module docstring)
    "activated": CardStatus.ACTIVE,
    "deactivated": CardStatus.BLOCKED,
    "not_confirmed": CardStatus.ACCUMULATE_ONLY,
}
# Why the rest is not_supported (the README's table says the same).
NO_DEACTIVATE = (
    "RetailCRM's API cannot deactivate or restrict a loyalty account: /loyalty/account/{id}"
    " offers create, edit, activate, bonus credit and charge, nothing that blocks (API v5)"
)
NO_MAIN = (
    "RetailCRM has no main card: a customer takes part in a programme once, and a phone's"
    " look-ups land on its first activated account; merge the customers in RetailCRM instead"
)
NO_MOVE = (
    "RetailCRM cannot move points exactly once: a manual charge and credit"
    " (/loyalty/account/{id}/bonus/charge, /bonus/credit) take no operation id and its bonus"
    " operations carry neither an id nor the comment, so a step retried after a crash could"
    " charge or credit twice"
)
NO_CREDIT = (
    "RetailCRM cannot credit points exactly once: its manual credit"
    " (/loyalty/account/{id}/bonus/credit) takes no operation id, so a credit retried after"
    " an answer lost in transit could land twice; credit the points in RetailCRM itself"
)
NO_SMS_ACTIVATION = (
    "the programme confirms registration by SMS (confirmSmsRegistration): RetailCRM sent the"
    " customer its own code, and the account stays not_confirmed until it is confirmed there"
)
ALREADY_IN = "already"  # errors.loyalty "The customer is in this loyalty program already" (§4.3)


def card_number(account: Mapping[str, Any]) -> str:
    """The card's number: ``cardNumber``, or ``#<account id>`` when it has none."""
    number = account.get("cardNumber")
    return str(number) if number not in (None, "") else f"{ACCOUNT_REF}{account['id']}"


def as_card(account: Mapping[str, Any], main: bool) -> LedgerCard:
    """An account as the core's card; one without a phone is nobody's yet."""
    phone = account.get("phoneNumber")
    owned = phone not in (None, "")
    return LedgerCard(
        number=card_number(account),
        # A status RetailCRM may add later: neither spent nor accrued on until it is known.
        status=STATUSES.get(str(account.get("status")), CardStatus.BLOCKED),
        balance=money(account.get("amount")),
        main=main and owned,
        customer_id=str(account["id"]) if owned else None,
        phone="+" + phone_digits(str(phone)) if owned else None,
    )


def refuse(code: LedgerErrorCode, why: str) -> NoReturn:
    """Raise the core's refusal."""
    raise LedgerRefused(code, why)


class LoyaltyCards:
    """The card calls of one API key over its loyalty accounts and customers."""

    def __init__(
        self,
        client: RetailcrmClient,
        run: Callable[..., Awaitable[Any]],
        forget: Callable[[str | None], None],
    ) -> None:
        self._client = client
        self._run = run
        self._forget = forget

    async def cards(self, phone: str) -> list[LedgerCard]:
        """Every account whose phone is ``phone``, the main one first."""
        accounts = await self._by_phone(phone)
        main = main_account(accounts)
        cards = [as_card(a, a is main) for a in accounts]
        return sorted(cards, key=lambda card: not card.main)  # stable: RetailCRM's order

    async def card(self, number: str) -> LedgerCard:
        """One card; ``unknown_card`` when RetailCRM has no account with that number."""
        account = await self._by_number(number)
        return await self._card_of(account)

    async def attach_card(self, operation_id: str, number: str, phone: str) -> LedgerCard:
        """Give a card whose account has no phone to ``phone`` (its own: as it is)."""
        account = await self._by_number(number)
        owner = account.get("phoneNumber")
        if same_phone(owner, phone):
            return await self._card_of(account)
        if owner not in (None, ""):
            refuse(LedgerErrorCode.CARD_TAKEN, f"card {number} belongs to another phone")
        if account.get("status") == "deactivated":
            refuse(LedgerErrorCode.CARD_BLOCKED, f"card {number} is deactivated in RetailCRM")
        e164 = "+" + phone_digits(phone)
        aid = int(account["id"])
        edit = {"phoneNumber": e164}  # §4.2 /loyalty/account/{id}/edit
        await self._write(aid, lambda: self._client.loyalty_account_edit(aid, edit))
        customer_id = (account.get("customer") or {}).get("id")
        if customer_id is not None:
            found = await self._run(lambda: self._client.customer(customer_id, by="id"))
            if not (found.get("customer") or {}).get("phones"):
                # Only a customer with no phone gets it: phones sent on edit replace the list.
                changes = {"id": customer_id, "phones": [{"number": e164}]}
                await self._write(aid, lambda: self._client.customer_edit(changes, by="id"))
        return await self.card(number)

    async def set_card_status(
        self, operation_id: str, number: str, status: CardStatus
    ) -> LedgerCard:
        """Activate a ``not_confirmed`` account; the card as it is when already ``status``."""
        account = await self._by_number(number)
        current = STATUSES.get(str(account.get("status")))
        if current is status:
            return await self._card_of(account)
        if status is not CardStatus.ACTIVE:
            refuse(LedgerErrorCode.NOT_SUPPORTED, NO_DEACTIVATE)
        if current is not CardStatus.ACCUMULATE_ONLY:
            # §4.2 documents /activate for registration only; what it does to a deactivated
            # account is not documented, so the bridge does not try.
            refuse(LedgerErrorCode.NOT_SUPPORTED, f"{NO_DEACTIVATE}, nor reactivate one")
        aid = int(account["id"])
        answer = await self._write(aid, lambda: self._client.loyalty_account_activate(aid))
        check = answer.get("verification") or {}
        if isinstance(check, Mapping) and check.get("checkId") and not check.get("verifiedAt"):
            refuse(LedgerErrorCode.NOT_SUPPORTED, NO_SMS_ACTIVATION)  # §4.3 "Registration"
        return await self.card(number)

    async def set_main_card(self, operation_id: str, number: str) -> LedgerCard:
        """The phone's main card as it is; any other is not_supported (no such setting)."""
        card = await self.card(number)
        if card.phone is None:
            refuse(LedgerErrorCode.INVALID_REQUEST, f"card {number} has no owner yet")
        if not card.main:
            refuse(LedgerErrorCode.NOT_SUPPORTED, NO_MAIN)
        return card

    async def move_points(
        self, operation_id: str, from_card: str, to_card: str, amount: Decimal
    ) -> LedgerOperation:
        """Not offered: RetailCRM cannot move points exactly once (``NO_MOVE``)."""
        refuse(LedgerErrorCode.NOT_SUPPORTED, NO_MOVE)

    async def register_customer(
        self, operation_id: str, phone: str, name: str | None = None
    ) -> LedgerCustomer:
        """The phone's account, creating what is missing of customer and account; each
        step finds what an earlier try made, so a repeat for a phone makes nothing new."""
        account = main_account(await self._by_phone(phone))
        if account is None:
            e164 = "+" + phone_digits(phone)
            customer_id = await self._customer_for(operation_id, e164, name)
            account = await self._account_of(customer_id, e164)
        # Activation ends a registration; an account that never had it (a try cut short
        # before /activate) gets it now. One with a check (`lastCheckId`, §4.1) waits for
        # the code RetailCRM sent (confirmSmsRegistration): a repeat sends no second SMS.
        if account.get("status") == "not_confirmed" and not account.get("lastCheckId"):
            aid = int(account["id"])
            answer = await self._write(aid, lambda: self._client.loyalty_account_activate(aid))
            account = answer.get("loyaltyAccount") or account
        return as_customer(account)

    # ---- reads and writes ------------------------------------------------------------

    async def _by_phone(self, phone: str) -> list[Mapping[str, Any]]:
        """The accounts of ``phone``: the filter, then the digits compared (§3.2, §9.4)."""
        if len(phone_digits(phone)) < 10:
            refuse(LedgerErrorCode.INVALID_REQUEST, "phone: give the full number")
        filters = {"phoneNumber": "+" + phone_digits(phone)}  # §4.2 filter
        page = await self._run(lambda: self._client.loyalty_accounts(filters, PAGE, 1))
        listed = [a for a in page.get("loyaltyAccounts") or [] if isinstance(a, Mapping)]
        return [a for a in listed if same_phone(a.get("phoneNumber"), phone)]

    async def _by_number(self, number: str) -> Mapping[str, Any]:
        """The account of a card number (or of ``#<id>``); ``unknown_card`` if none."""
        ref = number[len(ACCOUNT_REF) :] if number.startswith(ACCOUNT_REF) else None
        if ref is not None:
            if not ref.isdigit():
                refuse(LedgerErrorCode.UNKNOWN_CARD, f"no card {number!r}")
            try:
                answer = await self._run(lambda: self._client.loyalty_account(int(ref)))
            except PermanentError as exc:
                raise LedgerRefused(LedgerErrorCode.UNKNOWN_CARD, f"no card {number!r}") from exc
            account = answer.get("loyaltyAccount") or {}
            if account.get("cardNumber"):  # it has a number now: that is its name
                refuse(LedgerErrorCode.UNKNOWN_CARD, f"no card {number!r}")
            return account
        wanted = "".join(number.split())
        if not wanted:
            refuse(LedgerErrorCode.INVALID_REQUEST, "card: give a card number")
        filters = {"cardNumber": wanted}
        page = await self._run(lambda: self._client.loyalty_accounts(filters, 20, 1))
        for account in page.get("loyaltyAccounts") or []:
            # The filter's matching is not documented: the number itself must match.
            if isinstance(account, Mapping) and _same_card(account.get("cardNumber"), wanted):
                return account
        refuse(LedgerErrorCode.UNKNOWN_CARD, f"RetailCRM has no card {number!r}")

    async def _card_of(self, account: Mapping[str, Any]) -> LedgerCard:
        """The card with ``main`` known: is it the account its phone's look-ups land on?"""
        phone = account.get("phoneNumber")
        if phone in (None, ""):
            return as_card(account, False)
        main = main_account(await self._by_phone(str(phone)))
        return as_card(account, main is not None and main.get("id") == account.get("id"))

    async def _customer_for(self, operation_id: str, e164: str, name: str | None) -> Any:
        """The id of the customer with this phone, or of the one this operation created."""
        found = await self._run(lambda: self._client.customers_by_phone(e164))
        if found:
            return found[0]["id"]
        external_id = f"bridge-{operation_id}"
        try:  # a create whose answer was lost: the phone search may not match yet (§3.2)
            made = await self._run(lambda: self._client.customer(external_id))
            return (made.get("customer") or {})["id"]
        except PermanentError:
            pass
        customer: dict[str, Any] = {"externalId": external_id, "phones": [{"number": e164}]}
        if name:
            customer["firstName"] = name  # the name as given; RetailCRM's UI shows firstName
        answer = await self._write(None, lambda: self._client.customer_create(customer))
        return answer["id"]

    async def _account_of(self, customer_id: Any, e164: str) -> Mapping[str, Any]:
        """The customer's account, created if it has none (§4.2 ``/loyalty/account/create``)."""
        data = {"customer": {"id": customer_id}, "phoneNumber": e164}
        try:
            answer = await self._write(None, lambda: self._client.loyalty_account_create(data))
            return answer.get("loyaltyAccount") or {}
        except PermanentError as exc:
            if ALREADY_IN not in str(exc):
                raise
        filters = {"customerId": customer_id}  # §4.2 filter
        page = await self._run(lambda: self._client.loyalty_accounts(filters, 20, 1))
        accounts = [a for a in page.get("loyaltyAccounts") or [] if isinstance(a, Mapping)]
        found = main_account(accounts)
        if found is None:
            refuse(LedgerErrorCode.UNKNOWN_CUSTOMER, "RetailCRM lists no account it refused")
        return found

    async def _write(self, account_id: int | None, call: Callable[[], Any]) -> Any:
        """A write; the balance details of the account (all, for None) are read anew."""
        try:
            return await self._run(call)
        finally:
            self._forget(None if account_id is None else str(account_id))


def _same_card(have: Any, wanted: str) -> bool:
    return have not in (None, "") and "".join(str(have).split()) == wanted
