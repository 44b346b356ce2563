"""RetailCRM's loyalty accounts as the bonus master reads them: find one, read its balance.

Every call waits its turn at the key's limiter (10 requests/s by default, §1.6), so a
balance is kept to what it needs: the account (balance, level) and the cart's cap are read
every time; the points waiting activation and those burning soon — two calls that only feed
the informational ``pending`` and ``expiring`` — are kept per account for
``DETAILS_TTL_SECONDS`` and read again after any write this connector makes. The trade-off:
a credit or charge made elsewhere (an order completed in RetailCRM, the UI) shows in those
two fields up to a minute late; ``balance``, ``available`` and ``max_redeemable`` are never
cached.

A look-up's requests (the bonus service remembers which account a phone or card is, so a
warm look-up does not call ``find_customer``):

==========================  ========================================  ==========
look-up                     requests                                  per look-up
==========================  ========================================  ==========
warm, no cart               ``GET /loyalty/account/{id}``              1
warm, with a cart           the account, ``POST /loyalty/calculate``   2
cold (phone or card)        ``GET /loyalty/accounts`` (the account in  1 (2 with
                            it answers the balance asked right after)  a cart)
==========================  ========================================  ==========

plus, once a minute per account, the two detail reads. The cart's cap needs
``/loyalty/calculate`` (§4.3 step 2: ``maxChargeBonuses`` per basket); nothing else answers
it. At 10 requests/s a key serves 8 look-ups/s without a cart with room to spare, 5 with.

The writes (``master.py``) call ``forget_details`` after each, so a read that a write of ours
overtook keeps nothing.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from bridge.errors import PermanentError
from bridge.ledger import LedgerBalance, LedgerCustomer, LedgerErrorCode, LedgerRefused
from connectors.retailcrm.client import RetailcrmClient, phone_digits

Expiring = tuple[tuple[Decimal, date], ...]

DETAILS_TTL_SECONDS = 60.0  # how long pending / expiring points are reused (module docstring)
DETAILS_KEPT = 10_000  # accounts whose details are kept at most; the oldest go first
# An account read by find_customer answers the balance asked within this many seconds (the
# same look-up's next call): a list entry holds what GET /loyalty/account/{id} would
# (amount, level, customer; retailcrm-api.md §4.4: "loyaltyAccount.amount from
# /loyalty/account/{id} or /loyalty/accounts"; PHP LoyaltyTest::testAccounts), so a cold
# look-up reads the account once, not twice. Used once, and never across a write of ours.
JUST_READ_SECONDS = 2.0
JUST_READ_KEPT = 1_000


class LoyaltyAccounts:
    """The loyalty reads of one API key, run through the connector's limiter and pool."""

    def __init__(
        self,
        client: RetailcrmClient,
        run: Callable[..., Awaitable[Any]],
        *,
        details_ttl: float = DETAILS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._run = run
        self._details_ttl = details_ttl
        self._clock = clock
        # account id -> (when read, pending, expiring); dicts keep insertion order.
        self._details: dict[int, tuple[float, Decimal, Expiring]] = {}
        self._writes = 0  # writes made by the master, to spot one during a read
        # account id -> (when read, writes then, the account) as find_customer read it.
        self._just_read: dict[int, tuple[float, int, Mapping[str, Any]]] = {}

    async def find_customer(
        self, *, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> LedgerCustomer:
        """The loyalty account by phone, card or account id."""
        read_at, writes = self._clock(), self._writes
        if customer_id is not None:
            account = await self.account(customer_id)
        else:
            if phone is not None:
                # §4.2: a dedicated phone filter; E.164 digits as RetailCRM stores them.
                filters = {"phoneNumber": "+" + phone_digits(phone)}
            elif card is not None:
                filters = {"cardNumber": card}
            else:
                raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, "give a phone, card or id")
            page = await self._run(lambda: self._client.loyalty_accounts(filters, 20, 1))
            accounts = [a for a in page.get("loyaltyAccounts") or [] if isinstance(a, Mapping)]
            if phone is not None:
                accounts = [a for a in accounts if same_phone(a.get("phoneNumber"), phone)]
            found = main_account(accounts)
            if found is None:
                raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, "no loyalty account")
            account = found
        self._keep_just_read(account, read_at, writes)  # by id too: one read, not two
        return as_customer(account)

    async def balance(self, customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        """Points, level, points still waiting activation and points burning soon."""
        account = self._take_just_read(customer_id) or await self.account(customer_id)
        aid = int(account["id"])
        pending, expiring = await self._bonus_details(aid)
        cap = None
        if cart_total is not None:
            cap = await self._max_charge(account, cart_total)
        amount = money(account.get("amount"))
        return LedgerBalance(
            customer_id=str(aid),
            balance=amount,
            reserved=Decimal("0.00"),  # RetailCRM shows no holds: a charge is applied at once
            available=amount,
            as_of=datetime.now(UTC),
            max_redeemable=cap,
            level=_text((account.get("level") or {}).get("name")),
            pending=pending,
            expiring=expiring,
        )

    def forget_details(self, account_id: str | None = None) -> None:
        """Read pending / expiring points again next time: of one account, or of all."""
        self._writes += 1
        if account_id is None:
            self._details.clear()
        elif account_id.isdigit():
            self._details.pop(int(account_id), None)

    async def account(self, account_id: str) -> Mapping[str, Any]:
        """``GET /loyalty/account/{id}``: an id RetailCRM does not know is ``unknown_customer``."""
        if not account_id.isdigit():
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, f"no account {account_id!r}")
        try:
            answer = await self._run(lambda: self._client.loyalty_account(int(account_id)))
        except PermanentError as exc:
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, str(exc)) from exc
        return answer.get("loyaltyAccount") or {}

    async def _bonus_details(self, aid: int) -> tuple[Decimal, Expiring]:
        """Points waiting activation and burning soon: kept for ``details_ttl`` seconds."""
        kept = self._details.get(aid)
        if kept is not None and self._clock() - kept[0] < self._details_ttl:
            return kept[1], kept[2]
        read_at, writes = self._clock(), self._writes
        pending = await self._run(
            lambda: self._client.bonus_details(aid, "waiting_activation", 20, 1)
        )
        burning = await self._run(lambda: self._client.bonus_details(aid, "burn_soon", 20, 1))
        total = money((pending.get("statistic") or {}).get("totalAmount"))
        expiring = tuple(
            (money(b.get("amount")), date.fromisoformat(str(b["date"])[:10]))
            for b in burning.get("bonuses") or []
            if isinstance(b, Mapping) and b.get("date")
        )
        if writes != self._writes:
            # A write of ours landed while these were read: answer with them, keep nothing.
            return total, expiring
        self._details.pop(aid, None)  # re-inserted last: the oldest entries go first
        self._details[aid] = (read_at, total, expiring)
        while len(self._details) > DETAILS_KEPT:
            del self._details[next(iter(self._details))]
        return total, expiring

    def _keep_just_read(self, account: Mapping[str, Any], read_at: float, writes: int) -> None:
        """Keep an account find_customer read for the balance asked right after."""
        aid = account.get("id")
        if not isinstance(aid, int) or writes != self._writes:
            return  # no usable id, or a write of ours landed while it was read
        self._just_read.pop(aid, None)  # re-inserted last: the oldest entries go first
        self._just_read[aid] = (read_at, writes, account)
        while len(self._just_read) > JUST_READ_KEPT:
            del self._just_read[next(iter(self._just_read))]

    def _take_just_read(self, customer_id: str) -> Mapping[str, Any] | None:
        """The account find_customer read moments ago (once), if no write came since."""
        kept = self._just_read.pop(int(customer_id), None) if customer_id.isdigit() else None
        if kept is None:
            return None
        read_at, writes, account = kept
        if writes != self._writes or self._clock() - read_at > JUST_READ_SECONDS:
            return None
        return account

    async def _max_charge(self, account: Mapping[str, Any], cart_total: Decimal) -> Decimal:
        customer = account.get("customer") or {}
        order = {
            "customer": {"id": customer.get("id")},
            "privilegeType": "loyalty_level",
            "items": [{"initialPrice": cart_total, "quantity": 1}],
        }
        answer = await self._run(lambda: self._client.loyalty_calculate(order, 0))
        best = [c for c in answer.get("calculations") or [] if c.get("maximum")]
        return money(best[0].get("maxChargeBonuses")) if best else Decimal("0.00")


def as_customer(account: Mapping[str, Any]) -> LedgerCustomer:
    """A loyalty account as the core's customer: the account id is the customer id."""
    customer = account.get("customer") or {}
    name = " ".join(str(customer[k]) for k in ("firstName", "lastName") if customer.get(k))
    return LedgerCustomer(
        customer_id=str(account["id"]),
        phone=_text(account.get("phoneNumber")),
        card=_text(account.get("cardNumber")),
        name=name or None,
    )


def main_account(accounts: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The account a phone's look-ups land on: the first activated one RetailCRM lists, else
    the first (a customer takes part in a programme once, §4.3, so several accounts on one
    phone are several customers sharing it)."""
    active = [a for a in accounts if a.get("status") == "activated"]
    chosen = active or list(accounts)
    return chosen[0] if chosen else None


def same_phone(number: Any, phone: str) -> bool:
    """Whether an account's ``phoneNumber`` is ``phone`` (digits compared, ``8…`` as ``7…``):
    RetailCRM's ``filter[phoneNumber]`` matching is not documented (§3.2, §9.4)."""
    return bool(number) and phone_digits(str(number)) == phone_digits(phone)


def money(value: Any) -> Decimal:
    """An amount as RetailCRM gives it (number, string or nothing), to the kopeck."""
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
