"""The old `crm.contact.*` / `crm.deal.*` methods, their user fields, and duplicate search.

bitrix.md §1.3: `add` → `result: <int id>`, `update`/`delete` → `true`, `get` → a flat
UPPER_CASE dict of **string** values, `list` → an array plus `total`/`next`; errors are
HTTP 400 with an empty code (`{"error": "", "error_description": "Not found"}`). §2.1: list
filters on PHONE/EMAIL match the exact stored value; `*` selects no user fields and no
multifields, `UF_*` the user fields, PHONE/EMAIL must be named. §2.2: `crm.deal.list` does not
return CONTACT_IDS. §2.4: user fields through `crm.<type>.userfield.add|list`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connectors.bitrix.emulator.calls import Method, RestCall
from connectors.bitrix.emulator.crm import CrmStore, FieldError
from connectors.bitrix.emulator.fields import (
    CONTACT,
    DEAL,
    MULTIFIELDS,
    FieldKind,
    legacy_value,
    row_matches,
    sort_rows,
)
from connectors.bitrix.emulator.wire import Json, Reply, RestError, page, php_int, php_list

FINDBYCOMM_MAX = 20  # §2.1: at most 20 values


def legacy_methods(store: CrmStore) -> dict[str, Method]:
    """The method table of the old CRM API."""
    table: dict[str, Method] = {}
    for kind in (CONTACT, DEAL):
        api = _LegacyApi(store, kind)
        base = f"crm.{kind.name}"
        table |= {
            f"{base}.add": Method("crm", api.add),
            f"{base}.update": Method("crm", api.update),
            f"{base}.get": Method("crm", api.get),
            f"{base}.list": Method("crm", api.listing),
            f"{base}.delete": Method("crm", api.delete),
            f"{base}.userfield.add": Method("crm", api.userfield_add),
            f"{base}.userfield.list": Method("crm", api.userfield_list),
            f"{base}.userfield.get": Method("crm", api.userfield_get),
        }
    table["crm.duplicate.findbycomm"] = Method("crm", lambda call: find_by_comm(store, call))
    return table


def _error(text: str) -> RestError:
    """The old API's error: HTTP 400 with an empty code (§1.3, §1.7)."""
    return RestError(400, "", text)


class _LegacyApi:
    """The old methods of one entity type."""

    def __init__(self, store: CrmStore, kind: FieldKind) -> None:
        self.store, self.kind = store, kind

    def _row(self, call: RestCall) -> Json:
        given = call.get("id")
        if php_int(given) <= 0:
            raise _error("ID is not defined or invalid.")
        row = self.store.get(self.kind, php_int(given))
        if row is None:
            raise _error("Not found")
        return row

    def _fields(self, call: RestCall) -> dict[str, Any]:
        fields = call.get("fields")
        if not isinstance(fields, Mapping) or not fields:
            raise _error("The parameter 'fields' must be array.")
        return {str(key).upper(): value for key, value in fields.items()}

    def add(self, call: RestCall) -> Reply:
        """`crm.<type>.add {fields}` → the new id."""
        try:
            row = self.store.add(self.kind, self._fields(call), call.caller)
        except FieldError as exc:
            raise _error(str(exc)) from None
        return Reply(row["ID"])

    def update(self, call: RestCall) -> Reply:
        """`crm.<type>.update {id, fields}` → true."""
        row = self._row(call)
        try:
            self.store.update(self.kind, row, self._fields(call), call.caller)
        except FieldError as exc:
            raise _error(str(exc)) from None
        return Reply(True)

    def get(self, call: RestCall) -> Reply:
        """`crm.<type>.get {id}` → every field, multifields and user fields included."""
        return Reply(self.render(self._row(call), None))

    def delete(self, call: RestCall) -> Reply:
        """`crm.<type>.delete {id}` → true."""
        self.store.delete(self.kind, self._row(call), call.caller)
        return Reply(True)

    def listing(self, call: RestCall) -> Reply:
        """`crm.<type>.list {filter, order, select, start}` → 50 rows, total, next."""
        known = {f.upper for f in self.store.fields(self.kind)}

        def resolve(name: str) -> str | None:
            # Decision: an unknown filter or order field is ignored by the old API.
            return name.upper() if name.upper() in known else None

        rows = [r for r in self.store.all(self.kind) if row_matches(r, call.get("filter"), resolve)]
        rows = sort_rows(rows, call.get("order"), resolve)
        chosen = page(rows, call.start)
        names = self.selection(php_list(call.get("select")))
        chosen.result = [self.render(row, names) for row in chosen.result]
        return chosen

    def selection(self, select: list[Any]) -> set[str]:
        """The fields a list selects (§2.1 masks); ID always."""
        fields = self.store.fields(self.kind)
        standard = {f.upper for f in fields if f.kind != "multi" and not f.upper.startswith("UF_")}
        if self.kind is CONTACT:
            standard |= {f"HAS_{multi}" for multi in MULTIFIELDS}
        names = {"ID"}
        for item in select or ["*"]:
            text = str(item).upper()
            if text == "*":
                names |= standard
            elif text == "UF_*":
                names |= {f.upper for f in fields if f.upper.startswith("UF_")}
            else:
                names.add(text)
        return names

    def render(self, row: Json, names: set[str] | None) -> Json:
        """A row as the old API writes it; `names` None means every field."""
        out: Json = {}
        for field in self.store.fields(self.kind):
            if (names is not None and field.upper not in names) or field.upper == "CONTACT_IDS":
                continue
            value = row.get(field.upper)
            if field.kind == "multi":
                if value:
                    out[field.upper] = [_legacy_multi(item) for item in value]
                continue
            out[field.upper] = legacy_value(field, value)
        for multi in MULTIFIELDS if self.kind is CONTACT else ():
            if names is None or f"HAS_{multi}" in names:
                out[f"HAS_{multi}"] = "Y" if row.get(multi) else "N"
        return out

    def userfield_add(self, call: RestCall) -> Reply:
        """`crm.<type>.userfield.add {fields}` → the field's id (§2.4)."""
        fields = call.get("fields")
        if not isinstance(fields, Mapping):
            raise RestError(400, "ERROR_CORE", "The parameter 'fields' must be array.")
        upper = {str(key).upper(): value for key, value in fields.items()}
        return Reply(self.store.add_userfield(self.kind, upper))

    def userfield_list(self, call: RestCall) -> Reply:
        """`crm.<type>.userfield.list {order, filter}` → every user field matching."""
        specs = list(self.store.userfields[self.kind.name].values())

        def resolve(name: str) -> str | None:
            return name.upper()

        found = [s for s in specs if row_matches(s, call.get("filter"), resolve)]
        return Reply(sort_rows(found, call.get("order"), resolve), total=len(found))

    def userfield_get(self, call: RestCall) -> Reply:
        """`crm.<type>.userfield.get {id}`."""
        wanted = str(php_int(call.get("id")))
        for spec in self.store.userfields[self.kind.name].values():
            if spec["ID"] == wanted:
                return Reply(spec)
        raise RestError(400, "ERROR_NOT_FOUND", "Not found")


def _legacy_multi(item: Json) -> Json:
    return {
        "ID": str(item["ID"]),
        "VALUE_TYPE": item["VALUE_TYPE"],
        "VALUE": item["VALUE"],
        "TYPE_ID": item["TYPE_ID"],
    }


def find_by_comm(store: CrmStore, call: RestCall) -> Reply:
    """`crm.duplicate.findbycomm {type, values, entity_type}` → `{CONTACT: [ids]}` (§2.1).

    Only matched types are keys, `[]` when nothing matched. The portal holds contacts only,
    so LEAD and COMPANY never match. Phones compare normalised (see `normalize_phone`).
    """
    comm_type = str(call.get("type") or "").upper()
    if not comm_type:
        raise RestError(400, "Communication type is not defined", "Parameter 'type' is required.")
    if comm_type not in ("PHONE", "EMAIL"):
        text = f"Communication type '{comm_type}' is not supported in current context"
        raise RestError(400, text, text)
    values = [str(v) for v in php_list(call.get("values")) if str(v).strip()]
    if not values:
        text = "Communication values is not defined"
        raise RestError(400, text, "Parameter 'values' is required.")
    if len(values) > FINDBYCOMM_MAX:
        # Decision: the reference gives the cap (≤20) but not the answer past it.
        raise RestError(400, "INVALID_ARG_VALUE", f"At most {FINDBYCOMM_MAX} values are allowed.")
    entity_type = str(call.get("entity_type") or "").upper()
    found: Json = {}
    if entity_type in ("", "CONTACT"):
        ids = store.find_by_comm(CONTACT, comm_type, values)
        if ids:
            found["CONTACT"] = ids
    return Reply(found or [])
