"""The sandbox account the emulator starts with: three shoppers and two orders.

Decision: the seed is the account as it was before the history window, so it writes no
history; a poller starting at sinceId 0 sees only changes made afterwards.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from connectors.retailcrm.emulator.history import CUSTOMER, ORDER
from connectors.retailcrm.emulator.wire import Json

if TYPE_CHECKING:
    from connectors.retailcrm.emulator.state import RetailcrmState

SANDBOX_PEOPLE = (
    ("c-1", "Иван", "Петров", "+79000000001", "2000000000015"),
    ("c-2", "Мария", "Смирнова", "+79000000002", "2000000000022"),
    ("c-3", "Ольга", "Иванова", "+79000000003", None),
)


def seed_sandbox(state: RetailcrmState) -> None:
    """Customers c-1, c-2 (with loyalty cards), c-3; orders o-1 and o-2 of the first two."""
    for external_id, first, last, phone, card in SANDBOX_PEOPLE:
        data: Json = {"externalId": external_id, "firstName": first, "lastName": last}
        data |= {"phones": [{"number": phone}], "createdAt": "2025-01-10 10:00:00"}
        if card:
            data["discountCardNumber"] = card
        state.insert(CUSTOMER, data, state.sites[0], None)
    for external_id, customer, sku, price in (
        ("o-1", "c-1", "SKU-1", 1500),
        ("o-2", "c-2", "SKU-2", 800),
    ):
        item = {"offer": {"externalId": sku}, "quantity": 2, "initialPrice": price}
        order: Json = {"externalId": external_id, "customer": {"externalId": customer}}
        order |= {"createdAt": "2025-01-11 12:00:00", "status": "new", "items": [item]}
        state.insert(ORDER, order, state.sites[0], None)
