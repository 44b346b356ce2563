"""1C as the bonus master: the ``Ledger`` protocol over the declared service's capabilities.

Which calls exist follows the declaration (``declared/``): without ``find_customer`` a
customer is keyed by phone or card directly; a ``commit`` or ``release`` 1C does itself
(``done_by_1c``) is only recorded; a capability neither declared nor done by 1C is refused
with ``not_supported`` naming it. Amounts and balances a service leaves out of its answer
are taken from the request (what was held) or left unknown, never made up.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from bridge.ledger import (
    LedgerBalance,
    LedgerCustomer,
    LedgerErrorCode,
    LedgerOperation,
    LedgerRefused,
)
from bridge.logs import get_logger
from connectors.onec import answers
from connectors.onec.answers import read_answer
from connectors.onec.cards import OnecCards
from connectors.onec.declared.model import Declaration
from connectors.onec.declared.vocabulary import HOLD_CONTEXT

log = get_logger("connectors.onec")
_STATUS = {"reserve": "reserved", "commit": "committed", "release": "released"}
_STATUS |= {"accrue": "accrued", "reverse": "reversed"}


class LedgerCall(Protocol):
    """One call to 1C by capability: the answer's record, or a DeliveryError."""

    def __call__(self, logical: str, **params: Any) -> Awaitable[dict[str, Any]]:
        """Call ``logical`` with ``params``."""
        ...


class OnecMaster(OnecCards):
    """The bonus ledger of one 1C infobase, as its service is declared, with its customers'
    cards, questionnaires and registration (``CardsAtMaster``, cards.py)."""

    def __init__(
        self,
        call: LedgerCall,
        declaration: Declaration,
        publishes: Callable[[str], bool | None] | None = None,
    ) -> None:
        super().__init__(call, self.missing)
        self._declared = declaration
        # Whether the service has a declared operation (False: its WSDL lacks it; None: only
        # a call can tell): an optional one an older service lacks is missing too.
        self._publishes = publishes
        commit, release = declaration.calls("commit"), declaration.calls("release")
        reads = (commit.reads if commit else frozenset()) | (release.reads if release else set())
        # What the calls on a hold read besides its id: kept with it (in the reservation_id
        # the bridge stores), so a commit keyed by phone and order gets them back.
        self._context = sorted(reads & HOLD_CONTEXT)

    def missing(self, capability: str) -> str | None:
        """None when ``capability`` is declared (or done by 1C) and, for an optional call, not
        known to be unpublished; else why the bridge cannot."""
        if self._declared.done_by_1c(capability):
            return None
        if self._declared.calls(capability) is None:
            return f"the 1C service declares no {capability} ({self._declared.source})"
        if (
            capability in self._declared.optional
            and self._publishes is not None
            and self._publishes(capability) is False
        ):
            return f"the 1C service does not publish {capability} (an optional call, CONTRACT.md)"
        return None

    async def find_customer(
        self, *, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> LedgerCustomer:
        """FindCustomer, or the key itself where the service has none."""
        if self._declared.calls("find_customer") is None:
            return self._keyed(phone, card, customer_id)
        r = await self._call("find_customer", phone=phone, card=card, customer_id=customer_id)
        if not any(value not in (None, "") for value in r.values()):
            # An empty answer (a list of cards that came back empty): no such customer. A
            # record without its id is a broken answer, read_answer says so below.
            raise LedgerRefused(LedgerErrorCode.UNKNOWN_CUSTOMER, "1C has no such customer")
        return read_answer("find_customer", answers.customer, r)

    def _keyed(
        self, phone: str | None, card: str | None, customer_id: str | None
    ) -> LedgerCustomer:
        key = self._declared.customer or "phone"
        value = customer_id or (phone if key == "phone" else card)
        if value is None:
            other = "card" if key == "phone" else "phone"
            raise LedgerRefused(
                LedgerErrorCode.NOT_SUPPORTED,
                f"this 1C service is keyed by {key} and declares no find_customer: a look-up"
                f" by {other} needs it",
            )
        return LedgerCustomer(
            customer_id=value,
            phone=value if key == "phone" else None,
            card=value if key == "card" else None,
        )

    def _who(self, customer_id: str) -> dict[str, Any]:
        """The request's customer fields: the id, and the phone or card it is where the
        service keys customers so (no find_customer: by phone unless it says card)."""
        key = self._declared.customer
        if key is None and self._declared.calls("find_customer") is None:
            key = "phone"
        return {
            "customer_id": customer_id,
            "phone": customer_id if key == "phone" else None,
            "card": customer_id if key == "card" else None,
        }

    async def balance(self, customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        """GetBalance (and the max write-off for the cart, where a separate call gives it)."""
        self._require("balance")
        who = self._who(customer_id)
        r = dict(await self._call("balance", cart_total=cart_total, **who))
        received = datetime.now(UTC)
        r.setdefault("customer_id", customer_id)
        if (
            cart_total is not None
            and r.get("max_redeemable") in (None, "")
            and self._declared.calls("max_redeemable") is not None
        ):
            more = await self._call("max_redeemable", cart_total=cart_total, **who)
            r["max_redeemable"] = more.get("max_redeemable")
        zone = self._declared.timezone
        return read_answer("balance", lambda rec: answers.balance(_filled(rec), received, zone), r)

    async def reserve(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Reserve: hold points; the hold's id is the one 1C hands back, if it does."""
        self._require("reserve")
        r = await self._call(
            "reserve",
            operation_id=operation_id,
            amount=amount,
            order_id=order_id,
            **self._who(customer_id),
        )
        op = self._operation("reserve", r, operation_id, amount)
        hold = answers.text(r.get("reservation_id")) or operation_id
        context = {"customer_id": customer_id, "order_id": order_id, "held": str(amount)}
        context |= {k: v for k, v in self._who(customer_id).items() if v is not None}
        return _with_ref(op, self._ref(hold, context))

    def reservation_ref(self, operation_id: str, order_id: str) -> str:
        """The hold as the bridge names it before 1C answered: by the operation id (the
        reference contract's rule; a service with its own hold ids cannot be asked)."""
        return self._ref(operation_id, {"order_id": order_id})

    def _ref(self, hold: str, context: Mapping[str, str]) -> str:
        if not self._context:
            return hold
        kept = {k: context[k] for k in self._context if k in context}
        return json.dumps({"hold": hold, **kept}, ensure_ascii=False, sort_keys=True)

    async def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | None = None
    ) -> LedgerOperation:
        """Commit: write off a hold (or part of it), or record that 1C does at the sale."""
        hold, context = _unref(reservation_id)
        held = Decimal(context["held"]) if "held" in context else None
        written = amount if amount is not None else held
        if self._declared.calls("commit") is None and self._declared.done_by_1c("commit"):
            return _recorded("commit", operation_id, written, hold)
        self._require("commit")
        r = await self._call(
            "commit", operation_id=operation_id, reservation_id=hold, amount=amount, **context
        )
        return self._operation("commit", r, operation_id, written)

    async def release(self, operation_id: str, reservation_id: str) -> LedgerOperation:
        """Release a hold, or record it where 1C frees holds itself (or has no release)."""
        hold, context = _unref(reservation_id)
        if self._declared.calls("release") is None:
            if not self._declared.done_by_1c("release"):
                # Reached by expiry only (the API refuses a cancel with 501): 1C keeps the
                # hold until it frees it itself; support sees why in the log.
                log.warning("onec_release_not_declared", hold=hold, source=self._declared.source)
            return _recorded("release", operation_id, None, hold)
        r = await self._call("release", operation_id=operation_id, reservation_id=hold, **context)
        return self._operation("release", r, operation_id, None)

    async def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal, order_id: str
    ) -> LedgerOperation:
        """Accrue: add points for an order."""
        self._require("accrue")
        r = await self._call(
            "accrue",
            operation_id=operation_id,
            amount=amount,
            order_id=order_id,
            **self._who(customer_id),
        )
        return self._operation("accrue", r, operation_id, amount)

    async def reverse(
        self, operation_id: str, original_operation_id: str, amount: Decimal
    ) -> LedgerOperation:
        """Reverse: take back an accrual or give back a write-off (returns)."""
        self._require("reverse")
        r = await self._call(
            "reverse",
            operation_id=operation_id,
            original_operation_id=original_operation_id,
            amount=amount,
        )
        return self._operation("reverse", r, operation_id, amount)

    def _require(self, capability: str) -> None:
        if self._declared.calls(capability) is None:
            raise LedgerRefused(LedgerErrorCode.NOT_SUPPORTED, self.missing(capability) or "")

    def _operation(
        self, kind: str, r: Mapping[str, Any], operation_id: str, amount: Decimal | None
    ) -> LedgerOperation:
        """The answer as an ``Operation`` (``answers.filled_operation``)."""
        return answers.filled_operation(kind, r, operation_id, amount)


def _filled(r: Mapping[str, Any]) -> dict[str, Any]:
    """A balance with what a service may leave out worked out from what it gave: the total
    and the free part (``available``) are one number when it gives one, nothing reserved."""
    record = dict(r)
    given = {k for k in ("balance", "reserved", "available") if record.get(k) not in (None, "")}
    if given and "reserved" not in given:
        if "balance" in given and "available" in given:
            record["reserved"] = answers.amount(record, "balance") - answers.amount(
                record, "available"
            )
        else:
            record["reserved"] = Decimal(0)
    if "balance" not in given and "available" in given:
        record["balance"] = answers.amount(record, "available") + answers.amount(record, "reserved")
    if "available" not in given and "balance" in given:
        record["available"] = answers.amount(record, "balance") - answers.amount(record, "reserved")
    return record


def _recorded(kind: str, operation_id: str, amount: Decimal | None, hold: str) -> LedgerOperation:
    return LedgerOperation(
        operation_id=operation_id,
        kind=kind,
        status=_STATUS[kind],
        amount=amount if amount is not None else Decimal(0),
        balance=None,
        available=None,
        reservation_id=hold,
    )


def _with_ref(op: LedgerOperation, ref: str) -> LedgerOperation:
    return LedgerOperation(
        operation_id=op.operation_id,
        kind=op.kind,
        status=op.status,
        amount=op.amount,
        balance=op.balance,
        available=op.available,
        reservation_id=ref,
        verification_id=op.verification_id,
    )


def _unref(reservation_id: str) -> tuple[str, dict[str, str]]:
    """The hold's id and what was kept with it (``OnecMaster._ref``)."""
    if reservation_id.startswith("{"):
        try:
            kept = json.loads(reservation_id)
        except ValueError:
            return reservation_id, {}
        if isinstance(kept, dict) and isinstance(kept.get("hold"), str):
            hold = kept.pop("hold")
            return hold, {k: str(v) for k, v in kept.items()}
    return reservation_id, {}
