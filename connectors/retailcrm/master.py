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

Issue 17's cards, moves, questionnaire and registration (the core's ``CardsAtMaster``) are
``cards.py``'s and ``profiles.py``'s, reached through this object; what RetailCRM cannot do
(block a card, move points exactly once, choose a main card) answers ``not_supported`` and
is declared up front by ``missing``.

The reads — finding an account, its balance, the details kept a minute, the account a
find_customer read reused by the balance right after — and what a look-up costs in requests
are ``accounts.py``'s; this module makes the writes, each followed by ``forget_details``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from typing import Any, TypeVar

from bridge.errors import ConfigError, DeliveryError, PermanentError
from bridge.ledger import (
    CardStatus,
    LedgerBalance,
    LedgerCard,
    LedgerCustomer,
    LedgerErrorCode,
    LedgerOperation,
    LedgerRefused,
)
from connectors.retailcrm.accounts import (
    DETAILS_TTL_SECONDS,
    JUST_READ_SECONDS,
    LoyaltyAccounts,
    money,
)
from connectors.retailcrm.cards import NO_CREDIT, NO_MOVE, LoyaltyCards
from connectors.retailcrm.client import RetailcrmClient
from connectors.retailcrm.profiles import Profiles

__all__ = ["DETAILS_TTL_SECONDS", "JUST_READ_SECONDS", "RetailcrmMaster"]

T = TypeVar("T")


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
        self.accounts = LoyaltyAccounts(client, run, details_ttl=details_ttl, clock=clock)
        self.cards_at = LoyaltyCards(client, run, self.forget_details)
        self.profiles = Profiles(client, run, self.accounts)

    def missing(self, capability: str) -> str | None:
        """Why RetailCRM cannot do ``capability`` at all (moving or crediting points), else None."""
        # Calls made through the owed-calls mechanism are retried after a lost answer: one
        # RetailCRM cannot make exactly once is refused before it is owed.
        return {"move_points": NO_MOVE, "accrue": NO_CREDIT}.get(capability)

    async def find_customer(
        self, *, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> LedgerCustomer:
        """The loyalty account by phone, card or account id."""
        return await self.accounts.find_customer(phone=phone, card=card, customer_id=customer_id)

    async def balance(self, customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        """Points, level, points still waiting activation and points burning soon."""
        return await self.accounts.balance(customer_id, cart_total)

    def forget_details(self, account_id: str | None = None) -> None:
        """Read pending / expiring points again next time: of one account, or of all."""
        self.accounts.forget_details(account_id)

    async def reserve(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Charge ``amount`` on order ``order_id`` (its externalId), or start the SMS check."""
        order = await self._order(order_id)
        # RetailCRM charges the points of whoever owns the order (§4.3 step 3), whatever
        # account the bridge has in mind: the code's owner must be the order's owner.
        account = await self.accounts.account(customer_id)
        owner = (order.get("customer") or {}).get("id")
        if owner is None or str(owner) != str((account.get("customer") or {}).get("id")):
            raise LedgerRefused(
                LedgerErrorCode.CUSTOMER_MISMATCH,
                f"order {order_id} belongs to another customer than account {customer_id}",
            )
        charged = money(order.get("bonusesChargeTotal"))
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
        charged = money(order.get("bonusesChargeTotal"))
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

    # ---- cards, questionnaire, registration (issue 17; cards.py, profiles.py) ----------

    async def cards(self, phone: str) -> list[LedgerCard]:
        """The loyalty accounts of ``phone``, the one its look-ups land on first."""
        return await self.cards_at.cards(phone)

    async def card(self, number: str) -> LedgerCard:
        """The account of a card number (``#<id>`` for one without)."""
        return await self.cards_at.card(number)

    async def attach_card(self, operation_id: str, number: str, phone: str) -> LedgerCard:
        """Give an account with no phone to ``phone``."""
        return await self.cards_at.attach_card(operation_id, number, phone)

    async def set_card_status(
        self, operation_id: str, number: str, status: CardStatus
    ) -> LedgerCard:
        """Activate a not-confirmed account; blocking is not_supported."""
        return await self.cards_at.set_card_status(operation_id, number, status)

    async def set_main_card(self, operation_id: str, number: str) -> LedgerCard:
        """The phone's main card as it is; choosing another is not_supported."""
        return await self.cards_at.set_main_card(operation_id, number)

    async def move_points(
        self, operation_id: str, from_card: str, to_card: str, amount: Decimal
    ) -> LedgerOperation:
        """Not_supported: RetailCRM cannot move points exactly once."""
        return await self.cards_at.move_points(operation_id, from_card, to_card, amount)

    async def profile(self, customer_id: str) -> dict[str, str | None]:
        """The questionnaire of the account's customer."""
        return await self.profiles.profile(customer_id)

    async def save_profile(
        self, operation_id: str, customer_id: str, profile: dict[str, str | None]
    ) -> dict[str, str | None]:
        """Save the questionnaire's given fields on the account's customer."""
        return await self.profiles.save_profile(operation_id, customer_id, profile)

    async def register_customer(
        self, operation_id: str, phone: str, name: str | None = None
    ) -> LedgerCustomer:
        """The phone's account, with its customer, created once per phone."""
        return await self.cards_at.register_customer(operation_id, phone, name)

    async def _write(self, account_id: str | None, call: Callable[[], T]) -> T:
        """A write; whatever came of it, the account's details (all, for None) are read anew."""
        try:
            result: T = await self._run(call)
        finally:
            self.forget_details(account_id or None)
        return result

    async def _order(self, external_id: str) -> Mapping[str, Any]:
        try:
            answer = await self._run(lambda: self._client.order(external_id))
        except PermanentError as exc:
            raise LedgerRefused(
                LedgerErrorCode.RESERVATION_NOT_FOUND,
                f"no order {external_id!r} in RetailCRM: {exc}",
            ) from exc
        return answer.get("order") or {}

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
                balance = money((await self.accounts.account(account_id)).get("amount"))
            except (DeliveryError, LedgerRefused):
                balance = None
        return LedgerOperation(operation_id, kind, status, amount, balance, balance, reservation_id)
