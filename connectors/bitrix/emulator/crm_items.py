"""`crm.item.*` for deals (entityTypeId 2) and contacts (3) over the shared CRM store.

bitrix.md §2.3 and b24restdocs `crm/universal/crm-item-*.md`: camelCase names (`title`,
`opportunity`, `stageId`, `originId`, `ufCrm…`; original `UF_CRM_…` with
`useOriginalUfNames=Y`), numeric ids and amounts, `result: {item}` / `{items}` (§1.3),
`crm.item.delete` → `[]`, contacts' phones and e-mails in `fm` (`typeId`, `valueType`,
`value`), unknown fields in `fields` ignored, errors HTTP 400 `NOT_FOUND`,
`CRM_FIELD_ERROR_VALUE_NOT_VALID`, `INVALID_ARG_VALUE` (§1.7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.bitrix.emulator.calls import Method, RestCall
from connectors.bitrix.emulator.crm import CrmStore, FieldError
from connectors.bitrix.emulator.fields import (
    CONTACT,
    KINDS,
    MULTIFIELDS,
    Field,
    FieldKind,
    filter_names,
    item_value,
    row_matches,
    sort_rows,
    split_key,
)
from connectors.bitrix.emulator.wire import (
    Json,
    Reply,
    RestError,
    page,
    php_int,
    php_list,
    php_true,
)


def item_methods(store: CrmStore) -> dict[str, Method]:
    """The method table of `crm.item.*`."""
    api = _ItemApi(store)
    return {
        "crm.item.add": Method("crm", api.add),
        "crm.item.update": Method("crm", api.update),
        "crm.item.get": Method("crm", api.get),
        "crm.item.list": Method("crm", api.listing),
        "crm.item.delete": Method("crm", api.delete),
        "crm.item.fields": Method("crm", api.fields),
    }


class _ItemApi:
    def __init__(self, store: CrmStore) -> None:
        self.store = store

    # ---- naming ------------------------------------------------------------------------

    def _kind(self, call: RestCall) -> FieldKind:
        type_id = php_int(call.get("entityTypeId"))
        if type_id == 5:  # §2.3: the old invoice
            raise RestError(400, "ENTITY_TYPE_NOT_SUPPORTED", "Entity type 5 is not supported")
        if type_id not in KINDS:
            # Decision: leads, companies and smart processes are not emulated; the answer is
            # the one for an entityTypeId the portal does not have.
            raise RestError(400, "NOT_FOUND", "Smart process not found")
        return KINDS[type_id]

    def _names(self, kind: FieldKind, call: RestCall) -> dict[str, Field]:
        """crm.item name → field; original UF names with `useOriginalUfNames=Y` (§2.3)."""
        original = php_true(call.get("useOriginalUfNames"))
        names: dict[str, Field] = {}
        for field in self.store.fields(kind):
            if field.kind == "multi":
                continue
            uf = field.upper.startswith("UF_")
            names[field.upper if uf and original else field.camel] = field
        return names

    def _row(self, kind: FieldKind, call: RestCall, missing: str = "Element not found") -> Json:
        row = self.store.get(kind, php_int(call.get("id")))
        if row is None:
            raise RestError(400, "NOT_FOUND", missing)
        return row

    def _values(self, kind: FieldKind, call: RestCall) -> dict[str, Any]:
        fields = call.get("fields")
        if not isinstance(fields, Mapping):
            raise RestError(400, "INVALID_ARG_VALUE", "Parameter 'fields' must be an object")
        names = self._names(kind, call)
        values = {names[k].upper: v for k, v in fields.items() if k in names}
        if kind is CONTACT and "fm" in fields:
            values |= _fm_to_multifields(fields["fm"])
        return values

    def render(
        self, kind: FieldKind, row: Json, call: RestCall, select: list[str] | None = None
    ) -> Json:
        """A row as crm.item writes it; `select` None or with `*` means every field."""
        every = select is None or not select or "*" in select
        wanted = set(select or [])
        out: Json = {}
        for name, field in self._names(kind, call).items():
            if every or name in wanted:
                out[name] = item_value(field, row.get(field.upper))
        if kind is CONTACT and (every or "fm" in wanted):
            out["fm"] = [
                {
                    "id": item["ID"],
                    "typeId": item["TYPE_ID"],
                    "valueType": item["VALUE_TYPE"],
                    "value": item["VALUE"],
                }
                for multi in MULTIFIELDS
                for item in row.get(multi) or []
            ]
        if every:
            out["entityTypeId"] = kind.entity_type_id
        return out

    # ---- methods -----------------------------------------------------------------------

    def add(self, call: RestCall) -> Reply:
        """`crm.item.add {entityTypeId, fields}` → `{item}`."""
        kind = self._kind(call)
        try:
            row = self.store.add(kind, self._values(kind, call), call.caller)
        except FieldError as exc:
            raise _invalid(exc, self._names(kind, call)) from None
        return Reply({"item": self.render(kind, row, call)})

    def update(self, call: RestCall) -> Reply:
        """`crm.item.update {entityTypeId, id, fields}` → `{item}`."""
        kind = self._kind(call)
        row = self._row(kind, call)
        try:
            self.store.update(kind, row, self._values(kind, call), call.caller)
        except FieldError as exc:
            raise _invalid(exc, self._names(kind, call)) from None
        return Reply({"item": self.render(kind, row, call)})

    def get(self, call: RestCall) -> Reply:
        """`crm.item.get {entityTypeId, id}` → `{item}`."""
        kind = self._kind(call)
        return Reply({"item": self.render(kind, self._row(kind, call), call)})

    def delete(self, call: RestCall) -> Reply:
        """`crm.item.delete {entityTypeId, id}` → `[]` (crm-item-delete.md)."""
        kind = self._kind(call)
        self.store.delete(kind, self._row(kind, call, "Item not found"), call.caller)
        return Reply([])

    def fields(self, call: RestCall) -> Reply:
        """`crm.item.fields {entityTypeId}` → `{fields: {name: {type, upperName, …}}}`."""
        kind = self._kind(call)
        described = {
            name: {
                "type": field.kind.removeprefix("uf:"),
                "isReadOnly": field.readonly,
                "isMultiple": field.kind == "ints",
                "upperName": field.upper,
            }
            for name, field in self._names(kind, call).items()
        }
        return Reply({"fields": described})

    def listing(self, call: RestCall) -> Reply:
        """`crm.item.list {entityTypeId, select, filter, order, start}` → `{items}`."""
        kind = self._kind(call)
        names = self._names(kind, call)
        # Decision: filter and order also take the old UPPER_CASE names. fast_bitrix24's
        # get_all() sends `order: {ID: ASC}` to every list method, crm.item.list included,
        # and is used so against real portals; unknown names are still refused.
        by_name = {field.upper: field.upper for field in names.values()}
        by_name |= {name: field.upper for name, field in names.items()}
        flt, order = call.get("filter"), call.get("order")
        for name in filter_names(flt):
            if name not in by_name:
                text = f"Invalid filter: field '{name}' is not allowed in filter"
                raise RestError(400, "INVALID_ARG_VALUE", text)
        for name, direction in order.items() if isinstance(order, Mapping) else []:
            if split_key(str(name))[1] not in by_name:
                text = f"Invalid order: field '{name}' is not allowed in order"
                raise RestError(400, "INVALID_ARG_VALUE", text)
            if str(direction).upper() not in ("ASC", "DESC"):
                text = (
                    "Invalid order: allowed sort directions are ASC, DESC. "
                    f"But got '{direction}' for field '{name}'"
                )
                raise RestError(400, "INVALID_ARG_VALUE", text)
        rows = [r for r in self.store.all(kind) if row_matches(r, flt, by_name.get)]
        rows = sort_rows(rows, order, by_name.get)
        chosen = page(rows, call.start)
        select = [str(s) for s in php_list(call.get("select"))]
        chosen.result = {"items": [self.render(kind, r, call, select) for r in chosen.result]}
        return chosen


def _fm_to_multifields(given: Any) -> dict[str, list[Json]]:
    """crm.item `fm` entries as the §2.1 multifield entries of PHONE and EMAIL.

    Decision: the docs describe `fm` on add only; an update applies the same rules as the
    old API (an `id` changes or, with an empty value, deletes; no `id` adds).
    """
    out: dict[str, list[Json]] = {}
    for entry in php_list(given):
        if not isinstance(entry, Mapping):
            continue
        type_id = str(entry.get("typeId") or "").upper()
        if type_id in MULTIFIELDS:
            out.setdefault(type_id, []).append(
                {
                    "ID": entry.get("id"),
                    "VALUE": entry.get("value"),
                    "VALUE_TYPE": entry.get("valueType"),
                }
            )
    return out


def _invalid(exc: FieldError, names: Mapping[str, Field]) -> RestError:
    spelled = next((n for n, f in names.items() if f.upper == exc.field), exc.field)
    return RestError(400, "CRM_FIELD_ERROR_VALUE_NOT_VALID", f'Invalid value for field "{spelled}"')
