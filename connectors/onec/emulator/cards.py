"""Several loyalty cards per customer in the emulated infobase: cards by phone, one card,
attaching an ownerless card, a card's status, the main card, points moved between cards,
the questionnaire and registration by phone (CONTRACT.md "Cards, questionnaire,
registration"). Choices the contract leaves open are marked "Decision:".
"""

from __future__ import annotations

from decimal import Decimal

from connectors.onec.contract import CARD_STATUSES, ORIGIN_BRIDGE
from connectors.onec.emulator.checks import (
    LedgerError,
    check_amount,
    check_operation_id,
    check_text,
    invalid,
    is_blank,
    parse_document,
)
from connectors.onec.emulator.customers import ZERO, BonusAccount, Card, Customer, check_phone
from connectors.onec.emulator.documents import InfobaseDocuments, known
from connectors.onec.emulator.operations import (
    CardList,
    CardRecord,
    InfobaseOperation,
    ProfileRecord,
)
from connectors.onec.emulator.profiles import profile_changes, profile_of, profile_record

_NEW_CARDS = "29"  # Decision: cards 1C issues at a registration: 13 digits starting 29


class InfobaseCards(InfobaseDocuments):
    """The cards, questionnaires and registrations of one infobase."""

    def find_cards(self, phone: str) -> CardList:
        """Every card of the customer with this phone, the main one first; none if no one."""
        e164 = check_phone(phone)
        with self._lock:
            acc = self._customers.by_phone(e164)
            cards = [] if acc is None else self._customers.cards_of(acc)
            return CardList(tuple(self._record(card) for card in cards))

    def get_card(self, card: str) -> CardRecord:
        """One card, owned or not."""
        number = _number(card)
        with self._lock:
            return self._record(self._card(number))

    def attach_card(self, operation_id: str, card: str, phone: str) -> CardRecord:
        """Give an ownerless card to the customer with ``phone`` (registered if new)."""
        op, number, e164 = check_operation_id(operation_id), _number(card), check_phone(phone)
        params = ("attach_card", number, e164)
        now = self._now()
        with self._lock:
            if (done := self._recall(op, params, CardRecord)) is not None:
                return done
            held = self._card(number)
            acc = self._customers.by_phone(e164)
            if held.owner is not None:
                if acc is None or held.owner != acc.customer.customer_id:
                    raise LedgerError("card_taken", f"card {number} belongs to another phone")
                return self._remember(op, params, self._record(held))  # its own: as it is
            if acc is None:
                acc = self._customers.add(e164, None, None, ZERO, None, now)
                cid = acc.customer.customer_id
                self._feed.record("customer", cid, "created", "1", ORIGIN_BRIDGE)
            held.owner = acc.customer.customer_id
            if acc.main.number is None:  # its first card: main, with what it held card-less
                self._customers.make_main(acc, held)
            self._touch(acc, ORIGIN_BRIDGE)
            return self._remember(op, params, self._record(held))

    def set_card_status(self, operation_id: str, card: str, status: str) -> CardRecord:
        """Block a card, make it accumulate-only, or active again."""
        op, number = check_operation_id(operation_id), _number(card)
        if status not in CARD_STATUSES:
            raise invalid("status", f"{status!r} is not one of {', '.join(sorted(CARD_STATUSES))}")
        params = ("set_card_status", number, status)
        with self._lock:
            if (done := self._recall(op, params, CardRecord)) is not None:
                return done
            held = self._card(number)
            held.status = status
            if held.owner is not None:
                self._touch(self._customers.accounts[held.owner], ORIGIN_BRIDGE)
            return self._remember(op, params, self._record(held))

    def set_main_card(self, operation_id: str, card: str) -> CardRecord:
        """Make the card its owner's main card; the others stay as they are."""
        op, number = check_operation_id(operation_id), _number(card)
        params = ("set_main_card", number)
        with self._lock:
            if (done := self._recall(op, params, CardRecord)) is not None:
                return done
            held = self._card(number)
            if held.owner is None:
                raise LedgerError("unknown_customer", f"card {number} has no owner")
            if held.status == "blocked":
                raise LedgerError("card_blocked", f"card {number} is blocked")
            acc = self._customers.accounts[held.owner]
            if acc.main is not held:
                # Decision: a hold stays on the card it was made on; a new main card under an
                # open hold would settle it elsewhere than the customer's balance says.
                if acc.main.reserved != ZERO:
                    raise invalid("card", "the main card has an open reservation: settle it")
                self._customers.make_main(acc, held)
                self._touch(acc, ORIGIN_BRIDGE)
            return self._remember(op, params, self._record(held))

    def move_points(
        self, operation_id: str, from_card: str, to_card: str, amount: Decimal | str
    ) -> InfobaseOperation:
        """Move exactly ``amount`` of the source's free points onto another card."""
        op, source, target = (
            check_operation_id(operation_id),
            _number(from_card, "from_card"),
            _number(to_card, "to_card"),
        )
        points = check_amount(amount)
        if source == target:
            raise invalid("to_card", "the same card as from_card")
        params = ("move", source, target, points)
        with self._lock:
            if (done := self._recall(op, params, InfobaseOperation)) is not None:
                return done
            giver, taker = self._card(source, "from_card"), self._card(target, "to_card")
            # Decision: a blocked card still gives its points away (a merge blocks the card
            # first, so nothing is spent meanwhile, then empties it); it takes none.
            if taker.status == "blocked":
                raise LedgerError("card_blocked", f"card {target} is blocked")
            if points > giver.available:
                raise LedgerError("insufficient_balance", f"{points} > free {giver.available}")
            giver.balance -= points
            taker.balance += points
            for owner in {giver.owner, taker.owner} - {None}:
                self._touch(self._customers.accounts[str(owner)])  # points moved: no origin
            result = InfobaseOperation(
                op, "move", "moved", None, points, taker.balance, taker.available
            )
            return self._remember(op, params, result)

    def get_profile(self, customer_id: str) -> ProfileRecord:
        """The customer's questionnaire."""
        cid = check_text(customer_id, "customer_id")
        with self._lock:
            return profile_record(self._owner(cid))

    def save_profile(self, operation_id: str, customer_id: str, profile: str) -> ProfileRecord:
        """Save the questionnaire's given fields (null or empty clears one)."""
        op, cid = check_operation_id(operation_id), check_text(customer_id, "customer_id")
        document = parse_document(profile, "profile")
        changes = profile_changes(document)
        params = ("save_profile", cid, document)  # parsed: spacing and key order do not count
        with self._lock:
            if (done := self._recall(op, params, ProfileRecord)) is not None:
                return done
            acc = self._owner(cid)
            acc.profile = profile_of(acc) | changes
            self._touch(acc, ORIGIN_BRIDGE)
            return self._remember(op, params, profile_record(acc))

    def register_customer(self, operation_id: str, phone: str, name: str | None = None) -> Customer:
        """The customer with this phone, created with a new main card if there is none."""
        op, e164 = check_operation_id(operation_id), check_phone(phone)
        given = None if is_blank(name) else check_text(name, "name").strip()
        params = ("register_customer", e164, given)
        now = self._now()
        with self._lock:
            if (done := self._recall(op, params, Customer)) is not None:
                return done
            acc = self._customers.by_phone(e164)
            if acc is None:  # one person, one bonus account: a phone on file is that one
                acc = self._customers.add(e164, self._new_number(), given, ZERO, None, now)
                cid = acc.customer.customer_id
                self._feed.record("customer", cid, "created", "1", ORIGIN_BRIDGE)
            return self._remember(op, params, acc.customer)

    def issue_card(
        self, number: str, points: Decimal | str = "0.00", phone: str | None = None
    ) -> CardRecord:
        """A card entered in 1C (the sandbox's seed, tests, ``POST /__emulator__/cards``):
        ownerless without ``phone``; a new customer's first, main card; else one more."""
        card, value = _number(number, "number"), check_amount(points, "points", allow_zero=True)
        e164 = None if phone is None else check_phone(phone)
        now = self._now()
        with self._lock:
            if card in self._customers.cards:
                raise invalid("number", "already on file")
            acc = None if e164 is None else self._customers.by_phone(e164)
            if e164 is not None and acc is None:
                acc = self._customers.add(e164, card, None, value, None, now)
                return self._record(acc.main)
            held = self._customers.issue(card, value, acc)
            if acc is not None and acc.main.number is None:
                self._customers.make_main(acc, held)
            return self._record(held)

    # Internals below run under self._lock.

    def _card(self, number: str, field: str = "card") -> Card:
        held = self._customers.cards.get(number)
        if held is None:
            raise LedgerError("unknown_card", f"Карта не найдена ({field} {number})")
        return held

    def _owner(self, customer_id: str) -> BonusAccount:
        return known(self._customers.accounts.get(customer_id), "customer_id")

    def _record(self, card: Card) -> CardRecord:
        acc = None if card.owner is None else self._customers.accounts[card.owner]
        assert card.number is not None  # only numbered cards are listed
        return CardRecord(
            card.number,
            card.status,
            card.balance,
            card.reserved,
            acc is not None and acc.main is card,
            None if acc is None else acc.customer.customer_id,
            None if acc is None else acc.customer.phone,
        )

    def _new_number(self) -> str:
        seq = len(self._customers.cards) + 1
        while (number := f"{_NEW_CARDS}{seq:011d}") in self._customers.cards:
            seq += 1
        return number


def _number(value: object, field: str = "card") -> str:
    return check_text(value, field, 64).strip()
