"""Manual adjustments (issue 18): support, or a sales system's own calls, accrue points to a
customer or write them off, with a reason, recorded with who asked.

An adjustment is a customer record (``adjustment``, key ``adj_…``) and one owed call
(``bridge.owed``) that makes it at the master, so a master that is down only delays it (the
sweeper retries it, also after ``kill -9``) and a retry is applied once: the master's
operation ids are derived from the adjustment's id::

    accrue     (adj_…:accrue)   ledger.accrue
    write_off  (adj_…:reserve)  ledger.reserve, then
               (adj_…:commit)   ledger.commit of that hold, whole

The Ledger has no plain write-off; a hold written off at once is one (CONTRACT.md: every
call is idempotent on its operation id, so a retried write-off finds its hold and its
commit as they were). A master that cannot hold points (a 1C service declaring no
``reserve``) is refused up front (``not_supported``); one that asks the customer for a code
before a write-off (RetailCRM's confirmSmsCharge) has its hold released and the adjustment
fails ``not_supported``. A master that charges points only on its own orders (RetailCRM)
needs ``order`` to name one, or it refuses.

The id is derived from the client and its ``Idempotency-Key`` (a digest, never the key), so
a repeated request finds its adjustment by key alone: same body, the same adjustment; another
body, ``idempotency_key_reused``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bridge.bonus.balance import BonusService, CustomerRef, MasterUnavailable
from bridge.bonus.phones import mask
from bridge.bonus.reservation_rules import ReservationProblem
from bridge.deadline import deadline_within
from bridge.errors import DeliveryError, TransientError
from bridge.ledger import LedgerErrorCode, LedgerOperation, LedgerRefused, not_supported
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.owed.calls import NewOwedCall, OwedCall
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.retry import RetryDecision
from bridge.settings import RetrySettings
from bridge.store.customer_records import CustomerRecord, CustomerRecords, RecordKind
from bridge.store.protocol import Store
from bridge.store.reservations import VersionConflict

log = get_logger("bridge.adjustments")

ACCRUE, WRITE_OFF = "adjustment.accrue", "adjustment.write_off"
OPERATIONS = {"accrue": ACCRUE, "write_off": WRITE_OFF}
CAPABILITIES = {"accrue": ("accrue",), "write_off": ("reserve", "commit")}
PENDING, DONE, FAILED = "pending", "done", "failed"


@dataclass(frozen=True)
class NewAdjustment:
    """A validated ``POST /api/v1/bonus/operations``."""

    client: str
    kind: str  # accrue | write_off
    amount: Decimal
    reason: str
    customer: CustomerRef
    order_system: str | None
    order_id: str | None
    idempotency_key: str
    request_hash: str


def key_digest(client: str, key: str) -> str:
    """What is kept of a client's Idempotency-Key: a digest, per client."""
    return hashlib.sha256(f"adjustment\0{client}\0{key}".encode()).hexdigest()


def adjustment_id(client: str, key: str) -> str:
    """The adjustment a client's key names: ``adj_`` and 20 hex digits."""
    return f"adj_{key_digest(client, key)[:20]}"


def subject_of(ref: CustomerRef) -> str:
    """Whom the record is about: the phone (E.164), else ``card:…`` or ``<system>:<id>``."""
    if ref.phone is not None:
        return ref.phone
    if ref.card is not None:
        return f"card:{ref.card}"
    return f"{ref.system}:{ref.id}"


class Adjustments:
    """Takes adjustments, makes them at the master (the owed-call handler of both kinds) and
    says where each one is."""

    def __init__(
        self,
        bonus: BonusService,
        records: CustomerRecords,
        owed: OwedSweeper,
        policy: RetrySettings,
        store: Store,
        metrics: Metrics | None = None,
    ) -> None:
        self.bonus, self.records, self.owed, self.policy = bonus, records, owed, policy
        self.store, self.metrics = store, metrics

    def register(self, handlers: Handlers) -> None:
        """Run both kinds of adjustment with this object."""
        for operation in OPERATIONS.values():
            handlers.register(operation, self, self.policy)

    async def request(self, req: NewAdjustment) -> tuple[CustomerRecord, bool]:
        """The adjustment of this client's key, owed and tried once now when new; (it, new)."""
        for capability in CAPABILITIES[req.kind]:
            refused = not_supported(self.bonus.ledger, capability)
            if refused is not None:  # refused now, rather than failed at the master
                raise refused
        adj_id = adjustment_id(req.client, req.idempotency_key)
        body = {
            "client": req.client,
            "kind": req.kind,
            "amount": str(req.amount),
            "reason": req.reason,
            "customer": {
                k: v
                for k, v in (
                    ("phone", req.customer.phone),
                    ("card", req.customer.card),
                    ("system", req.customer.system),
                    ("id", req.customer.id),
                )
                if v is not None
            },
            "order": None
            if req.order_id is None
            else {"system": req.order_system, "id": req.order_id},
            "key_digest": key_digest(req.client, req.idempotency_key),
            "request_hash": req.request_hash,
        }
        subject = subject_of(req.customer)
        record, created = await self.records.add_record(
            RecordKind.ADJUSTMENT, adj_id, subject, PENDING, body
        )
        if not created:
            if record.body.get("request_hash") != req.request_hash:
                self._count("idempotency_key_reused")
                raise ReservationProblem(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another request",
                    field="Idempotency-Key",
                    operation_id=adj_id,
                )
            if record.status == PENDING:  # owed again: a crash may have come between the two
                await self.owed.store.owe([self._call(record)])
                self.owed.wake()
            return record, False
        log.info(
            "adjustment_requested",
            adjustment=adj_id,
            kind=req.kind,
            amount=str(req.amount),
            client=req.client,
            customer=mask(subject) if req.customer.phone else subject,
        )
        (owed,) = await self.owed.store.owe([self._call(record)], lease_to=self.owed.owner)
        if owed.owner == self.owed.owner:  # leased to us: no sweeper runs it meanwhile
            with deadline_within(self.bonus.settings.timeout_seconds):
                await self.owed.attempt(owed)
        return await self.get(adj_id, None), True

    def _call(self, record: CustomerRecord) -> NewOwedCall:
        kind = str(record.body["kind"])
        return NewOwedCall(
            self.bonus.master, OPERATIONS[kind], f"{record.key}:{kind}", {}, subject=record.key
        )

    async def get(self, adj_id: str, client: str | None) -> CustomerRecord:
        """One adjustment; another client's (``client`` set) is not found, as one that never
        was. ``client`` None: any (``admin``)."""
        record = await self.records.get_record(RecordKind.ADJUSTMENT, adj_id)
        if record is None or (client is not None and record.body.get("client") != client):
            raise ReservationProblem("operation_not_found", f"no operation {adj_id[:40]!r}")
        return record

    async def calls(self, adj_id: str) -> list[OwedCall]:
        """The owed call(s) of an adjustment."""
        return await self.owed.store.owed_for(adj_id)

    # -- the owed call (bridge.owed.handlers.OwedHandler) -----------------------------------

    async def run(self, call: OwedCall) -> str | None:
        """Make the adjustment at the master and record it done."""
        record = await self.records.get_record(RecordKind.ADJUSTMENT, str(call.subject))
        if record is None:
            return "no such adjustment any more"
        if record.status == DONE:
            return "done already"
        body = record.body
        amount = Decimal(str(body["amount"]))
        try:
            customer = await self.bonus.resolve(CustomerRef(**dict(body["customer"])))
            order = await self._order_at_master(record)
            if body["kind"] == "accrue":
                made = await self.bonus.call_master(
                    "accrue",
                    lambda: self.bonus.ledger.accrue(
                        call.operation_id, customer.customer_id, amount, order
                    ),
                )
            else:
                made = await self._write_off(record.key, customer.customer_id, amount, order)
        except MasterUnavailable as exc:
            raise TransientError(str(exc)) from exc
        done = {"customer_id": customer.customer_id, "balance": _text(made.balance)}
        await self._settle(record.key, DONE, done)
        self._count("done")
        log.info("adjustment_done", adjustment=record.key, kind=body["kind"], amount=str(amount))
        return f"{body['kind']} {amount} for customer {customer.customer_id}"

    async def _order_at_master(self, record: CustomerRecord) -> str:
        """The master's order id: the given order (mapped to the master's id when another
        system's and known), else the adjustment's own id. Worked out once and kept with
        the adjustment: a retry after the id map learnt the order must not send the same
        operation id with another order (the master would refuse it as a conflict)."""
        fixed = record.body.get("master_order")
        if fixed:
            return str(fixed)
        order = record.body.get("order")
        found = record.key
        if order:
            system, local = str(order["system"]), str(order["id"])
            mapped = None
            if system != self.bonus.master:
                mapped = await self.store.lookup_id("order", system, local, self.bonus.master)
            found = mapped or local
        try:
            body = dict(record.body) | {"master_order": found}
            await self.records.update_record(record, record.status, body)
        except VersionConflict:  # moved meanwhile: whatever it kept wins
            again = await self.records.get_record(RecordKind.ADJUSTMENT, record.key)
            if again is not None and again.body.get("master_order"):
                return str(again.body["master_order"])
        return found

    async def _write_off(
        self, adj_id: str, customer_id: str, amount: Decimal, order: str
    ) -> LedgerOperation:
        """A hold written off at once, each step under its own derived operation id."""
        ledger = self.bonus.ledger
        reserve_op = f"{adj_id}:reserve"
        held = await self.bonus.call_master(
            "reserve", lambda: ledger.reserve(reserve_op, customer_id, amount, order)
        )
        ref = held.reservation_id or ledger.reservation_ref(reserve_op, order)
        if held.verification_id is not None:
            await self.bonus.call_master(
                "release", lambda: ledger.release(f"{adj_id}:release", ref)
            )
            raise LedgerRefused(
                LedgerErrorCode.NOT_SUPPORTED,
                "the master asks the customer for a code before a write-off;"
                " a manual write-off has none to give",
            )
        return await self.bonus.call_master(
            "commit", lambda: ledger.commit(f"{adj_id}:commit", ref, amount)
        )

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        """A refusal (or a call given up) fails the adjustment with the master's code; a
        retry changes nothing here (the owed call shows its attempts and last error)."""
        if decision.retry:
            return
        code = str(error.code) if isinstance(error, LedgerRefused) else "master_call_dead"
        detail = error.detail if isinstance(error, LedgerRefused) else str(error)
        await self._settle(str(call.subject), FAILED, {"error_code": code, "error": detail})
        self._count(code)
        log.warning("adjustment_failed", adjustment=call.subject, error_code=code)

    async def _settle(self, adj_id: str, status: str, extra: Mapping[str, Any]) -> None:
        """Move the record to ``status`` (compare-and-set, again on a conflict); a done one
        stays done."""
        for _ in range(20):
            record = await self.records.get_record(RecordKind.ADJUSTMENT, adj_id)
            if record is None or record.status == DONE:
                return
            body = {k: v for k, v in record.body.items() if k not in ("error_code", "error")}
            try:
                await self.records.update_record(record, status, body | dict(extra))
            except VersionConflict:
                continue
            return
        raise TransientError(f"adjustment {adj_id} is being changed by others; trying again")

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.count_bonus("adjust", outcome)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
