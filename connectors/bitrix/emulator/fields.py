"""CRM field definitions of the emulator and the list machinery: names, types, filters, order.

bitrix.md §1.3: old `crm.*` methods speak UPPER_CASE with string values, `crm.item.*`
camelCase with numbers; §2.3: `UF_CRM_3_DIGIT` → `ufCrm3Digit` (original names with
`useOriginalUfNames=Y`); crm-item-list.md: filter prefixes `>=`, `>`, `<=`, `<`, `@`, `!@`,
`%`, `=%`, `%=`, `!%`, `!=%`, `!%=`, `=`, `!=`, `!` and `logic: OR` groups.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connectors._emulator.web import json_number
from connectors.bitrix.emulator.wire import Json, decimal_of, php_list

# Longest first, so `!=%` is not read as `!=` + `%…`.
OPERATORS = ("!=%", "!%=", ">=", "<=", "=%", "%=", "!@", "!=", "!%", ">", "<", "@", "%", "=", "!")
NEGATED = {"!=%", "!%=", "!@", "!=", "!%", "!"}
MULTIFIELDS = ("PHONE", "EMAIL")
# crm.item names that are not the camelCase of the old name (crm-item-add.md response).
CAMEL_OVERRIDES = {
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
}


@dataclass(frozen=True)
class Field:
    """One CRM field: its old UPPER_CASE name, value kind and whether clients may write it."""

    upper: str
    kind: str  # int | str | money | yn | date | ints | multi | uf:<USER_TYPE_ID>
    readonly: bool = False

    @property
    def camel(self) -> str:
        """The crm.item name."""
        return camel_of(self.upper)


@dataclass(frozen=True)
class FieldKind:
    """A CRM entity type the emulator keeps (§2.3: 2 = deal, 3 = contact)."""

    name: str
    entity_type_id: int
    type_name: str  # CONTACT | DEAL, as crm.duplicate.findbycomm answers
    event_prefix: str  # ONCRMCONTACT → ONCRMCONTACTADD / UPDATE / DELETE (§2.2)
    uf_entity: str  # CRM_CONTACT, the user fields' ENTITY_ID
    fields: tuple[Field, ...]

    def field(self, upper: str) -> Field | None:
        """The standard field named `upper`."""
        return next((f for f in self.fields if f.upper == upper), None)


def _fields(*specs: str) -> tuple[Field, ...]:
    """`NAME:kind[:ro]` specs as Fields."""
    out = []
    for spec in specs:
        name, kind, *ro = spec.split(":")
        out.append(Field(name, kind, bool(ro)))
    return tuple(out)


_COMMON = (
    "ID:int:ro",
    "DATE_CREATE:date:ro",
    "DATE_MODIFY:date:ro",
    "CREATED_BY_ID:int:ro",
    "MODIFY_BY_ID:int:ro",
    "ASSIGNED_BY_ID:int",
    "OPENED:yn",
    "COMMENTS:str",
    "SOURCE_ID:str",
    "SOURCE_DESCRIPTION:str",
    "TYPE_ID:str",
    "COMPANY_ID:int",
    "ORIGINATOR_ID:str",
    "ORIGIN_ID:str",
)
CONTACT = FieldKind(
    "contact",
    3,
    "CONTACT",
    "ONCRMCONTACT",
    "CRM_CONTACT",
    _fields(
        *_COMMON,
        "HONORIFIC:str",
        "NAME:str",
        "SECOND_NAME:str",
        "LAST_NAME:str",
        "BIRTHDATE:str",
        "POST:str",
        "EXPORT:yn",
        "PHONE:multi",
        "EMAIL:multi",
    ),
)
DEAL = FieldKind(
    "deal",
    2,
    "DEAL",
    "ONCRMDEAL",
    "CRM_DEAL",
    _fields(
        *_COMMON,
        "TITLE:str",
        "CATEGORY_ID:int",
        "STAGE_ID:str",
        "CURRENCY_ID:str",
        "OPPORTUNITY:money",
        "IS_MANUAL_OPPORTUNITY:yn",
        "TAX_VALUE:money",
        "CONTACT_ID:int",
        "CONTACT_IDS:ints",
        "BEGINDATE:str",
        "CLOSEDATE:str",
        "CLOSED:yn",
        "PROBABILITY:int",
        "ADDITIONAL_INFO:str",
    ),
)
KINDS = {CONTACT.entity_type_id: CONTACT, DEAL.entity_type_id: DEAL}


def camel_of(upper: str) -> str:
    """crm.item's name of an old field (§2.3; `ufCrm_1721…` and `ufCrm44_1721…` per the docs)."""
    if upper in CAMEL_OVERRIDES:
        return CAMEL_OVERRIDES[upper]
    if upper.startswith("UF_CRM_"):
        rest = upper[len("UF_CRM_") :]
        if rest.isdigit():
            return f"ufCrm_{rest}"
        smart = re.fullmatch(r"(\d+)_(\d+)", rest)
        if smart:
            return f"ufCrm{smart.group(1)}_{smart.group(2)}"
        return "ufCrm" + "".join(part.capitalize() for part in rest.split("_"))
    head, *tail = upper.lower().split("_")
    return head + "".join(part.capitalize() for part in tail)


def coerce(field: Field, value: Any) -> Any:
    """A written value as the portal stores it; ValueError when it cannot be one."""
    kind = field.kind.removeprefix("uf:")
    if value is None or (value == "" and kind not in ("str", "string")):
        return None
    if kind in ("int", "integer", "employee", "crm_status"):
        if kind == "crm_status":
            return str(value)
        number = decimal_of(value)
        if number is None or number != number.to_integral_value():
            raise ValueError(f"{value!r} is not an integer")
        return int(number)
    if kind in ("money", "double"):
        number = decimal_of(value)
        if number is None:
            raise ValueError(f"{value!r} is not a number")
        return number
    if kind in ("yn", "boolean"):
        truthy = value is True or str(value).upper() in ("Y", "1", "TRUE")
        return ("Y" if truthy else "N") if kind == "yn" else truthy
    if kind == "ints":
        return [coerce(Field(field.upper, "int"), item) for item in php_list(value)]
    return value if isinstance(value, list | dict) else str(value)


def legacy_value(field: Field, value: Any) -> Any:
    """A stored value as old crm.* methods write it: strings, PHP null (§1.3)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return f"{value:.2f}" if field.kind in ("money", "uf:money") else str(value)
    if isinstance(value, list):
        return [legacy_value(field, item) for item in value]
    return value if isinstance(value, dict) else str(value)


def item_value(field: Field, value: Any) -> Any:
    """A stored value as crm.item.* writes it: numbers as numbers (§1.3)."""
    if isinstance(value, Decimal):
        return json_number(value)
    return value


def split_key(key: str) -> tuple[str, str]:
    """`>=opportunity` → (`>=`, `opportunity`); no prefix means `=`."""
    for op in OPERATORS:
        if key.startswith(op) and len(key) > len(op):
            return op, key[len(op) :]
    return "=", key


Resolve = Callable[[str], str | None]  # a filter's field name → the stored name, or None


def php_map(value: Any) -> Any:
    """A filter given as PHP `filter[0][…]` arrives as a list; keyed by position it is the
    same PHP array as `{"0": …}`."""
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return value


def row_matches(row: Mapping[str, Any], flt: Any, resolve: Resolve) -> bool:
    """Whether `row` passes a Bitrix filter (all conditions, or any with `logic: OR`)."""
    flt = php_map(flt)
    if not isinstance(flt, Mapping):
        return True
    use_or = str(flt.get("logic", flt.get("LOGIC", "AND"))).upper() == "OR"
    outcomes = []
    for key, want in flt.items():
        if str(key).lower() == "logic":
            continue
        if str(key).isdigit() and isinstance(php_map(want), Mapping):
            outcomes.append(row_matches(row, want, resolve))
            continue
        op, name = split_key(str(key))
        stored = resolve(name)
        if stored is None:
            continue  # ignored here; strict callers check the names first (check_filter)
        outcomes.append(_compare(op, _values(row.get(stored)), want))
    if not outcomes:
        return True
    return any(outcomes) if use_or else all(outcomes)


def filter_names(flt: Any) -> list[str]:
    """Every field name a filter uses, nested groups included."""
    flt = php_map(flt)
    if not isinstance(flt, Mapping):
        return []
    names: list[str] = []
    for key, want in flt.items():
        if str(key).lower() == "logic":
            continue
        if str(key).isdigit() and isinstance(php_map(want), Mapping):
            names += filter_names(want)
        else:
            names.append(split_key(str(key))[1])
    return names


def _values(stored: Any) -> list[Any]:
    """What a filter compares: a multifield's VALUEs, a list's items, or the one value."""
    if isinstance(stored, list):
        return [item.get("VALUE") if isinstance(item, dict) else item for item in stored]
    return [stored]


def _compare(op: str, haves: list[Any], want: Any) -> bool:
    positive = op.lstrip("!") or "="
    hit = any(_one(positive, have, want) for have in haves)
    return not hit if op in NEGATED else hit


def _one(op: str, have: Any, want: Any) -> bool:
    if op in ("@", "=") and isinstance(want, list | dict):
        return any(_equal(have, item) for item in php_list(want))
    if op == "=":
        return _equal(have, want)
    if op in ("%", "=%", "%="):
        if have is None:
            return False
        text, pattern = str(have).lower(), str(want).lower()
        if op == "%":
            return pattern in text
        regex = ".*".join(re.escape(part) for part in pattern.split("%"))
        return re.fullmatch(regex, text, re.DOTALL) is not None
    if op in (">", ">=", "<", "<="):
        return _ordered(op, have, want)
    return False


def _equal(have: Any, want: Any) -> bool:
    if have is None:
        return want in (None, "", False)
    left, right = decimal_of(have), decimal_of(want)
    if left is not None and right is not None and not isinstance(have, str | bool):
        return left == right
    if isinstance(have, bool):
        return have == (str(want).upper() in ("Y", "1", "TRUE"))
    return str(have) == str(want)


def _ordered(op: str, have: Any, want: Any) -> bool:
    if have is None:
        return False
    left, right = decimal_of(have), decimal_of(want)
    pair: tuple[Any, Any] = (
        (left, right)
        if left is not None and right is not None
        else (
            str(have),
            str(want),
        )
    )
    a, b = pair
    return bool({">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op])


def sort_rows(rows: list[Json], order: Any, resolve: Resolve) -> list[Json]:
    """Rows in `order` ({field: ASC|DESC}, applied right to left); default ID ascending.

    Decision: without an order Bitrix does not promise one (fast_bitrix24 adds `ID ASC` for
    that reason); the emulator answers by ID so pages never overlap.
    """
    ordered = sorted(rows, key=lambda row: int(row["ID"]))
    if not isinstance(order, Mapping):
        return ordered
    for name, direction in reversed(list(order.items())):
        stored = resolve(str(name))
        if stored is not None:
            ordered.sort(key=_sorter(stored), reverse=str(direction).upper() == "DESC")
    return ordered


def _sorter(stored: str) -> Callable[[Json], tuple[int, Any]]:
    return lambda row: _sort_key(row.get(stored))


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    number = decimal_of(value) if not isinstance(value, list | dict | bool) else None
    return (1, number) if number is not None else (2, str(value))
