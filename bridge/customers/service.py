"""The customer side put together for a running bridge: proofs and codes (keys from the
settings or the store), the master's cards, merges and questionnaires."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bridge.bonus.balance import BonusService
from bridge.bonus.codes import CodeBook
from bridge.bonus.master_calls import retry_policy
from bridge.bonus.reservation_rules import ReservationProblem
from bridge.customers.merges import OPEN_RESERVATIONS, Merges, cards_of
from bridge.customers.profiles import Profiles
from bridge.customers.proofs import ProofBook
from bridge.customers.verification import Verifications
from bridge.ledger import CardStatus, LedgerCard
from bridge.owed.sweeper import OwedSweeper
from bridge.settings import Settings
from bridge.sms.gateway import SmsGateway
from bridge.store.customer_records import customer_records_of
from bridge.store.protocol import Store
from bridge.store.records import InboundEvent

CUSTOMER = "customer"


@dataclass
class CustomerService:
    """Everything ``/api/v1/customers`` and the customer CLI verbs use."""

    bonus: BonusService
    verifications: Verifications | None  # None: no SMS gateway to send codes through
    merges: Merges
    profiles: Profiles
    proofs: ProofBook

    async def cards(self, phone: str) -> list[LedgerCard]:
        """The phone's cards, main first."""
        ledger = cards_of(self.bonus)
        return list(await self.bonus.call_master("cards", lambda: ledger.cards(phone)))

    async def attach(self, phone: str, number: str) -> LedgerCard:
        """An ownerless card given to the phone; ``card_taken`` if another phone holds it."""
        ledger = cards_of(self.bonus)
        card = await self.bonus.call_master("card", lambda: ledger.card(number))
        if card.phone == phone:
            return card  # its own already: as it is
        if card.phone is not None or card.customer_id is not None:
            raise ReservationProblem("card_taken", f"card {number} belongs to another customer")
        operation = f"attach:{number}:{uuid.uuid5(uuid.NAMESPACE_URL, phone).hex[:12]}"
        return await self.bonus.call_master(
            "attach_card", lambda: ledger.attach_card(operation, number, phone)
        )

    async def card_view(self, card: LedgerCard, spend_blocked: list[str]) -> dict[str, Any]:
        """A card as ``GET /api/v1/customers/cards`` shows it."""
        status = card.status
        if status is CardStatus.ACTIVE and spend_blocked:
            status = CardStatus.ACCUMULATE_ONLY  # accrues; spends once the profile is complete
        return {
            "card": card.number,
            "status": str(status),
            "balance": str(card.balance),
            "main": card.main,
        }


async def build_customers(
    settings: Settings,
    bonus: BonusService,
    store: Store,
    owed: OwedSweeper,
    sms: tuple[SmsGateway | None, CodeBook],
    mirror: Callable[[InboundEvent], Any],
    clock: Callable[[], float] = time.time,
) -> CustomerService:
    """The service, merge steps registered. ``sms``: the reservations' gateway (None: no
    codes are sent by the bridge) and code book, which codes that prove a phone share."""
    records = customer_records_of(store)
    rules = settings.bonus.reservations
    proof_key = settings.customers.proof_key
    key = (
        proof_key.get_secret_value()
        if proof_key is not None
        else await store.secret("proof_hmac_key", lambda: secrets.token_hex(32))
    )
    proofs = ProofBook(key.encode(), settings.customers.proof_ttl_seconds, clock)
    gateway, codes = sms
    verifications = None
    if gateway is not None:
        verifications = Verifications(
            store, records, rules, settings.customers, gateway, codes, proofs, clock,
            settings.bonus.sms.timeout_seconds,
        )  # fmt: skip

    async def open_reservations(phone: str) -> list[str]:
        found = []
        for status in sorted(OPEN_RESERVATIONS):
            rows = await store.list_reservations(status=str(status), limit=1000)
            found += [r.id for r in rows if r.phone == phone]
        return found

    async def mirror_customer(customer_id: str) -> None:
        await mirror(
            InboundEvent(
                source_key=f"profile:{customer_id}:{uuid.uuid4().hex[:8]}",
                entity=CUSTOMER,
                entity_id=customer_id,
                action="changed",
                payload={"customer_id": customer_id},
            )
        )

    merges = Merges(bonus, records, owed, retry_policy(rules.retry_max_seconds), open_reservations)
    merges.register(owed.handlers)
    await merges.recover()  # before the sweeper starts: a merge cut short is owed again
    profiles = Profiles(bonus, settings.customers, mirror_customer)
    return CustomerService(bonus, verifications, merges, profiles, proofs)
