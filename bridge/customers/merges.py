"""Merging a phone's cards into one: every other card blocked at the master and its
points moved to the main card, each step an owed call (``bridge.owed``) with its own
operation id, so a step is made once however often it is retried, and a merge cut short
by ``kill -9`` goes on where it stopped when the bridge starts again.

The steps of merge ``mrg_…`` into card M::

    card_main   (mrg_…:main)      M made the owner's main card
    card_block  (mrg_…:block:C)   C blocked; its points, frozen now, read; then owed:
    card_move   (mrg_…:move:C)    exactly those points moved C → M (none owed for 0.00)

Blocking first freezes the card (nothing accrues on or is spent from a blocked card), so
the amount moved is the card's whole balance to the kopeck. The merge record keeps each
card's state (``customer_records``, compare-and-set); it is ``done`` when M is main and
every card is moved or was empty, ``failed`` (with the reason) when a step is given up.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from bridge.bonus.balance import BonusService, MasterUnavailable
from bridge.bonus.reservation_rules import ReservationProblem
from bridge.errors import DeliveryError, TransientError
from bridge.ledger import CardsAtMaster, CardStatus, LedgerCard, not_supported
from bridge.logs import get_logger
from bridge.owed.calls import NewOwedCall, OwedCall
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.retry import RetryDecision
from bridge.settings import RetrySettings
from bridge.store.customer_records import CustomerRecord, CustomerRecords, RecordKind
from bridge.store.reservations import RsvStatus, VersionConflict

log = get_logger("bridge.customers")

BLOCK, MOVE, MAIN = "card_block", "card_move", "card_main"
RUNNING, DONE, FAILED = "running", "done", "failed"
STARTING_SECONDS = 60.0  # a lock naming a merge not yet stored: another start under way
OPEN_RESERVATIONS = frozenset(
    {RsvStatus.CREATING, RsvStatus.AWAITING_CODE, RsvStatus.HELD}
    | {RsvStatus.COMMIT_PENDING, RsvStatus.RELEASE_PENDING}
)


def cards_of(bonus: BonusService) -> CardsAtMaster:
    """The master's cards, or ``not_supported`` when the master keeps one card per customer."""
    ledger = bonus.ledger
    if not isinstance(ledger, CardsAtMaster):
        raise ReservationProblem(
            "not_supported", f"the bonus master {bonus.master!r} keeps no cards per phone"
        )
    return ledger


class Merges:
    """Starts merges, runs their steps (the owed-call handler of the three kinds), and says
    where each one is."""

    def __init__(
        self,
        bonus: BonusService,
        records: CustomerRecords,
        owed: OwedSweeper,
        policy: RetrySettings,
        open_reservations: Callable[[str], Any],
    ) -> None:
        self.bonus, self.records, self.owed, self.policy = bonus, records, owed, policy
        self._open_reservations = open_reservations  # phone → awaitable list of rsv ids

    def register(self, handlers: Handlers) -> None:
        """Run the merge steps with this object."""
        for operation in (BLOCK, MOVE, MAIN):
            handlers.register(operation, self, self.policy)

    async def start(self, phone: str, main_card: str) -> CustomerRecord:
        """A merge of ``phone``'s other cards into ``main_card``, its steps owed."""
        ledger = cards_of(self.bonus)
        for capability in ("set_card_status", "move_points", "set_main_card"):
            refused = not_supported(ledger, capability)
            if refused is not None:  # refused now, rather than failed at its first step
                raise refused
        cards = await self.bonus.call_master("cards", lambda: ledger.cards(phone))
        main = next((c for c in cards if c.number == main_card), None)
        if main is None:  # not this phone's (another's, or none): never said which
            raise ReservationProblem("unknown_card", f"no card {main_card!r} of this phone")
        if main.status is CardStatus.BLOCKED:
            raise ReservationProblem("card_blocked", f"card {main_card} is blocked")
        held = await self._open_reservations(phone)
        if held:
            raise ReservationProblem(
                "open_reservation",
                f"reservation {held[0]} of this phone is still open: confirm, commit or"
                " cancel it before the cards are merged",
                reservations=list(held),
            )
        merge_id = f"mrg_{secrets.token_hex(10)}"
        others = [c for c in cards if c.number != main_card and c.status is not CardStatus.BLOCKED]
        holding = [c.number for c in others if c.reserved > 0]
        if holding:  # points held at the master (a till's hold the bridge did not make)
            raise ReservationProblem(
                "open_reservation",
                f"card {holding[0]} has points held for a write-off: settle it before the"
                " cards are merged",
                cards=holding,
            )
        await self._take_phone(phone, merge_id)  # last: a refusal above leaves no lock
        body = {"main": main_card, "main_set": False, "cards": {c.number: {"state": "owed"}
                for c in others}}  # fmt: skip
        record, _ = await self.records.add_record(RecordKind.MERGE, merge_id, phone, RUNNING, body)
        await self.owed.store.owe(self._first_steps(record))
        self.owed.wake()
        log.info("merge_started", merge=merge_id, cards=len(others))
        return record

    def _first_steps(self, record: CustomerRecord) -> list[NewOwedCall]:
        """The calls a merge starts with: its main card, and a block of each card still
        owed one (operation ids from the merge: owing them again is owing the same)."""
        merge_id, system = record.key, self.bonus.master
        calls = [NewOwedCall(system, MAIN, f"{merge_id}:main", {"merge": merge_id}, merge_id)]
        cards = dict(record.body.get("cards", {}))
        calls += [
            NewOwedCall(system, BLOCK, f"{merge_id}:block:{number}",
                        {"merge": merge_id, "card": number}, merge_id)
            for number, entry in sorted(cards.items())
            if dict(entry).get("state") == "owed"
        ]  # fmt: skip
        return calls

    async def recover(self) -> int:
        """At start: a running merge whose steps were never owed (the process died between
        storing the merge and owing its calls) has them owed now; the number recovered."""
        recovered = 0
        for record in await self.records.list_records(
            RecordKind.MERGE, status=RUNNING, limit=10_000
        ):
            if not await self.owed.store.owed_for(record.key):
                await self.owed.store.owe(self._first_steps(record))
                recovered += 1
                log.warning("merge_recovered", merge=record.key)
        return recovered

    async def _take_phone(self, phone: str, merge_id: str) -> None:
        """One running merge per phone (two at once would each block the other's main
        card): the phone's lock record names its merge and is taken by compare-and-set, so
        a double click or two instances cannot both start one."""
        lock, added = await self.records.add_record(
            RecordKind.MERGE_LOCK, phone, phone, "held", {"merge": merge_id}
        )
        if added:
            return
        current = str(lock.body.get("merge") or "")
        other = await self.records.get_record(RecordKind.MERGE, current) if current else None
        starting = other is None and time.time() - lock.updated_at < STARTING_SECONDS
        if (other is not None and other.status == RUNNING) or starting:
            raise ReservationProblem(
                "merge_running", f"merge {current} of this phone is still running",
                merge_id=current,
            )  # fmt: skip
        try:
            await self.records.update_record(lock, "held", {"merge": merge_id})
        except VersionConflict:
            raise ReservationProblem(
                "merge_running", "another merge of this phone is starting"
            ) from None

    async def get(self, merge_id: str, phone: str) -> CustomerRecord:
        """One merge of ``phone``; another phone's is not found, as one that never was."""
        record = await self.records.get_record(RecordKind.MERGE, merge_id)
        if record is None or record.subject != phone:
            raise ReservationProblem("merge_not_found", f"no merge {merge_id[:40]!r}")
        return record

    # -- the owed steps -------------------------------------------------------------------

    async def run(self, call: OwedCall) -> str | None:
        """Make one step at the master, then note it on the merge."""
        ledger = cards_of(self.bonus)
        args = call.arguments
        merge = await self.records.get_record(RecordKind.MERGE, str(args["merge"]))
        if merge is None:
            return "no such merge any more"
        main = str(merge.body["main"])
        try:
            if call.operation == MAIN:
                await self.bonus.call_master(
                    "set_main_card", lambda: ledger.set_main_card(call.operation_id, main)
                )
                await self._note(merge.key, _main_set)
                return f"{main} is the main card"
            card = str(args["card"])
            if call.operation == BLOCK:
                return await self._block(ledger, call, merge.key, card, main)
            amount = Decimal(str(args["amount"]))
            await self.bonus.call_master(
                "move_points",
                lambda: ledger.move_points(call.operation_id, card, main, amount),
            )
            await self._note(merge.key, lambda b: _card(b, card, "moved", str(amount)))
            return f"{amount} moved {card} → {main}"
        except MasterUnavailable as exc:
            raise TransientError(str(exc)) from exc

    async def _block(
        self, ledger: CardsAtMaster, call: OwedCall, merge_id: str, card: str, main: str
    ) -> str:
        blocked: LedgerCard = await self.bonus.call_master(
            "set_card_status",
            lambda: ledger.set_card_status(call.operation_id, card, CardStatus.BLOCKED),
        )
        # Frozen now: what it holds is what moves (read again: a retried block answers
        # the card as it was when first blocked, possibly before a last accrual landed).
        frozen = await self.bonus.call_master("card", lambda: ledger.card(card))
        amount = frozen.balance if frozen.balance > 0 else blocked.balance
        if amount <= 0:
            await self._note(merge_id, lambda b: _card(b, card, "empty", "0.00"))
            return f"{card} blocked, nothing to move"
        await self.owed.store.owe([
            NewOwedCall(call.system, MOVE, f"{merge_id}:move:{card}",
                        {"merge": merge_id, "card": card, "amount": str(amount)}, merge_id)
        ])  # fmt: skip
        self.owed.wake()
        await self._note(merge_id, lambda b: _card(b, card, "blocked", str(amount)))
        return f"{card} blocked, {amount} to move to {main}"

    async def failed(self, call: OwedCall, error: DeliveryError, decision: RetryDecision) -> None:
        """A step given up: the merge is failed with the reason (support replays the call
        after the fix, and the merge goes on)."""
        if decision.retry:
            return
        merge_id = str(call.arguments.get("merge"))
        step = str(call.arguments.get("card") or "main")
        reason = f"{call.operation} {call.arguments.get('card', '')}: {error}".strip()
        await self._note(merge_id, lambda b: _failed(b, step, reason))
        log.warning("merge_failed", merge=merge_id, error=reason)

    async def _note(
        self,
        merge_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any]],
        status: str | None = None,
    ) -> None:
        """Apply ``change`` to the merge's body (compare-and-set, again on a conflict) and
        settle its status."""
        for _ in range(20):
            record = await self.records.get_record(RecordKind.MERGE, merge_id)
            if record is None:
                return
            body = change(_copy(record.body))
            if status is not None:
                new_status = status
            elif body.get("errors"):
                new_status = FAILED  # until each failed step went through (a replay)
            else:
                new_status = DONE if _finished(body) else RUNNING
            try:
                await self.records.update_record(record, new_status, body)
            except VersionConflict:
                continue
            if new_status == DONE and record.status != DONE:
                log.info("merge_done", merge=merge_id)
            return
        raise TransientError(f"merge {merge_id} is being changed by others; trying again")


def _main_set(body: dict[str, Any]) -> dict[str, Any]:
    body["main_set"] = True
    body.get("errors", {}).pop("main", None)
    return body


def _copy(body: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(body)
    out["cards"] = {k: dict(v) for k, v in dict(body.get("cards", {})).items()}
    out["errors"] = dict(body.get("errors", {}))
    return out


def _card(body: dict[str, Any], card: str, state: str, amount: str) -> dict[str, Any]:
    """The body with ``card`` in ``state`` (a move noted once stays moved: a late block
    note of a retried call does not undo it)."""
    entry = body["cards"].setdefault(card, {})
    if entry.get("state") == "moved" and state != "moved":
        return body
    body["cards"][card] = entry | {"state": state, "amount": amount}
    body.get("errors", {}).pop(card, None)  # this card's step went through (a replay)
    return body


def _failed(body: dict[str, Any], step: str, reason: str) -> dict[str, Any]:
    """The body with ``step`` (a card, or ``main``) given up for ``reason``: a step of
    another card going through later does not hide it."""
    body["errors"] = dict(body.get("errors", {})) | {step: reason}
    return body


def _finished(body: Mapping[str, Any]) -> bool:
    cards = dict(body.get("cards", {}))
    return bool(body.get("main_set")) and all(
        entry.get("state") in ("moved", "empty") for entry in cards.values()
    )


def merge_view(record: CustomerRecord) -> dict[str, Any]:
    """``GET /api/v1/customers/merges/{id}``."""
    body = record.body
    out: dict[str, Any] = {
        "merge_id": record.key,
        "status": record.status,
        "main_card": body.get("main"),
        "cards": [
            {"card": number, "state": entry.get("state"), "amount": entry.get("amount")}
            for number, entry in sorted(dict(body.get("cards", {})).items())
        ],
    }
    errors = dict(body.get("errors", {}))
    if errors:
        out["error"] = next(iter(errors.values()))
        out["errors"] = errors
    return out
