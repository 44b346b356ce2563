"""The customer directory of one emulated 1C infobase: Партнеры with their phones, loyalty
cards, points and, for customers the bridge saved, its external ids and document.

A customer may hold several cards, each with its own points and status; the main one holds
what the customer-keyed ledger calls act on (CONTRACT.md "Cards, questionnaire,
registration"). A customer entered without a card keeps their points on a card with no
number (1C's partner register), never listed as a card.

Plain state without locking, like orders.py: `OnecLedger` (ledger.py) checks the other
parameters (``free`` checks that a phone and a card are on file for no one else), holds the
lock and makes save_customer idempotent before it calls in here.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from connectors.onec.emulator.checks import check_text, invalid, is_blank
from connectors.onec.emulator.orders import json_values

ZERO = Decimal("0.00")


@dataclass(frozen=True, slots=True)
class Customer:
    """A customer as find_customer returns it; `phone` is the phone on file, E.164."""

    customer_id: str
    phone: str
    card: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class SavedCustomer:
    """The result of save_customer: 1C's id of the customer, and whether it was new."""

    external_id: str
    customer_id: str
    created: bool


@dataclass(frozen=True, slots=True)
class CustomerDocument:
    """The result of get_customer: 1C's fields and the document as JSON text."""

    customer_id: str
    external_id: str | None
    phone: str | None
    card: str | None
    name: str | None
    version: str
    customer: str


@dataclass(slots=True, eq=False)
class Card:
    """A loyalty card: its points, its status and its owner (a customer id, or None)."""

    number: str | None  # None: the points of a customer who has no card
    balance: Decimal
    reserved: Decimal = ZERO
    status: str = "active"
    owner: str | None = None

    @property
    def available(self) -> Decimal:
        """Points that may be reserved or moved: balance - reserved."""
        return self.balance - self.reserved


@dataclass(slots=True)
class BonusAccount:
    """One customer and their points (those of their main card)."""

    customer: Customer
    main: Card
    level: str | None
    seq: int  # its place in creation order: ListCustomers pages by it
    created: datetime  # when it was entered, by the infobase's clock
    version: int = 1
    external_id: str | None = None  # the first external id the bridge saved it under
    document: dict[str, object] | None = None  # as save_customer last stored it
    profile: dict[str, str | None] | None = None  # the questionnaire (profiles.py)

    @property
    def balance(self) -> Decimal:
        """The main card's points."""
        return self.main.balance

    @balance.setter
    def balance(self, value: Decimal) -> None:
        self.main.balance = value

    @property
    def reserved(self) -> Decimal:
        """Held on the main card by open reservations."""
        return self.main.reserved

    @reserved.setter
    def reserved(self, value: Decimal) -> None:
        self.main.reserved = value

    @property
    def available(self) -> Decimal:
        """Points that may be reserved: balance - reserved."""
        return self.main.available


def normalize_phone(raw: str) -> str | None:
    """Return `raw` in E.164 (8XXXXXXXXXX, 7XXXXXXXXXX and 9XXXXXXXXX read as +7), else None."""
    text = raw.strip()
    if not text or set(text) - set("0123456789+-() ") or "+" in text[1:]:
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if text.startswith("+"):  # an explicit country code is trusted: +81… is Japan, not 8…
        return "+" + digits if 8 <= len(digits) <= 15 else None
    if len(digits) == 11 and digits[0] in "78":  # Russian trunk prefix 8 or country code 7
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":  # a mobile number typed without any prefix
        return "+7" + digits
    return None


def check_phone(raw: object, field: str = "phone") -> str:
    """``raw`` in E.164, or ``invalid_request`` naming ``field``."""
    e164 = normalize_phone(raw) if isinstance(raw, str) else None
    if e164 is None:
        raise invalid(field, f"{raw!r} is not a phone number")
    return e164


class CustomerDirectory:
    """Accounts by 1C's customer id, found also by phone, card and the bridge's external ids."""

    def __init__(self) -> None:
        self.accounts: dict[str, BonusAccount] = {}
        self.cards: dict[str, Card] = {}  # every numbered card, owned or not, by number
        self._by_phone: dict[str, str] = {}
        self._by_external: dict[str, str] = {}

    def by_phone(self, e164: str) -> BonusAccount | None:
        """The account with this phone on file."""
        return self.accounts.get(self._by_phone.get(e164, ""))

    def by_card(self, card: str) -> BonusAccount | None:
        """The account holding this card."""
        held = self.cards.get(card)
        return None if held is None or held.owner is None else self.accounts.get(held.owner)

    def cards_of(self, account: BonusAccount) -> list[Card]:
        """The customer's numbered cards, the main one first, the others as issued."""
        cid = account.customer.customer_id
        others = [c for c in self.cards.values() if c.owner == cid and c is not account.main]
        return ([account.main] if account.main.number is not None else []) + others

    def issue(self, number: str, points: Decimal, owner: BonusAccount | None) -> Card:
        """A new card (its number free: the caller checked), for ``owner`` or no one."""
        card = Card(number, points, owner=None if owner is None else owner.customer.customer_id)
        self.cards[number] = card
        return card

    def make_main(self, account: BonusAccount, card: Card) -> None:
        """``card`` (the account's) becomes its main card; points held without a card move
        onto it (a card-less customer's first card)."""
        old = account.main
        if old.number is None:
            card.balance += old.balance
            card.reserved += old.reserved
            old.balance = old.reserved = ZERO
        account.main = card
        account.customer = replace(account.customer, card=card.number)

    def find(self, key: str) -> BonusAccount | None:
        """The account saved under this external id, else with this 1C id."""
        return self.accounts.get(self._by_external.get(key, key))

    def add(
        self,
        e164: str,
        card: str | None,
        name: str | None,
        points: Decimal,
        level: str | None,
        now: datetime,
    ) -> BonusAccount:
        """A new customer, entered ``now``; the phone and card must be free (the caller
        checked)."""
        # 1C identifies catalog items by a GUID (Ref_Key); a counter keeps them deterministic.
        # Customers are never deleted here, so the counter is also their creation order.
        seq = len(self.accounts) + 1
        customer = Customer(str(uuid.UUID(int=seq)), e164, card, name)
        main = Card(card, points, owner=customer.customer_id)
        account = BonusAccount(customer, main, level, seq, now)
        self.accounts[customer.customer_id] = account
        if card is not None:
            self.cards[card] = main
        self._by_phone[e164] = customer.customer_id
        return account

    def update(self, account: BonusAccount, phone: str, card: str | None, name: str | None) -> None:
        """New phone, card (the main card's number) or name for an account; the phone and
        card must be free. A number of another of its cards makes that one main; a new
        number renumbers the main card (its points stay)."""
        old = account.customer
        self._by_phone.pop(old.phone, None)
        self._by_phone[phone] = old.customer_id
        main = account.main
        if card != main.number:
            held = None if card is None else self.cards.get(card)
            if held is not None:  # one of its own cards (free() let no other through)
                self.make_main(account, held)
            else:
                if main.number is not None:
                    self.cards.pop(main.number, None)
                main.number = card
                if card is not None:
                    self.cards[card] = main
        account.customer = replace(old, phone=phone, card=card, name=name)

    def link(self, account: BonusAccount, external_id: str) -> None:
        """Remember that the bridge saved this customer under ``external_id``."""
        self._by_external[external_id] = account.customer.customer_id
        account.external_id = account.external_id or external_id

    def free(
        self, phone: object, card: object, owner: BonusAccount | None = None, prefix: str = ""
    ) -> tuple[str, str | None]:
        """The phone in E.164 and the card, checked to be on file for no one but ``owner``;
        ``prefix`` places the fields in error messages (``customer.`` inside a document)."""
        e164 = check_phone(phone, f"{prefix}phone")
        card_no = None if is_blank(card) else check_text(card, f"{prefix}card").strip()
        holder = self.by_phone(e164)
        if holder is not None and holder is not owner:
            raise invalid(f"{prefix}phone", "already on file for another customer")
        held = None if card_no is None else self.cards.get(card_no)
        mine = None if owner is None else owner.customer.customer_id
        if held is not None and (held.owner is None or held.owner != mine):
            # An ownerless card is given to someone by AttachCard, never by a customer's edit.
            raise invalid(f"{prefix}card", "already on file for another customer")
        return e164, card_no

    def in_creation_order(self) -> list[BonusAccount]:
        """Every customer, the oldest first (ListCustomers)."""
        return list(self.accounts.values())  # a dict keeps insertion order

    def read(self, account: BonusAccount) -> CustomerDocument:
        """The customer as get_customer answers it."""
        c = account.customer
        # What the bridge stored, with the fields 1C keeps in the catalog as 1C holds them now
        # (its handler writes them from Партнеры, normalised: the phone in E.164).
        document: dict[str, object] = dict(account.document or {})
        for key, value in (("phone", c.phone), ("name", c.name), ("card", c.card)):
            if value is None:
                document.pop(key, None)
            else:
                document[key] = value
        text = json.dumps(json_values(document), ensure_ascii=False)
        return CustomerDocument(
            c.customer_id, account.external_id, c.phone, c.card, c.name, str(account.version), text
        )
