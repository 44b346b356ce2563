"""The emulated portal's CRM: contacts and deals, their user fields and multifields.

Rows are kept under the old UPPER_CASE names (bitrix.md §2.1/§2.2); crm_legacy.py
and crm_items.py render them for `crm.contact.*`/`crm.deal.*` and `crm.item.*`.
Every add, update and delete reports `ONCRM<TYPE>ADD|UPDATE|DELETE` with `{FIELDS: {ID}}`
to the event hub (§2.2, §3.2). No optimistic locking: the last writer wins (§2.4).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from connectors.bitrix.emulator.auth import Caller
from connectors.bitrix.emulator.fields import (
    CONTACT,
    DEAL,
    Field,
    FieldKind,
    coerce,
)
from connectors.bitrix.emulator.wire import Clock, Json, RestError, iso, normalize_phone, php_list

Emit = Callable[[str, Json, Caller], None]  # (event name, event data, who made the change)
UF_PREFIX = "UF_CRM_"
UF_MAX_NAME = 50  # §2.4: at most 50 characters with the prefix, else ERROR_CORE
UF_TYPES = ("string", "integer", "double", "boolean", "date", "datetime", "money", "enumeration")


class FieldError(ValueError):
    """A written value the field cannot hold; `field` names it as the caller spelled it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class CrmStore:
    """Contacts and deals of one portal, with user fields, for every CRM method family."""

    def __init__(self, clock: Clock, emit: Emit) -> None:
        self._clock, self._emit = clock, emit
        self.rows: dict[str, dict[int, Json]] = {CONTACT.name: {}, DEAL.name: {}}
        self.userfields: dict[str, dict[str, Json]] = {CONTACT.name: {}, DEAL.name: {}}
        self._next = {CONTACT.name: 1, DEAL.name: 1, "multi": 1, "uf": 1}

    # ---- fields ------------------------------------------------------------------------

    def fields(self, kind: FieldKind) -> list[Field]:
        """Standard fields, then the user fields created so far."""
        custom = [
            Field(name, "uf:" + str(spec["USER_TYPE_ID"]))
            for name, spec in self.userfields[kind.name].items()
        ]
        return [*kind.fields, *custom]

    def field(self, kind: FieldKind, upper: str) -> Field | None:
        """The field stored as `upper` (standard or user field)."""
        return next((f for f in self.fields(kind) if f.upper == upper), None)

    def add_userfield(self, kind: FieldKind, fields: Mapping[str, Any]) -> int:
        """`crm.<type>.userfield.add` (§2.4): the `UF_CRM_` prefix is added when missing."""
        raw = str(fields.get("FIELD_NAME") or "").strip().upper()
        type_id = str(fields.get("USER_TYPE_ID") or "").strip().lower()
        if not raw or not type_id:
            raise RestError(400, "ERROR_CORE", "FIELD_NAME and USER_TYPE_ID are required.")
        name = raw if raw.startswith(UF_PREFIX) else UF_PREFIX + raw.removeprefix("UF_")
        if len(name) > UF_MAX_NAME:
            raise RestError(400, "ERROR_CORE", f"Field name {name} is too long.")
        if type_id not in UF_TYPES:
            # Decision: the emulator knows the common types only; others are refused.
            raise RestError(400, "ERROR_CORE", f"User type {type_id} is not supported.")
        if name in self.userfields[kind.name]:
            raise RestError(400, "ERROR_CORE", f"Field {name} already exists.")
        number = self._take("uf")
        label = fields.get("LABEL") or fields.get("EDIT_FORM_LABEL") or name
        self.userfields[kind.name][name] = {
            "ID": str(number),
            "ENTITY_ID": kind.uf_entity,
            "FIELD_NAME": name,
            "USER_TYPE_ID": type_id,
            "XML_ID": fields.get("XML_ID"),
            "SORT": str(fields.get("SORT") or 100),
            "MULTIPLE": str(fields.get("MULTIPLE") or "N"),
            "MANDATORY": str(fields.get("MANDATORY") or "N"),
            "SHOW_FILTER": str(fields.get("SHOW_FILTER") or "N"),
            "SHOW_IN_LIST": str(fields.get("SHOW_IN_LIST") or "Y"),
            "EDIT_IN_LIST": str(fields.get("EDIT_IN_LIST") or "Y"),
            "IS_SEARCHABLE": str(fields.get("IS_SEARCHABLE") or "N"),
            "SETTINGS": fields.get("SETTINGS") or {},
            "EDIT_FORM_LABEL": label,
            "LIST_COLUMN_LABEL": fields.get("LIST_COLUMN_LABEL") or label,
        }
        return number

    # ---- rows --------------------------------------------------------------------------

    def get(self, kind: FieldKind, entity_id: Any) -> Json | None:
        """The stored row, or None."""
        try:
            return self.rows[kind.name].get(int(entity_id))
        except (TypeError, ValueError):
            return None

    def all(self, kind: FieldKind) -> list[Json]:
        """Every row of `kind`."""
        return list(self.rows[kind.name].values())

    def add(self, kind: FieldKind, values: Mapping[str, Any], caller: Caller) -> Json:
        """A new row from stored-name values; FieldError on a bad value."""
        number = self._take(kind.name)
        now = iso(self._clock())
        row: Json = {
            "ID": number,
            "DATE_CREATE": now,
            "DATE_MODIFY": now,
            "CREATED_BY_ID": caller.user_id,
            "MODIFY_BY_ID": caller.user_id,
            "ASSIGNED_BY_ID": caller.user_id,
            "OPENED": "Y",
        }
        row |= _DEFAULTS[kind.name]
        self._write(kind, row, values)
        if kind is DEAL:
            if not row.get("TITLE"):
                row["TITLE"] = f"Deal #{number}"  # crm-item-add.md: `{entityTypeName} #{id}`
            category = row.get("CATEGORY_ID") or 0
            if not row.get("STAGE_ID"):
                row["STAGE_ID"] = "NEW" if category == 0 else f"C{category}:NEW"
        self.rows[kind.name][number] = row
        self._emit(f"{kind.event_prefix}ADD", {"FIELDS": {"ID": number}}, caller)
        return row

    def update(self, kind: FieldKind, row: Json, values: Mapping[str, Any], caller: Caller) -> Json:
        """Apply stored-name values to `row` (only the fields given change)."""
        draft = copy.deepcopy(row)
        self._write(kind, draft, values)
        draft["DATE_MODIFY"] = iso(self._clock())
        draft["MODIFY_BY_ID"] = caller.user_id
        row.clear()
        row.update(draft)
        self._emit(f"{kind.event_prefix}UPDATE", {"FIELDS": {"ID": row["ID"]}}, caller)
        return row

    def delete(self, kind: FieldKind, row: Json, caller: Caller) -> None:
        """Remove `row`."""
        del self.rows[kind.name][row["ID"]]
        self._emit(f"{kind.event_prefix}DELETE", {"FIELDS": {"ID": row["ID"]}}, caller)

    def find_by_comm(self, kind: FieldKind, comm_type: str, values: list[str]) -> list[int]:
        """Ids of rows holding one of `values` in PHONE or EMAIL (§2.1 findbycomm)."""

        def key(have: Any) -> str:
            if comm_type == "PHONE":
                return normalize_phone(have)
            return str(have).strip().lower()

        wanted = {key(v) for v in values} - {""}
        return [
            row["ID"]
            for row in self.all(kind)
            if any(key(item.get("VALUE")) in wanted for item in row.get(comm_type) or [])
        ]

    def _take(self, counter: str) -> int:
        self._next[counter] += 1
        return self._next[counter] - 1

    def _write(self, kind: FieldKind, row: Json, values: Mapping[str, Any]) -> None:
        for upper, value in values.items():
            field = self.field(kind, upper)
            if field is None or field.readonly:
                continue  # crm-item-add.md: "An incorrect field in fields will be ignored."
            if field.kind == "multi":
                row[upper] = self._merge_multi(upper, row.get(upper) or [], value)
                continue
            try:
                row[upper] = coerce(field, value)
            except ValueError as exc:
                raise FieldError(upper, str(exc)) from None
        if kind is DEAL and "CONTACT_IDS" in values and row.get("CONTACT_IDS"):
            row["CONTACT_ID"] = row["CONTACT_IDS"][0]
        elif kind is DEAL and "CONTACT_ID" in values and row.get("CONTACT_ID"):
            row["CONTACT_IDS"] = [row["CONTACT_ID"], *(row.get("CONTACT_IDS") or [])[1:]]

    def _merge_multi(self, type_id: str, current: list[Json], given: Any) -> list[Json]:
        """§2.1 multifields: `ID`+VALUE changes, `ID`+DELETE=Y or empty VALUE deletes,
        no `ID` adds."""
        items = [dict(item) for item in current]
        for given_entry in php_list(given):
            entry = given_entry if isinstance(given_entry, Mapping) else {"VALUE": given_entry}
            value = entry.get("VALUE")
            known = next((i for i in items if str(i["ID"]) == str(entry.get("ID"))), None)
            if entry.get("ID") not in (None, "") and known is not None:
                if str(entry.get("DELETE", "N")).upper() == "Y" or value in (None, ""):
                    items.remove(known)
                else:
                    known["VALUE"] = str(value)
                    known["VALUE_TYPE"] = str(entry.get("VALUE_TYPE") or known["VALUE_TYPE"])
            elif value not in (None, ""):
                items.append(
                    {
                        "ID": self._take("multi"),
                        "VALUE_TYPE": str(entry.get("VALUE_TYPE") or "WORK"),
                        "VALUE": str(value),
                        "TYPE_ID": type_id,
                    }
                )
        return items


_DEFAULTS: dict[str, Json] = {
    # crm-item-add.md defaults: first type/source/stage, the general funnel (category 0).
    CONTACT.name: {"TYPE_ID": "CLIENT", "SOURCE_ID": "CALL", "EXPORT": "Y"},
    DEAL.name: {
        "TYPE_ID": "SALE",
        "SOURCE_ID": "CALL",
        "CATEGORY_ID": 0,
        "CURRENCY_ID": "RUB",
        "OPPORTUNITY": None,
        "IS_MANUAL_OPPORTUNITY": "N",
        "CLOSED": "N",
        "CONTACT_IDS": [],
    },
}
