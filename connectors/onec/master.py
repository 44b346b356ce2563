"""1C as the bonus master: the ``Ledger`` protocol over the contract's ledger operations
(CONTRACT.md "Ledger rules": FindCustomer, GetBalance, Reserve, Commit, Release, Accrue,
Reverse). Every operation is idempotent on its ``operation_id`` at 1C; a business refusal
is a ``LedgerRefused`` with the contract's code (``errors.py``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from bridge.ledger import LedgerBalance, LedgerCustomer, LedgerOperation
from connectors.onec import answers
from connectors.onec.answers import read_answer


class LedgerCall(Protocol):
    """One ledger call to 1C by its logical name: the answer's record, or a DeliveryError."""

    def __call__(self, logical: str, **params: Any) -> Awaitable[dict[str, Any]]:
        """Call ``logical`` with ``params``."""
        ...


class OnecMaster:
    """The bonus ledger of one 1C infobase."""

    def __init__(self, call: LedgerCall) -> None:
        self._call = call

    async def find_customer(
        self, *, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> LedgerCustomer:
        """FindCustomer: the customer and the phone 1C has on file."""
        r = await self._call("find_customer", phone=phone, card=card, customer_id=customer_id)
        return read_answer("find_customer", answers.customer, r)

    async def balance(self, customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        """GetBalance, with MaxRedeemable for the cart when a total is given."""
        r = await self._call("balance", customer_id=customer_id, cart_total=cart_total)
        received = datetime.now(UTC)
        return read_answer("balance", lambda record: answers.balance(record, received), r)

    async def reserve(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Reserve: hold points; idempotent on ``operation_id``."""
        return await self._operation(
            "reserve",
            operation_id=operation_id,
            customer_id=customer_id,
            amount=amount,
            order_id=order_id,
        )

    def reservation_ref(self, operation_id: str, order_id: str) -> str:
        """1C names a hold by the operation id that made it (CONTRACT.md, Reserve)."""
        return operation_id

    async def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | None = None
    ) -> LedgerOperation:
        """Commit: write off a reservation (or part of it)."""
        return await self._operation(
            "commit", operation_id=operation_id, reservation_id=reservation_id, amount=amount
        )

    async def release(self, operation_id: str, reservation_id: str) -> LedgerOperation:
        """Release: close a reservation without a write-off."""
        return await self._operation(
            "release", operation_id=operation_id, reservation_id=reservation_id
        )

    async def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Accrue: add points for an order."""
        return await self._operation(
            "accrue",
            operation_id=operation_id,
            customer_id=customer_id,
            amount=amount,
            order_id=order_id,
        )

    async def reverse(
        self, operation_id: str, original_operation_id: str, amount: Decimal
    ) -> LedgerOperation:
        """Reverse: take back an accrual or give back a write-off (returns)."""
        return await self._operation(
            "reverse",
            operation_id=operation_id,
            original_operation_id=original_operation_id,
            amount=amount,
        )

    async def _operation(self, logical: str, **params: Any) -> LedgerOperation:
        r = await self._call(logical, **params)
        return read_answer(logical, answers.operation, r)
