"""1C as a master of several cards per customer: ``CardsAtMaster`` over the declared
service's card, questionnaire and registration capabilities (CONTRACT.md "Cards,
questionnaire, registration").

Each call is one capability; a service that does not declare it is refused with
``not_supported`` naming it, before any call (``OnecMaster.missing``), and so is one that
declares it but does not publish it (an older service under the reference contract).
1C's refusals arrive as ``LedgerRefused`` with the contract's code (``errors.py``), its
answers are read by ``card_answers.py``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from bridge.errors import ConfigError
from bridge.ledger import (
    CardStatus,
    LedgerCard,
    LedgerCustomer,
    LedgerErrorCode,
    LedgerOperation,
    LedgerRefused,
)
from connectors.onec import answers, card_answers
from connectors.onec.answers import read_answer
from connectors.onec.client import OnecContractMismatch
from connectors.onec.contract import PROFILE_FIELDS
from connectors.onec.errors import is_unpublished

if TYPE_CHECKING:
    from connectors.onec.master import LedgerCall


class OnecCards:
    """The cards, questionnaires and registrations of one 1C infobase, as declared."""

    def __init__(self, call: LedgerCall, missing: Callable[[str], str | None]) -> None:
        self._call = call
        self._missing = missing

    async def cards(self, phone: str) -> list[LedgerCard]:
        """FindCards: every card of the phone's owner, the main one first."""
        r = await self._called("find_cards", phone=phone)
        return read_answer("find_cards", card_answers.card_list, r)

    async def card(self, number: str) -> LedgerCard:
        """GetCard: one card, owned or not."""
        r = await self._called("get_card", card=number)
        return read_answer("get_card", card_answers.card, r)

    async def attach_card(self, operation_id: str, number: str, phone: str) -> LedgerCard:
        """AttachCard: an ownerless card to the phone's customer (registered if new)."""
        r = await self._called("attach_card", operation_id=operation_id, card=number, phone=phone)
        return read_answer("attach_card", card_answers.card, r)

    async def set_card_status(
        self, operation_id: str, number: str, status: CardStatus
    ) -> LedgerCard:
        """SetCardStatus: block a card, make it accumulate-only or active again."""
        r = await self._called(
            "set_card_status", operation_id=operation_id, card=number, status=str(status)
        )
        return read_answer("set_card_status", card_answers.card, r)

    async def set_main_card(self, operation_id: str, number: str) -> LedgerCard:
        """SetMainCard: the card its owner's points are kept on from now."""
        r = await self._called("set_main_card", operation_id=operation_id, card=number)
        return read_answer("set_main_card", card_answers.card, r)

    async def move_points(
        self, operation_id: str, from_card: str, to_card: str, amount: Decimal
    ) -> LedgerOperation:
        """MovePoints: exactly ``amount`` of the source's free points onto another card."""
        r = await self._called(
            "move_points",
            operation_id=operation_id,
            from_card=from_card,
            to_card=to_card,
            amount=amount,
        )
        return answers.filled_operation("move", r, operation_id, amount, "move_points")

    async def profile(self, customer_id: str) -> dict[str, str | None]:
        """GetProfile: the questionnaire by the bridge's field names."""
        r = await self._called("get_profile", customer_id=customer_id)
        return read_answer("get_profile", card_answers.profile, r)

    async def save_profile(
        self, operation_id: str, customer_id: str, profile: dict[str, str | None]
    ) -> dict[str, str | None]:
        """SaveProfile: the given fields (None clears one); the questionnaire as saved."""
        if unknown := sorted(set(profile) - set(PROFILE_FIELDS)):
            raise LedgerRefused(
                LedgerErrorCode.INVALID_REQUEST,
                f"profile.{unknown[0]}: not a questionnaire field ({', '.join(PROFILE_FIELDS)})",
            )
        for key, value in profile.items():
            if value is not None and not isinstance(value, str):
                raise LedgerRefused(LedgerErrorCode.INVALID_REQUEST, f"profile.{key}: not text")
        # A JSON document, as SaveCustomer's: a key left out keeps 1C's value, null clears it.
        document = json.dumps(profile, ensure_ascii=False, sort_keys=True)
        r = await self._called(
            "save_profile", operation_id=operation_id, customer_id=customer_id, profile=document
        )
        return read_answer("save_profile", card_answers.profile, r)

    async def register_customer(
        self, operation_id: str, phone: str, name: str | None = None
    ) -> LedgerCustomer:
        """RegisterCustomer: the phone's customer, created with a card if 1C has none."""
        r = await self._called(
            "register_customer", operation_id=operation_id, phone=phone, name=name
        )
        return read_answer("register_customer", answers.customer, r)

    async def _called(self, capability: str, **params: object) -> dict[str, object]:
        why = self._missing(capability)
        if why is not None:
            raise LedgerRefused(LedgerErrorCode.NOT_SUPPORTED, why)
        try:
            return await self._call(capability, **params)
        except ConfigError as exc:
            # Declared (the reference contract declares every call) but not published: a 1C
            # whose service predates these optional calls (CONTRACT.md "Operations"): its
            # WSDL lacks the operation, or its HTTP service has no template (a bare 404).
            cause = exc.__cause__
            if isinstance(cause, OnecContractMismatch) or is_unpublished(cause):
                raise LedgerRefused(
                    LedgerErrorCode.NOT_SUPPORTED,
                    f"the 1C service does not publish {capability}: {exc}",
                ) from exc
            raise
