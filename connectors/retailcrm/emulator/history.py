"""The emulator's change feeds: one record per changed field, rendered per calling key.

retailcrm-api.md §2.5 and §3.1: records ascend by `id` (orders and customers have separate
sequences, §8), carry `source`, `apiKey.current` for API changes (computed for the *caller*,
so the same record says `true` to its author and `false` to everyone else), `user` for a
manager's change, and the entity (in full on `created` records, a subset otherwise).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors.retailcrm.emulator.wire import Json, as_int, filter_of, paginate

Row = tuple[str, Any, Any, Json]  # (field code, oldValue, newValue, extra keys)


@dataclass(frozen=True)
class HistoryChange:
    """Who made a change: `api` with a key, `user` (a manager in the UI) or `code`."""

    source: str = "api"
    api_key: str | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class EntityKind:
    """Orders or customers: each has its own ids and its own history sequence."""

    name: str
    plural: str
    first_id: int


ORDER = EntityKind("order", "orders", 5001)
CUSTOMER = EntityKind("customer", "customers", 101)


@dataclass
class HistoryRecord:
    """One field change as stored; `render` shapes it for one caller."""

    id: int
    created_at: str
    entity_id: int
    external_id: str | None
    field: str
    old: Any
    new: Any
    entity: Json
    change: HistoryChange
    created: bool = False
    extra: Json = dataclasses.field(default_factory=dict)

    def render(self, kind: EntityKind, caller_key: str | None) -> Json:
        """The record as `…/history` returns it to the holder of `caller_key`."""
        out: Json = {"id": self.id, "createdAt": self.created_at}
        if self.created:
            out["created"] = True
        out["source"] = self.change.source
        if self.change.source == "user":
            out["user"] = {"id": self.change.user_id or 1}
        if self.change.source == "api":
            out["apiKey"] = {"current": self.change.api_key == caller_key}
        out |= {"field": self.field, "oldValue": self.old, "newValue": self.new}
        return out | {kind.name: self.entity} | self.extra


class HistoryFeed:
    """The history of one kind of entity."""

    def __init__(self, kind: EntityKind) -> None:
        self.kind = kind
        self.records: list[HistoryRecord] = []

    def append(
        self,
        entity: Json,
        shown: Json,
        rows: list[Row],
        change: HistoryChange,
        *,
        at: str,
        created: bool = False,
    ) -> None:
        """Record each row; `shown` is the entity as the records carry it."""
        for name, old, new, extra in rows:
            self.records.append(
                HistoryRecord(
                    id=len(self.records) + 1,
                    created_at=at,
                    entity_id=entity["id"],
                    external_id=entity.get("externalId"),
                    field=name,
                    old=copy.deepcopy(old),
                    new=copy.deepcopy(new),
                    entity=copy.deepcopy(shown),
                    change=change,
                    created=created,
                    extra=copy.deepcopy(extra),
                )
            )

    def page(self, params: Mapping[str, Any], caller_key: str | None, now: str) -> Json:
        """`GET /…/history`: ids after `filter[sinceId]`, ascending, paged (§2.5, §1.7)."""
        wanted = filter_of(params)
        since = as_int(wanted.get("sinceId"), "filter[sinceId]", 0)
        start, end = wanted.get("startDate"), wanted.get("endDate")
        entity_id = wanted.get(f"{self.kind.name}Id")
        external_id = wanted.get(f"{self.kind.name}ExternalId")
        found = [
            r
            for r in self.records
            if r.id > since
            and (not start or r.created_at >= start)
            and (not end or r.created_at <= end)
            and (entity_id in (None, "") or str(r.entity_id) == str(entity_id))
            and (external_id in (None, "") or r.external_id == str(external_id))
        ]
        rows, pagination = paginate(found, params)
        history = [r.render(self.kind, caller_key) for r in rows]
        return {"success": True, "generatedAt": now, "history": history, "pagination": pagination}


def summary(kind: EntityKind, entity: Json) -> Json:
    """§2.5: records other than creation carry a subset of the entity."""
    keys = ["id", "externalId", "site"] + (["status", "managerId"] if kind is ORDER else [])
    return {k: entity[k] for k in keys if entity.get(k) is not None}


def snake(name: str) -> str:
    """camelCase → snake_case, as history field codes are written (§2.5)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


# Computed or fixed keys: never a change of their own.
_DERIVED = frozenset({"id", "slug", "site", "summ", "totalSumm", "prepaySum", "purchaseSumm"})
_DERIVED |= {"statusUpdatedAt", "bonusesChargeTotal", "bonusesCreditTotal", "fromApi"}
_DICTIONARY = frozenset({"status", "orderType", "orderMethod", "paymentStatus"})  # {"code": …}
_ITEM_FIELDS = {
    "quantity": "quantity",
    "status": "status",
    "initialPrice": "initial_price",
    "discountManualAmount": "discount_manual_amount",
    "bonusesChargeTotal": "bonuses_charge",  # §2.5 `order_product.bonuses_charge`
    "bonusesCreditTotal": "bonuses_credit",
}


def diff_fields(old: Json, new: Json) -> list[Row]:
    """The records of one change, with the §2.5 field codes (dictionaries as `{"code"}`)."""
    out: list[Row] = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        if key in _DERIVED or a == b:
            continue
        if key in ("items", "payments"):
            out += _row_changes(key, a or [], b or [])
        elif key == "phones":
            # Decision [unconfirmed shape]: one record per number added or removed.
            was = [p.get("number") for p in a or []]
            now = [p.get("number") for p in b or []]
            out += [("phones", None, n, {}) for n in now if n not in was]
            out += [("phones", n, None, {}) for n in was if n not in now]
        elif key in ("customFields", "delivery", "address") and isinstance(b, dict):
            # `custom_<code>`, `delivery_cost`, `address.<part>` (§2.5, §3.1).
            prefix = {"customFields": "custom_", "delivery": "delivery_"}.get(key, "address.")
            a = a if isinstance(a, dict) else {}
            for k in [*b, *(k for k in a if k not in b)]:
                if a.get(k) != b.get(k):
                    code = k if key == "customFields" else snake(k)
                    out.append((prefix + code, a.get(k), b.get(k), {}))
        elif key == "managerId":
            out.append(("manager", a and {"id": a}, b and {"id": b}, {}))
        elif key in _DICTIONARY:
            out.append((snake(key), a and {"code": a}, b and {"code": b}, {}))
        else:
            out.append((snake(key), a, b, {}))
    return out


def _row_changes(key: str, old: list[Json], new: list[Json]) -> list[Row]:
    """Items (`order_product…`, with `item`) and payments (`payments…`, with `payment`)."""
    code, extra = ("order_product", "item") if key == "items" else ("payments", "payment")
    was, now = {r["id"]: r for r in old}, {r["id"]: r for r in new}
    out: list[Row] = [(code, None, {"id": i}, {extra: now[i]}) for i in now if i not in was]
    out += [(code, {"id": i}, None, {extra: was[i]}) for i in was if i not in now]
    for row_id in (i for i in now if i in was):
        names = _ITEM_FIELDS if key == "items" else {k: snake(k) for k in now[row_id]}
        for name, field_code in names.items():
            a, b = was[row_id].get(name), now[row_id].get(name)
            if a != b and name != "id":
                out.append((f"{code}.{field_code}", a, b, {extra: now[row_id]}))
    return out
