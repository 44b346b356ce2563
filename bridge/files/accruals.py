"""The owed call that accrues one sales document at the master (``files.accrue``).

Its operation id is derived from the source system and the document id, never the file's
name: the same document in a file dropped again, under any name, is the same owed call
(``owe`` of a known id is that call) and, were it owed twice, the master applies one
operation id once (CONTRACT.md: every ledger call is idempotent on its operation id).

What a document earns is priced when the call runs, by the rules in force on the
document's day, for the customer's group at the master (its level, read then). A report
gives each line's amount, not a unit price; with nothing paid in points (``requested`` 0)
a line's accrual depends on its amount alone, so each line is priced as one unit of its
amount (the quantity is kept in the call's arguments for the record).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from typing import Any

from bridge.bonus.balance import BonusService, CustomerRef, MasterUnavailable
from bridge.errors import DeliveryError, TransientError
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.owed.calls import NewOwedCall, OwedCall
from bridge.owed.handlers import Handlers
from bridge.retry import RetryDecision
from bridge.rules.book import RuleBook
from bridge.rules.engine import CartLine, price_cart
from bridge.settings import RetrySettings

log = get_logger("bridge.files")

ACCRUE = "files.accrue"


def sale_operation_id(system: str, document: str) -> str:
    """The master's operation id of a document's accrual: ``sale_`` and 24 hex digits of
    (system, document) — within 1C's 64 characters whatever the document id's length."""
    digest = hashlib.sha256(f"sale\0{system}\0{document}".encode()).hexdigest()
    return f"sale_{digest[:24]}:accrue"


def document_accrual(book: RuleBook, arguments: Mapping[str, Any], level: str | None) -> Decimal:
    """What a document earns by the rules: each line one unit of its amount, no spend."""
    lines = [
        CartLine(
            sku=str(ln["sku"]),
            quantity=Decimal(1),
            price=Decimal(str(ln["amount"])),
            group=ln.get("group"),
        )
        for ln in arguments["lines"]
    ]
    day = date.fromisoformat(str(arguments["date"]))
    return price_cart(book, lines, level, Decimal(0), day).total("accrual")


def accrual_call(
    master: str, system: str, file_key: str, arguments: Mapping[str, Any]
) -> NewOwedCall:
    """The owed call of one document, about the file that brought it first."""
    op = sale_operation_id(system, str(arguments["document"]))
    return NewOwedCall(master, ACCRUE, op, {"system": system, **arguments}, subject=file_key)


class SaleAccruals:
    """Runs ``files.accrue`` calls: the customer found, the accrual priced and made."""

    def __init__(
        self,
        bonus: BonusService,
        book: RuleBook,
        policy: RetrySettings,
        metrics: Metrics | None = None,
    ) -> None:
        self.bonus, self.book, self.policy, self.metrics = bonus, book, policy, metrics

    def register(self, handlers: Handlers) -> None:
        """Run ``files.accrue`` with this object."""
        handlers.register(ACCRUE, self, self.policy)

    async def run(self, call: OwedCall) -> str | None:
        """Accrue the document's points at the master (none owed: nothing asked)."""
        args = call.arguments
        ref = CustomerRef(
            card=args.get("card") or None, phone=None if args.get("card") else args.get("phone")
        )
        try:
            customer = await self.bonus.resolve(ref)
            ledger = self.bonus.ledger
            level = None
            if self.book.file.customer_groups:  # the level matters only to customer groups
                balance = await self.bonus.call_master(
                    "balance", lambda: ledger.balance(customer.customer_id)
                )
                level = balance.level
            amount = document_accrual(self.book, args, level)
            if amount <= 0:
                return f"document {args['document']}: the rules give no points"
            order = f"{args['system']}:{args['document']}"
            await self.bonus.call_master(
                "accrue",
                lambda: ledger.accrue(call.operation_id, customer.customer_id, amount, order),
            )
        except MasterUnavailable as exc:
            raise TransientError(str(exc)) from exc
        self._count("done")
        return (
            f"accrued {amount} for document {args['document']} to customer {customer.customer_id}"
        )

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        """A refusal (an unknown card, a blocked one) leaves the call dead for support to
        read in ``bridge files show`` and replay (``bridge replay own_…``)."""
        if decision.retry:
            return
        self._count("dead")
        log.warning(
            "sale_accrual_failed",
            system=call.arguments.get("system"),
            document=call.arguments.get("document"),
            error=str(error)[:200],
        )

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_bonus("files_accrue", outcome)
