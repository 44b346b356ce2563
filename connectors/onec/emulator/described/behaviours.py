"""What a described operation does to the infobase: the closed table of behaviours (the
``does:`` of a description) over one ``OnecLedger``, and the service's own hold ids.

Each behaviour takes the call's arguments under logical names (``phone``, ``card``,
``customer_id``, ``cart_total``, ``amount``, ``order``, ``request_id``, ``hold_id``,
``accrual_id``) and gives the values its answer may show (``Values``); a refusal is the
ledger's ``LedgerError`` with its reason (``insufficient_balance``, ``unknown_customer``…),
which the service's refusal rules turn into its own shape.

A service hands back its own hold ids (``Б-000017``) and usually takes no operation id: the
ledger's operation ids are made here. With a ``request_id`` a hold or an accrual is
idempotent on it (the ledger's own memory, so a reused id with other arguments is
``operation_conflict``); without one an accrual is keyed by its order (one accrual per
order, as a 1C document is posted once). Commit and release are keyed by the hold, so a
repeat answers as the first did.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from connectors.onec.emulator.checks import LedgerError, invalid, is_blank
from connectors.onec.emulator.customers import ZERO, Customer
from connectors.onec.emulator.described.spelling import read_decimal, read_text
from connectors.onec.emulator.ledger import OnecLedger
from connectors.onec.emulator.operations import InfobaseOperation

Values = dict[str, Any]  # what an answer may show, by logical name
KEYS = ("phone", "card", "customer_id")


@dataclass(frozen=True)
class Behaviour:
    """One ``does:``: the arguments it reads and which of them a call must carry."""

    inputs: frozenset[str]
    required: frozenset[str]
    keyed: bool  # finds its customer by exactly one of KEYS


def _behaviour(inputs: str, required: str = "", *, keyed: bool = True) -> Behaviour:
    names = frozenset(inputs.split()) | (frozenset(KEYS) if keyed else frozenset())
    return Behaviour(names, frozenset(required.split()), keyed)


BEHAVIOURS: dict[str, Behaviour] = {
    "find_customer": _behaviour(""),
    "find_customers": _behaviour(""),
    "balance": _behaviour("cart_total"),
    "hold": _behaviour("amount order request_id", "amount order"),
    "commit": _behaviour("hold_id amount request_id", "hold_id", keyed=False),
    "release": _behaviour("hold_id request_id", "hold_id", keyed=False),
    "accrue": _behaviour("amount order request_id", "amount order"),
    "reverse": _behaviour("accrual_id amount request_id", "accrual_id amount", keyed=False),
}


def customer_values(customer: Customer) -> Values:
    """A customer's fields as an answer shows them (every sandbox card is active)."""
    return asdict(customer) | {"active": True}


class Behaviours:
    """The behaviours over one ledger, with the service's ids for holds and accruals."""

    def __init__(self, ledger: OnecLedger, hold_ids: str, accrual_ids: str) -> None:
        self.ledger = ledger
        self._formats = {"hold": hold_ids, "accrue": accrual_ids}
        self._counter = itertools.count(1)  # ledger operation ids nobody passed in
        self._numbers = {"hold": itertools.count(17), "accrue": itertools.count(1)}
        self._lock = threading.Lock()
        self.holds: dict[str, str] = {}  # the service's hold id → the ledger's reservation
        self.accruals: dict[str, str] = {}  # the service's accrual id → the ledger's operation
        self._named: dict[str, str] = {}  # a ledger operation id → the service's id

    def run(self, does: str, args: dict[str, Any]) -> Values:
        """Run behaviour ``does`` with the call's arguments (absent ones left out)."""
        given = {k: v for k, v in args.items() if not is_blank(v)}
        if missing := sorted(BEHAVIOURS[does].required - set(given)):
            raise invalid(", ".join(missing), "required")
        handler: Callable[[dict[str, Any]], Values] = getattr(self, f"_{does}")
        return {"ok": True, "error": ""} | handler(given)

    def sale(self, hold_id: str, amount: Any = None) -> Values:
        """The sale document posted in 1C writes the hold off (1C's own commit)."""
        return self._commit({"hold_id": hold_id, "amount": amount})

    def snapshot(self) -> dict[str, Any]:
        """The service's ids and what they stand for in the ledger."""
        return {"holds": dict(self.holds), "accruals": dict(self.accruals)}

    def _customer(self, args: dict[str, Any]) -> Customer:
        keys = {k: read_text(args[k]) for k in KEYS if k in args}
        return self.ledger.find_customer(**keys)

    def _find_customer(self, args: dict[str, Any]) -> Values:
        return customer_values(self._customer(args))

    def _find_customers(self, args: dict[str, Any]) -> Values:
        try:
            found = [customer_values(self._customer(args))]
        except LedgerError as exc:
            if exc.code != "unknown_customer":
                raise
            found = []
        return {"customers": found, "count": len(found)}

    def _balance(self, args: dict[str, Any]) -> Values:
        customer = self._customer(args)
        total = args.get("cart_total")
        balance = self.ledger.balance(customer.customer_id, read_decimal(total))
        most = balance.max_redeemable
        if most is None:  # no cart: the whole available may be written off
            most = max(ZERO, balance.available)
        values = customer_values(customer) | asdict(balance)
        # Points never burn in the sandbox: the date they burn is 1C's empty date.
        return values | {"max_redeemable": most, "burns_at": None}

    def _hold(self, args: dict[str, Any]) -> Values:
        customer = self._customer(args)
        op = self._operation_id("hold", args)
        done = self.ledger.reserve(
            op, customer.customer_id, read_decimal(args["amount"]), read_text(args["order"])
        )
        hold_id = self._name("hold", op, self.holds)
        return self._after(done) | {"hold_id": hold_id, "customer_id": customer.customer_id}

    def _commit(self, args: dict[str, Any]) -> Values:
        hold_id, reservation = self._hold_of(args)
        amount = args.get("amount")
        points = None if is_blank(amount) else read_decimal(amount)
        op = f"commit:{hold_id}" if "request_id" not in args else f"req:{args['request_id']}"
        return self._after(self.ledger.commit(op, reservation, points)) | {"hold_id": hold_id}

    def _release(self, args: dict[str, Any]) -> Values:
        hold_id, reservation = self._hold_of(args)
        op = f"release:{hold_id}" if "request_id" not in args else f"req:{args['request_id']}"
        return self._after(self.ledger.release(op, reservation)) | {"hold_id": hold_id}

    def _accrue(self, args: dict[str, Any]) -> Values:
        customer = self._customer(args)
        order = read_text(args["order"])
        op = f"req:{args['request_id']}" if "request_id" in args else f"accrue:{order}"
        done = self.ledger.accrue(op, customer.customer_id, read_decimal(args["amount"]), order)
        accrual_id = self._name("accrue", op, self.accruals)
        return self._after(done) | {"accrual_id": accrual_id, "customer_id": customer.customer_id}

    def _reverse(self, args: dict[str, Any]) -> Values:
        accrual_id = read_text(args["accrual_id"])
        original = self.accruals.get(accrual_id)
        if original is None:
            raise invalid("accrual_id", f"{accrual_id!r} is no accrual of this service")
        op = self._operation_id("reverse", args)
        done = self.ledger.reverse(op, original, read_decimal(args["amount"]))
        return self._after(done) | {"accrual_id": accrual_id}

    def _hold_of(self, args: dict[str, Any]) -> tuple[str, str]:
        hold_id = str(read_text(args["hold_id"])).strip()
        reservation = self.holds.get(hold_id)
        if reservation is None:
            raise LedgerError("reservation_not_found", f"no hold {hold_id!r}")
        return hold_id, reservation

    def _operation_id(self, kind: str, args: dict[str, Any]) -> str:
        if "request_id" in args:
            return f"req:{args['request_id']}"
        with self._lock:
            return f"{kind}-{next(self._counter)}"

    def _name(self, kind: str, op: str, index: dict[str, str]) -> str:
        """The service's id of ledger operation ``op``: the one it got, else a new one."""
        with self._lock:
            if op not in self._named:
                name = self._formats[kind].format(n=next(self._numbers[kind]))
                self._named[op] = name
                index[name] = op
            return self._named[op]

    @staticmethod
    def _after(done: InfobaseOperation) -> Values:
        return {
            "amount": done.amount,
            "balance": done.balance,
            "available": done.available,
            "status": done.status,
        }
