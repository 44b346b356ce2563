"""The state of one 1C infobase behind the emulator: the bonus ledger over the documents.

Pure and in memory: the rules are CONTRACT.md's ("Ledger rules", "Idempotency", "Errors"),
the names its HTTP/JSON (snake_case) form; the emulator adds SOAP/HTTP around it. Choices
the contract leaves open are marked "Decision:" where they are made.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any, cast

from connectors.onec.emulator.cards import InfobaseCards
from connectors.onec.emulator.checks import (
    CENT,
    ERROR_CODES,
    LedgerError,
    check_amount,
    check_moment,
    check_operation_id,
    check_text,
    invalid,
)
from connectors.onec.emulator.customers import (
    ZERO,
    BonusAccount,
    Card,
    Customer,
    check_phone,
    normalize_phone,
)
from connectors.onec.emulator.documents import known, utc_now
from connectors.onec.emulator.operations import (
    SANDBOX_CARDS,
    SANDBOX_CUSTOMERS,
    STATUS_OF,
    Balance,
    Clock,
    InfobaseOperation,
    Kind,
    PointsHold,
)


class OnecLedger(InfobaseCards):
    """One 1C infobase: bonus ledger, customers and their cards, order book, change feed."""

    def __init__(self, *, clock: Clock = utc_now, max_share: Decimal | str = "0.5") -> None:
        super().__init__(clock=clock)
        self._max_share = Decimal(max_share)  # the program's limit: part of a cart paid by points
        if not 0 < self._max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        self._reservations: dict[str, PointsHold] = {}
        self._left: dict[str, tuple[Kind, str, Decimal]] = {}  # accrue/commit -> left to reverse

    def seed_sandbox(self) -> None:
        """Add SANDBOX_CUSTOMERS and SANDBOX_CARDS, as data entered before the exchange
        began (not in the feed)."""
        now = self._now()
        with self._lock:
            for phone, card, name, points, level in SANDBOX_CUSTOMERS:
                e164, card_no = self._customers.free(phone, card)
                self._customers.add(e164, card_no, name, Decimal(points), level, now)
        for number, value, owner in SANDBOX_CARDS:
            self.issue_card(number, value, owner)

    def find_customer(
        self, phone: str | None = None, card: str | None = None, customer_id: str | None = None
    ) -> Customer:
        """Find a customer by exactly one of phone (any Russian spelling), card or id."""
        # Blank counts as absent: 1C's XDTO writes an unset optional string as an empty element.
        keys = {"phone": phone, "card": card, "customer_id": customer_id}
        given = {k: v for k, v in keys.items() if not (v is None or str(v).strip() == "")}
        if len(given) != 1:
            raise invalid("phone, card, customer_id", f"exactly one is required, got {len(given)}")
        ((field, value),) = given.items()
        with self._lock:
            if field == "phone":
                found = self._customers.by_phone(check_phone(value))
            elif field == "card":
                found = self._customers.by_card(check_text(value, "card").strip())
            else:
                found = self._customers.accounts.get(check_text(value, "customer_id"))
            return known(found, field).customer

    def balance(self, customer_id: str, cart_total: Decimal | str | None = None) -> Balance:
        """Points of a customer; with a cart total also the most that cart may be paid with."""
        cid = check_text(customer_id, "customer_id")
        total = None
        if cart_total is not None:
            total = check_amount(cart_total, "cart_total", allow_zero=True)
        now = self._now()
        with self._lock:
            acc = self._account(cid)
            limit = None
            if total is not None:
                share = (total * self._max_share).quantize(CENT, ROUND_DOWN)
                limit = max(ZERO, min(acc.available, share))  # available < 0 after a reverse
            return Balance(cid, acc.balance, acc.reserved, acc.available, limit, acc.level, now)

    def reserve(
        self,
        operation_id: str,
        customer_id: str,
        amount: Decimal | str,
        order_id: str,
        expires_at: datetime | str | None = None,
    ) -> InfobaseOperation:
        """Hold points out of available until commit or release."""
        op, cid, points = (
            check_operation_id(operation_id),
            check_text(customer_id, "customer_id"),
            check_amount(amount),
        )
        order = check_text(order_id, "order_id")
        # Decision: expires_at is only part of the request. CONTRACT.md keeps a reservation
        # open until commit or release, so nothing here expires it.
        expiry = None if expires_at is None else check_moment(expires_at, "expires_at")
        params = ("reserve", cid, points, order, expiry)
        with self._lock:
            if (known := self._recall(op, params, InfobaseOperation)) is not None:
                return known
            acc = self._account(cid)
            # Decision: only an active main card spends (CONTRACT.md "Cards, ...").
            if acc.main.status != "active":
                raise LedgerError("card_blocked", f"the main card is {acc.main.status}")
            if points > acc.available:
                raise LedgerError("insufficient_balance", f"{points} > available {acc.available}")
            acc.reserved += points
            self._reservations[op] = PointsHold(cid, points, acc.main)
            return self._settle(op, params, op, points, acc.main)

    def commit(
        self, operation_id: str, reservation_id: str, amount: Decimal | str | None = None
    ) -> InfobaseOperation:
        """Write off the reservation (or `amount` of it, releasing the rest) and close it."""
        op, rid = check_operation_id(operation_id), check_text(reservation_id, "reservation_id")
        points = None if amount is None else check_amount(amount)
        params = ("commit", rid, points)  # "same parameters" = same request: None != full amount
        with self._lock:
            if (known := self._recall(op, params, InfobaseOperation)) is not None:
                return known
            res = self._open(rid)
            written = res.amount if points is None else points
            if written > res.amount:
                raise LedgerError("amount_exceeds_reservation", f"{written} > {res.amount} held")
            acc, card = self._customers.accounts[res.customer_id], res.card
            card.reserved -= res.amount
            card.balance -= written
            res.closed = "committed"
            self._left[op] = ("commit", res.customer_id, written)
            self._touch(acc)
            return self._settle(op, params, rid, written, card)

    def release(self, operation_id: str, reservation_id: str) -> InfobaseOperation:
        """Close a reservation without a write-off; the result's amount is what was held."""
        op, rid = check_operation_id(operation_id), check_text(reservation_id, "reservation_id")
        with self._lock:
            if (known := self._recall(op, ("release", rid), InfobaseOperation)) is not None:
                return known
            res = self._open(rid)
            res.card.reserved -= res.amount
            res.closed = "released"
            return self._settle(op, ("release", rid), rid, res.amount, res.card)

    def accrue(
        self, operation_id: str, customer_id: str, amount: Decimal | str, order_id: str
    ) -> InfobaseOperation:
        """Add points to a customer for an order."""
        op, cid, points = (
            check_operation_id(operation_id),
            check_text(customer_id, "customer_id"),
            check_amount(amount),
        )
        params = ("accrue", cid, points, check_text(order_id, "order_id"))
        with self._lock:
            if (known := self._recall(op, params, InfobaseOperation)) is not None:
                return known
            acc = self._account(cid)
            if acc.main.status == "blocked":  # Decision: accumulate_only accrues
                raise LedgerError("card_blocked", "the main card is blocked")
            acc.balance += points
            self._left[op] = ("accrue", cid, points)
            self._touch(acc)
            return self._settle(op, params, None, points, acc.main)

    def reverse(
        self, operation_id: str, original_operation_id: str, amount: Decimal | str
    ) -> InfobaseOperation:
        """Take back part of an accrue (points removed) or of a commit (points returned)."""
        op, orig = (
            check_operation_id(operation_id),
            check_text(original_operation_id, "original_operation_id"),
        )
        points = check_amount(amount)
        params = ("reverse", orig, points)
        with self._lock:
            if (known := self._recall(op, params, InfobaseOperation)) is not None:
                return known
            if orig not in self._left:  # Decision: the contract has no code for this case.
                raise invalid("original_operation_id", f"{orig!r} is no accrue or commit here")
            kind, cid, left = self._left[orig]
            if points > left:
                raise LedgerError("amount_exceeds_original", f"{points} > {left} left of {orig}")
            self._left[orig] = (kind, cid, left - points)
            acc = self._customers.accounts[cid]
            # Decision: reversing accrued points already spent takes the balance below zero (a
            # debt): the contract gives reverse no insufficient_balance, and a return must pass.
            acc.balance += points if kind == "commit" else -points
            self._touch(acc)
            return self._settle(op, params, None, points, acc.main)

    def snapshot(self) -> dict[str, Any]:
        """Everything an operation can change, as plain values to compare in tests (a JSON
        document's shape: read by tests and the emulator's state page alike)."""
        with self._lock:
            accounts = self._customers.accounts
            return {
                "balances": {k: (a.balance, a.reserved) for k, a in accounts.items()},
                "customers": {
                    k: (a.customer.phone, a.customer.card, a.customer.name, a.version, a.document)
                    for k, a in accounts.items()
                },
                "cards": {
                    n: (c.balance, c.reserved, c.status, c.owner)
                    for n, c in self._customers.cards.items()
                },
                "open": {k: r.amount for k, r in self._reservations.items() if r.closed is None},
                "left_to_reverse": {k: left for k, (_, _, left) in self._left.items()},
                "orders": self._orders.snapshot(),
                "operations": len(self._done),
                "last_message_no": self._feed.last_message_no,
            }

    # Internals below run under self._lock.

    def _account(self, customer_id: str) -> BonusAccount:
        return known(self._customers.accounts.get(customer_id), "customer_id")

    def _open(self, reservation_id: str) -> PointsHold:
        res = self._reservations.get(reservation_id)
        if res is None:
            raise LedgerError("reservation_not_found", f"no reservation {reservation_id!r}")
        if res.closed is not None:
            raise LedgerError("reservation_closed", f"{reservation_id!r} is already {res.closed}")
        return res

    def _settle(
        self,
        op: str,
        params: tuple[object, ...],
        rid: str | None,
        amount: Decimal,
        card: Card,
    ) -> InfobaseOperation:
        kind = cast(Kind, params[0])
        result = InfobaseOperation(
            op, kind, STATUS_OF[kind], rid, amount, card.balance, card.available
        )
        return self._remember(op, params, result)


__all__ = [
    "ERROR_CODES",
    "SANDBOX_CUSTOMERS",
    "Balance",
    "Customer",
    "InfobaseOperation",
    "LedgerError",
    "OnecLedger",
    "normalize_phone",
]
