"""Statuses, external ids and payments in the emulator (retailcrm-api.md §10.7).

- ``GET /reference/statuses``: an object keyed by status code, each ``{name, code,
  active, ordering, group}``; the groups are the fixture's ``new``, ``approval``,
  ``assembling``, ``delivery``, ``complete``, ``cancel`` (PHP ReferencesTest).
- ``GET /orders/statuses?ids[]=…&externalIds[]=…``: top-level arrays, not ``filter[...]``;
  ``{orders: [{id, externalId, status, group}]}``. Decision: unknown ids are left out.
- ``POST /orders|customers|customers-corporate/fix-external-ids``: ``[{id, externalId}]``
  → ``{success}``; a row without both is 400 ``Invalid input parameters`` (GO fixture).
- ``POST /orders/payments/create``: ``payment`` with ``order{id|externalId|number}`` →
  ``{success, id}`` (201, §1.5); no order reference is 400 with ``errors.order``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.retailcrm.emulator.history import ORDER, EntityKind, HistoryChange
from connectors.retailcrm.emulator.state import RetailcrmState
from connectors.retailcrm.emulator.wire import ApiError, Json, as_list, invalid, json_field

# (code, name, group), in the order the account lists them; the sandbox's statuses.
STATUSES = (
    ("new", "Новый", "new"),
    ("availability-confirmed", "Наличие подтверждено", "approval"),
    ("client-confirmed", "Согласовано с клиентом", "approval"),
    ("prepayed", "Предоплата поступила", "approval"),
    ("send-to-assembling", "Передано в комплектацию", "assembling"),
    ("assembling", "Комплектуется", "assembling"),
    ("assembling-complete", "Укомплектован", "assembling"),
    ("send-to-delivery", "Передан в доставку", "delivery"),
    ("delivering", "Доставляется", "delivery"),
    ("redirect", "Доставка перенесена", "delivery"),
    ("complete", "Выполнен", "complete"),
    ("no-call", "Недозвон", "cancel"),
    ("no-product", "Нет в наличии", "cancel"),
    ("already-buyed", "Купил в другом месте", "cancel"),
    ("cancel-other", "Отменен", "cancel"),
)
GROUPS = {code: group for code, _name, group in STATUSES}
BAD_INPUT = "Invalid input parameters"


def reference_statuses() -> Json:
    """``GET /reference/statuses``."""
    statuses = {
        code: {"name": name, "code": code, "active": True, "ordering": 10 * n, "group": group}
        for n, (code, name, group) in enumerate(STATUSES, start=1)
    }
    return {"success": True, "statuses": statuses}


def order_statuses(state: RetailcrmState, params: Mapping[str, Any]) -> Json:
    """``GET /orders/statuses``."""
    ids = {str(i) for i in as_list(params.get("ids"))}
    external_ids = {str(i) for i in as_list(params.get("externalIds"))}
    found = [
        {
            "id": o["id"],
            "externalId": o.get("externalId"),
            "status": o.get("status"),
            "group": GROUPS.get(str(o.get("status"))),
        }
        for o in state.entities[ORDER.name].values()
        if str(o["id"]) in ids or str(o.get("externalId")) in external_ids
    ]
    return {"success": True, "orders": found}


def fix_external_ids(
    state: RetailcrmState,
    kind: EntityKind,
    field: str,
    params: Mapping[str, Any],
    change: HistoryChange,
    book: dict[int, Json] | None = None,
) -> Json:
    """``POST /…/fix-external-ids``: give entities (by id) the external ids listed."""
    rows = json_field(params, field, list)
    if not rows or not all(
        isinstance(r, dict) and r.get("id") not in (None, "") and r.get("externalId") for r in rows
    ):
        raise ApiError(400, BAD_INPUT)
    for row in rows:
        if book is not None:  # corporate customers keep their own book (no history here)
            if int(row["id"]) not in book:
                raise ApiError(404, "Not found")
            book[int(row["id"])]["externalId"] = str(row["externalId"])
            continue
        entity = state.find(kind, row["id"], "id")
        state.patch(kind, entity, {"externalId": str(row["externalId"])}, change)
    return {"success": True}


def create_payment(state: RetailcrmState, params: Mapping[str, Any], change: HistoryChange) -> Json:
    """``POST /orders/payments/create``: a payment added to the order it names."""
    payment = json_field(params, "payment")
    ref = payment.get("order")
    if not isinstance(ref, dict) or not any(ref.get(k) for k in ("id", "externalId", "number")):
        raise invalid({"order": "Set one of the following fields: id, externalId, number"})
    order = state.find_ref(ORDER, ref, params.get("site"))
    row = {k: v for k, v in payment.items() if k != "order"}
    row["id"] = state.new_id("payment")
    payments = [*order.get("payments", []), row]
    state.patch(ORDER, order, {"payments": payments}, change)
    return {"success": True, "id": row["id"]}
