"""How each bridge entity is kept in Bitrix24: which methods read, list and write it.

- ``customer``: a CRM contact, ``crm.item`` with ``entityTypeId`` 3 (bitrix.md §2.1, §2.3:
  the old ``crm.contact.*`` are deprecated).
- ``order``: a CRM deal, ``crm.item`` with ``entityTypeId`` 2 (§2.2), or, with
  ``orders: shop``, a shop order, ``sale.order.*`` (§2.5).

What the bridge writes carries its own key, so a write is found again before any ``add``
(§2.7: Bitrix has no idempotency key): ``originatorId: bridge`` + ``originId`` on CRM items,
``xmlId`` on shop orders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

ORIGINATOR = "bridge"
Call = tuple[str, dict[str, Any]]  # (method, params)


@dataclass(frozen=True)
class Kind:
    """One entity as Bitrix keeps it."""

    entity: str
    entity_type_id: int | None  # crm.item; None for sale.order

    @property
    def shop(self) -> bool:
        """A sale.order, not a crm.item."""
        return self.entity_type_id is None

    @property
    def key_field(self) -> str:
        """Where the bridge's external id goes."""
        return "xmlId" if self.shop else "originId"

    def get(self, own_id: str) -> Call:
        """Read one by Bitrix's id."""
        if self.shop:
            return "sale.order.get", {"id": int(own_id)}
        return "crm.item.get", {"entityTypeId": self.entity_type_id, "id": int(own_id)}

    def one(self, result: Any) -> dict[str, Any] | None:
        """The entity in a get/add/update answer (``{item}`` or ``{order}``, §1.3)."""
        inner = (
            result.get("order" if self.shop else "item") if isinstance(result, Mapping) else None
        )
        return dict(inner) if isinstance(inner, Mapping) else None

    def rows(self, result: Any) -> list[Mapping[str, Any]]:
        """The rows of a list answer (``{items}`` or ``{orders}``)."""
        found = (
            result.get("orders" if self.shop else "items") if isinstance(result, Mapping) else None
        )
        return [r for r in found if isinstance(r, Mapping)] if isinstance(found, list) else []

    def listing(self, since: date | None) -> tuple[str, dict[str, Any]]:
        """The list method and its parameters for a backfill (created on or after ``since``)."""
        created = "dateInsert" if self.shop else "createdTime"
        flt = {f">={created}": f"{since.isoformat()}T00:00:00"} if since else {}
        if self.shop:
            return "sale.order.list", {"filter": flt}
        return "crm.item.list", {"entityTypeId": self.entity_type_id, "filter": flt}

    def find(self, keys: Sequence[str]) -> Call:
        """Look up what the bridge wrote before under these keys (one page: ≤ 50 keys)."""
        select = ["id", self.key_field]
        flt: dict[str, Any] = {f"@{self.key_field}": list(keys)}
        if self.shop:
            return "sale.order.list", {"filter": flt, "select": select}
        flt["originatorId"] = ORIGINATOR
        return "crm.item.list", {
            "entityTypeId": self.entity_type_id,
            "filter": flt,
            "select": select,
        }

    def add(self, fields: Mapping[str, Any], key: str, connector: str) -> Call:
        """Create, tagged with the bridge's key and ``auth_connector`` (§3.5: our own changes
        are then not queued back to us)."""
        tagged = dict(fields) | {self.key_field: key}
        if self.shop:
            return "sale.order.add", {"fields": tagged, "auth_connector": connector}
        tagged["originatorId"] = ORIGINATOR
        params = {"entityTypeId": self.entity_type_id, "fields": tagged}
        return "crm.item.add", params | {"auth_connector": connector}

    def update(self, own_id: str, fields: Mapping[str, Any], connector: str) -> Call:
        """Change the given fields of Bitrix's ``own_id`` (its own key stays)."""
        changes = {k: v for k, v in fields.items() if k not in (self.key_field, "originatorId")}
        if self.shop:
            return "sale.order.update", {
                "id": int(own_id),
                "fields": changes,
                "auth_connector": connector,
            }
        params = {"entityTypeId": self.entity_type_id, "id": int(own_id), "fields": changes}
        return "crm.item.update", params | {"auth_connector": connector}


CUSTOMER = Kind("customer", 3)
DEAL = Kind("order", 2)
SHOP_ORDER = Kind("order", None)


def kinds(orders: str) -> dict[str, Kind]:
    """The kinds by bridge entity, with orders as deals or shop orders."""
    return {"customer": CUSTOMER, "order": SHOP_ORDER if orders == "shop" else DEAL}
