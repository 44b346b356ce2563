"""The emulator's product catalogue, and what an order line naming an offer it lacks becomes.

retailcrm-api.md §10.5: every official shop module sends ``productName`` and
``initialPrice`` beside the ``offer`` reference, and PrestaShop deliberately sends lines
whose offer cannot exist (``giftWrappingCost``); API-made orders read back with items that
have no ``offer`` key. So an ``offer.externalId`` / ``offer.xmlId`` the catalogue lacks
does not refuse the order: the line is kept without a catalogue product, named by
``productName`` and priced by ``initialPrice``. The answers that refuse are the ones the
fixtures show (§2.2, GO ``TestClient_OrdersUpload_Fail``): an unknown internal
``offer.id``, and a line with nothing to name it by, ``items[N].offer.<by>: Offer with <by>
X not found.``

Decision: the sandbox catalogue holds every offer coded ``SKU-…`` (the sandbox 1C's and the
README's products) plus those added with :meth:`Catalogue.add`; only an added offer
can be named by internal id (callers never learn the others').
"""

from __future__ import annotations

import re
from typing import Any

from connectors.retailcrm.emulator.wire import Json

SANDBOX_CODE = re.compile(r"SKU-[0-9A-Za-z_.-]{1,40}")


class Catalogue:
    """The offers an account's catalogue holds."""

    def __init__(self) -> None:
        self.added: dict[str, Json] = {}  # externalId → offer {id, externalId, name}

    def add(self, external_id: str, name: str) -> Json:
        """Put an offer in the catalogue; its internal id comes after the sandbox range."""
        offer = {"id": 10**9 + len(self.added) + 1, "externalId": external_id, "name": name}
        self.added[external_id] = offer
        return offer

    def knows(self, by: str, value: Any) -> bool:
        """Whether an offer referenced ``by`` id, externalId or xmlId is in the catalogue."""
        text = str(value)
        if by == "id":
            return any(str(o["id"]) == text for o in self.added.values())
        return SANDBOX_CODE.fullmatch(text) is not None or text in self.added

    def offer_errors(self, items: list[Json]) -> dict[str, str]:
        """The lines RetailCRM refuses: an unknown internal id, or an unknown offer on a line
        without ``productName`` (nothing left to name the line by)."""
        errors: dict[str, str] = {}
        for index, item in enumerate(items):
            offer = item.get("offer")
            if not isinstance(offer, dict):
                continue
            for by in ("id", "externalId", "xmlId"):
                if offer.get(by) in (None, "") or self.knows(by, offer[by]):
                    continue
                if by == "id" or not item.get("productName"):
                    errors[f"items[{index}].offer.{by}"] = f"Offer with {by} {offer[by]} not found."
                break
        return errors

    def unbind(self, items: list[Json]) -> None:
        """Lines whose offer the catalogue lacks keep their name and price, not the offer."""
        for item in items:
            offer = item.get("offer")
            if not isinstance(offer, dict):
                continue
            refs = [(by, offer[by]) for by in ("id", "externalId", "xmlId") if offer.get(by)]
            if refs and not any(self.knows(by, value) for by, value in refs):
                del item["offer"]
