"""The emulator's wire rules shared by every resource: error envelope, parameters, paging.

retailcrm-api.md §1.3 (JSON strings inside form fields, PHP-style brackets), §1.4 (the
`success/errorMsg/errors` envelope), §1.7 (`pagination`). Choices the reference leaves open
are marked "Decision:" here and in the other emulator modules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

Json = dict[str, Any]
Clock = Callable[[], datetime]
DATETIME = "%Y-%m-%d %H:%M:%S"  # §1.3: no offset, account-local time
PAGE_LIMITS = (20, 50, 100)  # §1.7: 250 is [unconfirmed] outside the loyalty feed
UPLOAD_MAX = 50  # §1.6 [unconfirmed]: "treat 50 as the hard cap"
ENTITY_FORMAT = "Errors in the entity format"  # §1.4 validation errorMsg
INPUT_PARAMS = "Errors in the input parameters"  # §1.4 bad query/form parameters
T = TypeVar("T")


class ApiError(Exception):
    """A RetailCRM error answer: HTTP status, errorMsg and errors (object or list, §1.4)."""

    def __init__(self, status: int, message: str, errors: Any = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.extra = status, message, errors, extra

    def body(self) -> Json:
        """The §1.4 failure envelope."""
        body: Json = {"success": False, "errorMsg": self.message}
        if self.errors is not None:
            body["errors"] = self.errors
        return body | self.extra


def invalid(errors: Mapping[str, str]) -> ApiError:
    """400 with `errors` as an object keyed by field (§1.4)."""
    return ApiError(400, ENTITY_FORMAT, dict(errors))


def money(value: Any, name: str) -> Decimal:
    """A number from a request; 400 naming the field when it is not one."""
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise invalid({name: "This value should be a valid number."}) from None
    if not number.is_finite() or isinstance(value, bool):
        raise invalid({name: "This value should be a valid number."})
    return number


def as_int(value: Any, name: str, default: int | None = None) -> int:
    """An integer parameter; 400 naming it when it is not one."""
    if value is None and default is not None:
        return default
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]{1,18}", value.strip()):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ApiError(400, INPUT_PARAMS, {name: "This value should be of type integer."})


def json_field(params: Mapping[str, Any], name: str, kind: type = dict) -> Any:
    """A form field holding a JSON string (§1.3), decoded and type-checked."""
    raw = params.get(name)
    if raw is None or raw == "":
        raise ApiError(400, f"Parameter '{name}' is missing")
    try:
        value = json.loads(raw, parse_float=Decimal) if isinstance(raw, str) else raw
    except ValueError:
        raise ApiError(400, INPUT_PARAMS, {name: "This value is not valid JSON."}) from None
    if not isinstance(value, kind):
        what = "an object" if kind is dict else "an array"
        raise ApiError(400, INPUT_PARAMS, {name: f"This value should be {what}."})
    return value


def filter_of(params: Mapping[str, Any]) -> Json:
    """`filter[...]` as a dict; the Python client's literal `filter=None` (§6.4) is no filter."""
    value = params.get("filter")
    if value in (None, "", "None"):
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, INPUT_PARAMS, {"filter": "This value should be of type array."})
    return value


def as_list(value: Any) -> list[Any]:
    """A PHP-style `x[]` parameter (or a lone `x=`) as a list."""
    if value is None:
        return []
    if isinstance(value, dict):
        return list(value.values())
    return value if isinstance(value, list) else [value]


def paginate(
    items: list[T], params: Mapping[str, Any], limits: tuple[int, ...] = PAGE_LIMITS
) -> tuple[list[T], Json]:
    """One page of `items` by `limit`/`page` and the §1.7 `pagination` block."""
    limit = as_int(params.get("limit"), "limit", 20)
    if limit not in limits:
        raise ApiError(
            400, INPUT_PARAMS, {"limit": "The value you selected is not a valid choice."}
        )
    page = as_int(params.get("page"), "page", 1)
    if page < 1:
        raise ApiError(400, INPUT_PARAMS, {"page": "This value should be 1 or more."})
    chunk = items[(page - 1) * limit : page * limit]
    pages = math.ceil(len(items) / limit)
    return chunk, {
        "limit": limit,
        "totalCount": len(items),
        "currentPage": page,
        "totalPageCount": pages,
    }


def digits(text: Any) -> str:
    """Only the digits of a phone number."""
    return re.sub(r"\D", "", str(text or ""))


def phone_matches(query: str, number: Any) -> bool:
    """Decision (§3.2/§9.4 [unconfirmed]): ≥10 digits compare the last ten (8… == +7…),
    shorter queries of ≥3 digits match as a substring of the digits."""
    have = digits(number)
    if len(query) >= 10:
        return have[-10:] == query[-10:]
    return len(query) >= 3 and query in have


def parse_brackets(pairs: Iterable[tuple[str, str]]) -> Json:
    """PHP-style `filter[ids][]=1&filter[sinceId]=5` pairs as nested dicts and lists (§1.3)."""
    root: Json = {}
    for name, value in pairs:
        head, _, rest = name.partition("[")
        keys = [head, *re.findall(r"\[([^\]]*)\]", "[" + rest)] if rest else [head]
        node: Any = root
        for depth, key in enumerate(keys):
            if depth == len(keys) - 1:
                _put(node, key, value)
                break
            empty: Json | list[Any] = [] if keys[depth + 1] == "" else {}
            child = _put(node, key, empty, keep=True)
            if not isinstance(child, dict | list):
                child = _put(node, key, empty)  # `a=1&a[b]=2`: the brackets win, as in PHP
            node = child
    return root


def _put(node: Json | list[Any], key: str, value: Any, keep: bool = False) -> Any:
    """Set (with keep: get or set) node[key]; in a list an empty key appends."""
    if isinstance(node, list):
        if key == "" or not keep or not node:
            node.append(value)
            return value
        return node[-1]
    if keep and key in node:
        return node[key]
    node[key] = value
    return value
