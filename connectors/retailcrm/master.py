"""RetailCRM as the bonus master: its loyalty API behind the core's ``Ledger`` protocol.

How the protocol maps (retailcrm-api.md §4):

=========================  =================================================================
Ledger                     RetailCRM
=========================  =================================================================
customer id                the loyalty account id (balances live per account, §4.1)
find_customer              ``GET /loyalty/accounts`` by ``phoneNumber`` / ``cardNumber``
balance                    ``GET /loyalty/account/{id}``; ``bonus/waiting_activation`` and
                           ``burn_soon`` details; ``POST /loyalty/calculate`` for the cap
reserve                    ``POST /orders/loyalty/apply`` on the order (its ``externalId``);
                           with ``confirmSmsCharge`` RetailCRM sends the SMS itself and the
                           charge waits for ``confirm_code`` (``/verification/sms/confirm``)
commit                     nothing to do: RetailCRM charged at apply (a smaller final amount
                           is cancelled and applied again)
release                    ``POST /orders/loyalty/cancel-bonus-operations``
accrue                     ``POST /loyalty/account/{id}/bonus/credit`` (manual credit);
                           ``charge`` is the manual write-off, ``…/bonus/charge``
reverse                    not offered: RetailCRM reverses order bonuses itself when the
                           order is cancelled, and manual credits cannot be told apart
=========================  =================================================================

RetailCRM has no operation ids: ``apply`` is made idempotent by reading the order first
(the same charge already there is the answer to a repeat), ``cancel`` is idempotent by
itself, but a manual credit is not — the bonus service must record it before calling.

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
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from bridge.errors import ConfigError, DeliveryError, PermanentError
from bridge.ledger import (
    LedgerBalance,
    LedgerCustomer,
    LedgerErrorCode,
    LedgerOperation,
    LedgerRefused,
)
from connectors.retailcrm.client import RetailcrmClient, phone_digits

T = TypeVar("T")
Run = Callable[[Callable[[], T]], Awaitable[T]]
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


class RetailcrmMaster:
    """The loyalty calls of one account, run through the connector's limiter and pool."""

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
        self._writes = 0  # writes made through this object, to spot one during a read
        # account id -> (when read, writes then, the account) as find_customer read it.
        self._just_read: dict[int, tuple[float, int, Mapping[str, Any]]] = {}

    async def find_customer(
        self, *, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> LedgerCustomer:
        """The loyalty account by phone, card or account id."""
        read_at, writes = self._clock(), self._writes
        if customer_id is not None:
            account = await self._account(customer_id)
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
            if not accounts:
                raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, "no loyalty account")
            account = accounts[0]
        self._keep_just_read(account, read_at, writes)  # by id too: one read, not two
        customer = account.get("customer") or {}
        name = " ".join(str(customer[k]) for k in ("firstName", "lastName") if customer.get(k))
        return LedgerCustomer(
            customer_id=str(account["id"]),
            phone=_text(account.get("phoneNumber")),
            card=_text(account.get("cardNumber")),
            name=name or None,
        )

    async def balance(self, customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        """Points, level, points still waiting activation and points burning soon."""
        account = self._take_just_read(customer_id) or await self._account(customer_id)
        aid = int(account["id"])
        pending, expiring = await self._bonus_details(aid)
        cap = None
        if cart_total is not None:
            cap = await self._max_charge(account, cart_total)
        amount = _money(account.get("amount"))
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
        total = _money((pending.get("statistic") or {}).get("totalAmount"))
        expiring = tuple(
            (_money(b.get("amount")), date.fromisoformat(str(b["date"])[:10]))
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

    def forget_details(self, account_id: str | None = None) -> None:
        """Read pending / expiring points again next time: of one account, or of all."""
        self._writes += 1
        if account_id is None:
            self._details.clear()
        elif account_id.isdigit():
            self._details.pop(int(account_id), None)

    async def reserve(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Charge ``amount`` on order ``order_id`` (its externalId), or start the SMS check."""
        order = await self._order(order_id)
        # RetailCRM charges the points of whoever owns the order (§4.3 step 3), whatever
        # account the bridge has in mind: the code's owner must be the order's owner.
        account = await self._account(customer_id)
        owner = (order.get("customer") or {}).get("id")
        if owner is None or str(owner) != str((account.get("customer") or {}).get("id")):
            raise LedgerRefused(
                LedgerErrorCode.CUSTOMER_MISMATCH,
                f"order {order_id} belongs to another customer than account {customer_id}",
            )
        charged = _money(order.get("bonusesChargeTotal"))
        if charged == amount:  # a repeat of this very apply: answer as the first time did
            return await self._operation(
                operation_id, "reserve", "reserved", amount, customer_id, order_id
            )
        if charged:
            raise LedgerRefused(
                LedgerErrorCode.OPERATION_CONFLICT,
                f"order {order_id} already has {charged} bonuses charged",
            )
        answer = await self._write(
            customer_id, lambda: self._client.loyalty_apply({"externalId": order_id}, amount)
        )
        check = answer.get("verification") or {}
        waiting = (
            isinstance(check, Mapping) and check.get("checkId") and not check.get("verifiedAt")
        )
        status = "awaiting_code" if waiting else "reserved"
        op = await self._operation(operation_id, "reserve", status, amount, customer_id, order_id)
        if waiting:
            return LedgerOperation(**{**op.__dict__, "verification_id": str(check["checkId"])})
        return op

    def reservation_ref(self, operation_id: str, order_id: str) -> str:
        """A charge is named by its order: released with cancel-bonus-operations on it."""
        return order_id

    async def confirm_code(self, verification_id: str, code: str) -> None:
        """``/verification/sms/confirm``: a wrong code is ``invalid_code``."""
        try:
            # The charge lands now; whose it is, the check does not say: forget every account.
            await self._write(
                None, lambda: self._client.verification_confirm(code, verification_id)
            )
        except PermanentError as exc:
            # A confirm repeated after its answer was lost: the code was right (the wording
            # is the emulator's; RetailCRM's own is unconfirmed, retailcrm-api.md §9 q.7).
            if "already been confirmed" in str(exc):
                return
            raise LedgerRefused(LedgerErrorCode.INVALID_CODE, str(exc)) from exc

    async def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | None = None
    ) -> LedgerOperation:
        """The charge stands; another final ``amount`` re-applies the order's charge."""
        order = await self._order(reservation_id)
        charged = _money(order.get("bonusesChargeTotal"))
        if amount is None and not charged:
            # Nothing is charged on the order (released, or never applied): nothing to commit.
            raise LedgerRefused(
                LedgerErrorCode.RESERVATION_CLOSED, f"no bonuses are charged on {reservation_id}"
            )
        account_id = str((order.get("loyaltyAccount") or {}).get("id") or "")
        if amount is not None and amount != charged:
            if charged and amount > charged:
                raise LedgerRefused(
                    LedgerErrorCode.AMOUNT_EXCEEDS_RESERVATION,
                    f"{amount} is more than the {charged} charged",
                )
            # A retry after a cancel that landed finds nothing charged and only applies, so
            # a commit never ends with nothing written off.
            if charged:
                await self._write(
                    account_id,
                    lambda: self._client.cancel_bonus_operations({"externalId": reservation_id}),
                )
            await self._write(
                account_id,
                lambda: self._client.loyalty_apply({"externalId": reservation_id}, amount),
            )
            charged = amount
        return await self._operation(
            operation_id, "commit", "committed", charged, account_id, reservation_id
        )

    async def release(self, operation_id: str, reservation_id: str) -> LedgerOperation:
        """Cancel the order's bonus operations (idempotent at RetailCRM)."""
        answer = await self._write(  # whose order it is comes with the answer: forget all
            None, lambda: self._client.cancel_bonus_operations({"externalId": reservation_id})
        )
        order = answer.get("order") or {}
        account_id = str((order.get("loyaltyAccount") or {}).get("id") or "")
        return await self._operation(
            operation_id, "release", "released", Decimal("0.00"), account_id, reservation_id
        )

    async def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """A manual credit; not idempotent at RetailCRM (see the module docstring)."""
        comment = f"bridge {operation_id} for order {order_id}"
        await self._write(
            customer_id,
            lambda: self._client.bonus_credit(int(customer_id), amount, comment=comment),
        )
        return await self._operation(operation_id, "accrue", "accrued", amount, customer_id, None)

    async def charge(
        self, operation_id: str, customer_id: str, amount: Decimal, reason: str
    ) -> LedgerOperation:
        """A manual write-off (a till sale not mirrored as an order, §4.3); like a manual
        credit, not idempotent at RetailCRM."""
        comment = f"bridge {operation_id}: {reason}"
        await self._write(
            customer_id,
            lambda: self._client.bonus_charge(int(customer_id), amount, comment=comment),
        )
        return await self._operation(operation_id, "charge", "committed", amount, customer_id, None)

    async def reverse(
        self, operation_id: str, original_operation_id: str, amount: Decimal
    ) -> LedgerOperation:
        """Not offered by RetailCRM as a call the bridge can make safely."""
        raise ConfigError(
            "RetailCRM reverses order bonuses when the order is cancelled; with RetailCRM as"
            " the master, returns are recorded there, not through the bridge"
        )

    async def _write(self, account_id: str | None, call: Callable[[], T]) -> T:
        """A write; whatever came of it, the account's details (all, for None) are read anew."""
        try:
            result: T = await self._run(call)
        finally:
            self.forget_details(account_id or None)
        return result

    async def _account(self, account_id: str) -> Mapping[str, Any]:
        if not account_id.isdigit():
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, f"no account {account_id!r}")
        try:
            answer = await self._run(lambda: self._client.loyalty_account(int(account_id)))
        except PermanentError as exc:
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, str(exc)) from exc
        return answer.get("loyaltyAccount") or {}

    async def _order(self, external_id: str) -> Mapping[str, Any]:
        try:
            answer = await self._run(lambda: self._client.order(external_id))
        except PermanentError as exc:
            raise LedgerRefused(
                LedgerErrorCode.RESERVATION_NOT_FOUND,
                f"no order {external_id!r} in RetailCRM: {exc}",
            ) from exc
        return answer.get("order") or {}

    async def _max_charge(self, account: Mapping[str, Any], cart_total: Decimal) -> Decimal:
        customer = account.get("customer") or {}
        order = {
            "customer": {"id": customer.get("id")},
            "privilegeType": "loyalty_level",
            "items": [{"initialPrice": cart_total, "quantity": 1}],
        }
        answer = await self._run(lambda: self._client.loyalty_calculate(order, 0))
        best = [c for c in answer.get("calculations") or [] if c.get("maximum")]
        return _money(best[0].get("maxChargeBonuses")) if best else Decimal("0.00")

    async def _operation(
        self,
        operation_id: str,
        kind: str,
        status: str,
        amount: Decimal,
        account_id: str,
        reservation_id: str | None,
    ) -> LedgerOperation:
        """The answer after a write; the balance is read again, and if that read fails the
        write still stands (failing now would make the caller repeat a non-idempotent one)."""
        balance: Decimal | None = None
        if account_id.isdigit():
            try:
                balance = _money((await self._account(account_id)).get("amount"))
            except (DeliveryError, LedgerRefused):
                balance = None
        return LedgerOperation(operation_id, kind, status, amount, balance, balance, reservation_id)


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)
