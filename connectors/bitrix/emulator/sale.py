"""A subset of the online store (`sale` scope): orders with their 1C and external ids.

bitrix.md §2.5: `sale.order.add {fields: {lid, personTypeId, currency, userId, statusId,
price, discountValue, xmlId, id1c, version1c, updated1c, externalOrder, comments,
responsibleId, canceled}}` — admin only — answers `result.order{…}` with `id` and
`accountNumber`; `update/get/list/delete`; list answers `result.orders[]` with top-level
`total`/`next` and crm-style filter prefixes. §1.3/§1.7: errors are HTTP 400 with numeric
codes (200540400001 "order does not exist", 200040300010 no rights, 100 missing id).
Events: `OnSaleOrderSaved` (`FIELDS = {ID, XML_ID, ACTION: "save"}`) and
`OnOrderEntitySaved`, `OnSaleBeforeOrderDelete` (`ACTION: "delete"`) and `OnOrderDeleted`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from connectors.bitrix.emulator.auth import Caller
from connectors.bitrix.emulator.calls import Method, RestCall
from connectors.bitrix.emulator.crm import Emit
from connectors.bitrix.emulator.fields import Field, coerce, item_value, row_matches, sort_rows
from connectors.bitrix.emulator.wire import (
    Clock,
    Json,
    Reply,
    RestError,
    iso,
    page,
    php_int,
    php_list,
)

NOT_FOUND = 200540400001  # §1.3: "order does not exist"
NO_RIGHTS = 200040300010  # §1.7: sale.* without rights
MISSING = 100  # §1.7: a missing id / required field
REQUIRED = ("lid", "personTypeId", "currency")  # Decision: what add refuses to go without
ORDER_FIELDS = tuple(
    Field(name, kind, bool(ro))
    for name, kind, *ro in (
        ("id", "int", "ro"),
        ("accountNumber", "str", "ro"),
        ("dateInsert", "date", "ro"),
        ("dateUpdate", "date", "ro"),
        ("lid", "str"),
        ("personTypeId", "int"),
        ("currency", "str"),
        ("userId", "int"),
        ("statusId", "str"),
        ("price", "money"),
        ("discountValue", "money"),
        ("xmlId", "str"),
        ("id1c", "str"),
        ("version1c", "str"),
        ("updated1c", "yn"),
        ("externalOrder", "yn"),
        ("comments", "str"),
        ("userDescription", "str"),
        ("responsibleId", "int"),
        ("canceled", "yn"),
        ("payed", "yn"),
        ("deducted", "yn"),
        ("marked", "yn"),
    )
)
_BY_NAME = {field.upper: field for field in ORDER_FIELDS}


class SaleStore:
    """The shop's orders."""

    def __init__(self, clock: Clock, emit: Emit) -> None:
        self._clock, self._emit = clock, emit
        self.orders: dict[int, Json] = {}
        self._next = 1

    def add(self, values: Mapping[str, Any], caller: Caller) -> Json:
        """A new order; RestError when a required field is missing or a value is bad."""
        missing = [name for name in REQUIRED if values.get(name) in (None, "")]
        if missing:
            raise RestError(400, MISSING, f"Required fields: {', '.join(missing)}")
        number, self._next = self._next, self._next + 1
        now = iso(self._clock())
        order: Json = {f.upper: None for f in ORDER_FIELDS}
        order |= {
            "id": number,
            "accountNumber": str(number),
            "dateInsert": now,
            "dateUpdate": now,
            "statusId": "N",
            "price": None,
            "userId": caller.user_id,
            "responsibleId": caller.user_id,
            # Decision: the shop makes up an xmlId when none is given, as `bx_<hex>`.
            "xmlId": f"bx_{secrets.token_hex(6)}",
        }
        order |= {name: "N" for name, f in _BY_NAME.items() if f.kind == "yn"}
        _write(order, values)
        self.orders[number] = order
        self._saved(order, caller)
        return order

    def update(self, order: Json, values: Mapping[str, Any], caller: Caller) -> Json:
        """Apply `values` (only those given change)."""
        draft = dict(order)
        _write(draft, values)
        draft["dateUpdate"] = iso(self._clock())
        order.update(draft)
        self._saved(order, caller)
        return order

    def delete(self, order: Json, caller: Caller) -> None:
        """Remove an order."""
        fields = {"ID": order["id"], "XML_ID": order["xmlId"], "ACTION": "delete"}
        self._emit("ONSALEBEFOREORDERDELETE", {"FIELDS": fields}, caller)
        del self.orders[order["id"]]
        self._emit("ONORDERDELETED", {"FIELDS": {"ID": order["id"]}}, caller)

    def _saved(self, order: Json, caller: Caller) -> None:
        fields = {"ID": order["id"], "XML_ID": order["xmlId"], "ACTION": "save"}
        self._emit("ONSALEORDERSAVED", {"FIELDS": fields}, caller)
        self._emit("ONORDERENTITYSAVED", {"FIELDS": {"ID": order["id"]}}, caller)


def _write(order: Json, values: Mapping[str, Any]) -> None:
    for name, value in values.items():
        field = _BY_NAME.get(name)
        if field is None or field.readonly:
            continue
        try:
            order[name] = coerce(field, value)
        except ValueError:
            raise RestError(400, MISSING, f"Invalid value of field {name}") from None


def render(order: Json, select: list[str] | None = None) -> Json:
    """An order as sale.* writes it: camelCase, numbers as numbers."""
    every = not select or "*" in select
    return {
        name: item_value(_BY_NAME[name], value)
        for name, value in order.items()
        if every or name in (select or [])
    }


def sale_methods(store: SaleStore) -> dict[str, Method]:
    """The method table of `sale.order.*`."""
    handlers = _SaleHandlers(store)
    return {
        "sale.order.add": Method("sale", handlers.add),
        "sale.order.update": Method("sale", handlers.update),
        "sale.order.get": Method("sale", handlers.get),
        "sale.order.list": Method("sale", handlers.listing),
        "sale.order.delete": Method("sale", handlers.delete),
    }


class _SaleHandlers:
    """The handlers of `sale.order.*` over one store."""

    def __init__(self, store: SaleStore) -> None:
        self.store = store

    def add(self, call: RestCall) -> Reply:
        """`sale.order.add`."""
        _admin(call)
        return Reply({"order": render(self.store.add(_fields_of(call), call.caller))})

    def update(self, call: RestCall) -> Reply:
        """`sale.order.update`."""
        order = self._found(call)
        return Reply({"order": render(self.store.update(order, _fields_of(call), call.caller))})

    def get(self, call: RestCall) -> Reply:
        """`sale.order.get`."""
        return Reply({"order": render(self._found(call))})

    def delete(self, call: RestCall) -> Reply:
        """`sale.order.delete`."""
        self.store.delete(self._found(call), call.caller)
        return Reply(True)

    def listing(self, call: RestCall) -> Reply:
        """`sale.order.list`."""
        _admin(call)
        orders = self.store.orders.values()
        rows = [o for o in orders if row_matches(o, call.get("filter"), _resolve)]
        rows = sort_rows([{"ID": o["id"], **o} for o in rows], call.get("order"), _resolve)
        chosen = page(rows, call.start)
        select = [str(s) for s in php_list(call.get("select"))]
        plain = [{k: v for k, v in o.items() if k != "ID"} for o in chosen.result]
        chosen.result = {"orders": [render(o, select) for o in plain]}
        return chosen

    def _found(self, call: RestCall) -> Json:
        _admin(call)
        number = php_int(call.get("id"))
        if number <= 0:
            raise RestError(400, MISSING, "Required parameter 'id' is not set")
        order = self.store.orders.get(number)
        if order is None:
            raise RestError(400, NOT_FOUND, "order does not exist")
        return order


def _admin(call: RestCall) -> None:
    if not call.caller.admin:  # §2.5: admin only
        raise RestError(400, NO_RIGHTS, "Access denied")


def _fields_of(call: RestCall) -> Mapping[str, Any]:
    fields = call.get("fields")
    if not isinstance(fields, Mapping):
        raise RestError(400, MISSING, "Required parameter 'fields' is not set")
    return fields


def _resolve(name: str) -> str | None:
    return name if name in _BY_NAME else None  # Decision: unknown names are ignored
