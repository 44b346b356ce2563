"""What happens in the emulated portal without the API: seeded data and managers' edits.

Seeded rows exist before anyone subscribed, so they make no events. An edit "in the UI" is
a change by the portal's user 1 outside any application: every online handler and offline
binding hears of it (§3.2, §3.5).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from connectors.bitrix.emulator.auth import PORTAL_USER
from connectors.bitrix.emulator.crm import CrmStore, FieldError
from connectors.bitrix.emulator.events import EventHub
from connectors.bitrix.emulator.fields import CONTACT, DEAL, FieldKind
from connectors.bitrix.emulator.sale import SaleStore, render
from connectors.bitrix.emulator.wire import Json, RestError

BONUS_FIELD = "UF_CRM_BONUS_BALANCE"  # §2.6: the recommended contact user field
# The same people as the other sandboxes (README): phone, bonus balance.
SANDBOX_PEOPLE = (
    ("Иван", "Петров", "+79000000001", "1000"),
    ("Мария", "Смирнова", "+79000000002", "250"),
    ("Ольга", "Иванова", "+79000000003", "0"),
)
_KINDS: dict[str, FieldKind] = {"contact": CONTACT, "deal": DEAL}


class PortalAdmin:
    """Seeding and UI edits over the portal's stores."""

    def __init__(self, crm: CrmStore, sale: SaleStore, events: EventHub) -> None:
        self.crm, self.sale, self.events = crm, sale, events

    @contextmanager
    def _quiet(self) -> Iterator[None]:
        muted, self.events.muted = self.events.muted, True
        try:
            yield
        finally:
            self.events.muted = muted

    def seed_sandbox(self) -> None:
        """The bonus user field and three contacts with phones and balances."""
        self.seed_userfield("contact", "BONUS_BALANCE", "double")
        for name, last_name, phone, balance in SANDBOX_PEOPLE:
            self.seed(
                "contact",
                {
                    "NAME": name,
                    "LAST_NAME": last_name,
                    "PHONE": [{"VALUE": phone, "VALUE_TYPE": "MOBILE"}],
                    BONUS_FIELD: balance,
                },
            )

    def seed_userfield(self, entity: str, name: str, type_id: str) -> str:
        """A user field (the `UF_CRM_` prefix is added); its full name."""
        with self._quiet():
            kind = _kind(entity)
            self.crm.add_userfield(kind, {"FIELD_NAME": name, "USER_TYPE_ID": type_id})
            return list(self.crm.userfields[kind.name])[-1]

    def seed(self, entity: str, fields: Mapping[str, Any]) -> int:
        """A contact, deal (old UPPER_CASE names) or order (camelCase) that makes no events."""
        with self._quiet():
            return self.edit(entity, fields)

    def edit(self, entity: str, fields: Mapping[str, Any], entity_id: Any = None) -> int:
        """Add (no id) or change a contact, deal or order as a manager in the UI; its id."""
        if entity == "order":
            if entity_id is None:
                return int(self.sale.add(fields, PORTAL_USER)["id"])
            order = self.sale.orders.get(int(entity_id))
            if order is None:
                raise KeyError(f"order {entity_id} does not exist")
            return int(self.sale.update(order, fields, PORTAL_USER)["id"])
        kind = _kind(entity)
        values = {str(k).upper(): v for k, v in fields.items()}
        try:
            if entity_id is None:
                return int(self.crm.add(kind, values, PORTAL_USER)["ID"])
            row = self.crm.get(kind, entity_id)
            if row is None:
                raise KeyError(f"{entity} {entity_id} does not exist")
            return int(self.crm.update(kind, row, values, PORTAL_USER)["ID"])
        except FieldError as exc:
            raise ValueError(str(exc)) from None

    def delete(self, entity: str, entity_id: int) -> None:
        """Delete a contact, deal or order as a manager in the UI."""
        if entity == "order":
            order = self.sale.orders.get(entity_id)
            if order is None:
                raise KeyError(f"order {entity_id} does not exist")
            self.sale.delete(order, PORTAL_USER)
            return
        kind = _kind(entity)
        row = self.crm.get(kind, entity_id)
        if row is None:
            raise KeyError(f"{entity} {entity_id} does not exist")
        self.crm.delete(kind, row, PORTAL_USER)

    def snapshot(self) -> Json:
        """Everything stored, as JSON."""
        return {
            "contacts": dict(self.crm.rows[CONTACT.name]),
            "deals": dict(self.crm.rows[DEAL.name]),
            "userfields": {k: list(v.values()) for k, v in self.crm.userfields.items()},
            "orders": {n: render(o) for n, o in self.sale.orders.items()},
        } | self.events.snapshot()


def _kind(entity: str) -> FieldKind:
    if entity not in _KINDS:
        raise RestError(400, "BAD_EDIT", f"entity must be contact, deal or order, not {entity}")
    return _KINDS[entity]
