"""Wire rules of the Bitrix24 emulator: parameters, errors, the envelope, paging, JSON.

bitrix.md §1.2 (query, form with PHP bracket keys, JSON bodies), §1.3 (the `{result, time,
[total], [next]}` envelope and `{error, error_description}`), §1.4 (50-row pages), §1.7
(error codes and HTTP statuses). Choices the reference leaves open are marked "Decision:"
here and in the other emulator modules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl

Json = dict[str, Any]
Clock = Callable[[], float]  # UNIX seconds, as time.time
PAGE = 50  # §1.4: list pages are fixed at 50 rows
# Decision: the portal lives in Moscow time; every date is written with this offset (§1.3).
PORTAL_TZ = timezone(timedelta(hours=3))
_BRACKETS = re.compile(r"\[([^\]]*)\]")


class RestError(Exception):
    """A Bitrix error answer: HTTP status and `{error, error_description}` (§1.3, §1.7)."""

    def __init__(self, status: int, code: str | int, description: str) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description

    def body(self) -> Json:
        """The §1.3 error envelope."""
        return {"error": self.code, "error_description": self.description}


# The system errors of any method (§1.7; texts from b24restdocs `_includes/system-errors.md`).
SYSTEM_ERRORS: dict[str, tuple[int, str]] = {
    "QUERY_LIMIT_EXCEEDED": (503, "Too many requests"),
    "OPERATION_TIME_LIMIT": (429, "Method is blocked due to operation time limit."),
    "OVERLOAD_LIMIT": (503, "REST API is blocked due to overload"),
    "INTERNAL_SERVER_ERROR": (500, "Internal server error"),
    "ERROR_UNEXPECTED_ANSWER": (500, "Server returned an unexpected response"),
    "NO_AUTH_FOUND": (401, "Wrong authorization data"),
    "expired_token": (401, "The access token provided has expired."),
    "invalid_token": (401, "The access token provided is invalid."),
    "INVALID_CREDENTIALS": (403, "Invalid request credentials"),
    "insufficient_scope": (
        403,
        "The request requires higher privileges than provided by the webhook token",
    ),
    "ACCESS_DENIED": (403, "Access denied!"),
    "user_access_error": (403, "The user does not have access to the application"),
    "INVALID_REQUEST": (400, "Https required."),
    "PORTAL_DELETED": (500, "Portal was deleted"),
}


def system_error(code: str) -> RestError:
    """One of the §1.7 system errors with its status and text."""
    status, text = SYSTEM_ERRORS[code]
    return RestError(status, code, text)


def method_not_found() -> RestError:
    """404 ERROR_METHOD_NOT_FOUND, as CRestServer answers an unknown method (§1.7)."""
    return RestError(404, "ERROR_METHOD_NOT_FOUND", "Method not found!")


def access_denied(detail: str = "") -> RestError:
    """403 ACCESS_DENIED; the rest module appends a detail to "Access denied!"."""
    return RestError(403, "ACCESS_DENIED", "Access denied!" + (f" {detail}" if detail else ""))


def argument_error(description: str) -> RestError:
    """400 ERROR_ARGUMENT: a missing or bad argument of a rest-module method."""
    return RestError(400, "ERROR_ARGUMENT", description)


@dataclass
class Reply:
    """What a method answers: `result` plus the list methods' `total` and `next` (§1.3)."""

    result: Any
    total: int | None = None
    next: int | None = None


def parse_php_pairs(pairs: Iterable[tuple[str, str]]) -> Json:
    """`filter[>ID]=1&select[]=ID` as nested parameters, the way PHP's parse_str does.

    Arrays keyed 0..n-1 (`select[]=`, `values[0]=`) become lists, as json_encode shows them.
    """
    root: Json = {}
    for name, value in pairs:
        head, bracket, rest = name.partition("[")
        keys = [head, *_BRACKETS.findall(bracket + rest)] if bracket else [head]
        node = root
        for key in keys[:-1]:
            slot = key if key != "" else str(len(node))
            child = node.get(slot)
            if not isinstance(child, dict):
                child = node[slot] = {}  # `a=1&a[b]=2`: the brackets win, as in PHP
            node = child
        node[keys[-1] if keys[-1] != "" else str(len(node))] = value
    return _listify(root)


def _listify(node: Json) -> Json:
    for key, value in node.items():
        if isinstance(value, dict):
            inner = _listify(value)
            node[key] = php_array(inner) if inner else inner
    return node


def parse_query(query: str) -> Json:
    """A query string (`a=1&b[c]=2`) as nested parameters; `+` is a space (§1.2)."""
    return parse_php_pairs(parse_qsl(query, keep_blank_values=True))


def php_list(value: Any) -> list[Any]:
    """A PHP array as a list: a list, a dict keyed 0..n (from `x[0]=`), or a lone value."""
    if value is None or value == "":
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def php_array(mapping: Mapping[str, Any]) -> Any:
    """A PHP array as json_encode writes it: keys 0..n-1 (or none) make a JSON list (§1.5)."""
    keys = list(mapping)
    if keys == [str(index) for index in range(len(keys))]:
        return list(mapping.values())
    return dict(mapping)


def php_int(value: Any, default: int = 0) -> int:
    """PHP's intval: leading digits of a text, 0 when there are none."""
    if value is None:
        return default
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    found = re.match(r"\s*([+-]?\d+)", str(value))
    return int(found.group(1)) if found else 0


def php_true(value: Any) -> bool:
    """PHP truthiness of a parameter: "", "0", 0, false, null and [] are false."""
    return value not in (None, "", "0", 0, False, [], {}, "N", "n", "false")


def decimal_of(value: Any) -> Decimal | None:
    """A number from a request, or None when it is not one."""
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = Decimal(str(value).strip().replace(",", "."))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def iso(moment: float) -> str:
    """UNIX seconds as the portal writes dates: `2025-06-23T16:07:40+03:00` (§1.3)."""
    return datetime.fromtimestamp(int(moment), PORTAL_TZ).isoformat()


def time_block(started: float, finished: float) -> Json:
    """The `time` member of every answer (§1.3); `operating` stays 0 (no CPU is spent)."""
    return {
        "start": started,
        "finish": finished,
        "duration": finished - started,
        "processing": finished - started,
        "date_start": iso(started),
        "date_finish": iso(finished),
        # §1.6: cloud answers carry the method's budget window; nothing is ever used here.
        "operating_reset_at": int(started) + 600,
        "operating": 0,
    }


def page(rows: list[Any], start: int) -> Reply:
    """One 50-row page at `start` with `total`/`next` (§1.4); -1 skips the count (§6)."""
    if start < 0:
        # §1.4/§6 (settings/performance/huge-data.md): `start=-1` answers `total: 0`, no `next`.
        return Reply(rows[:PAGE], total=0)
    chunk = rows[start : start + PAGE]
    more = start + PAGE < len(rows)
    return Reply(chunk, total=len(rows), next=start + PAGE if more else None)


def envelope(reply: Reply, started: float, finished: float) -> Json:
    """The success envelope `{result, [next], [total], time}` (§1.3)."""
    body: Json = {"result": reply.result}
    if reply.next is not None:
        body["next"] = reply.next
    if reply.total is not None:
        body["total"] = reply.total
    body["time"] = time_block(started, finished)
    return body


def flatten_form(prefix: str, value: Any) -> list[tuple[str, str]]:
    """A nested value as PHP bracket form pairs: `data[FIELDS][ID]=7` (§3.2)."""
    if isinstance(value, Mapping):
        return [pair for k, v in value.items() for pair in flatten_form(f"{prefix}[{k}]", v)]
    if isinstance(value, list):
        return [pair for i, v in enumerate(value) for pair in flatten_form(f"{prefix}[{i}]", v)]
    if value is None:
        return [(prefix, "")]
    if isinstance(value, bool):
        return [(prefix, "1" if value else "")]
    return [(prefix, str(value))]


def digits(text: Any) -> str:
    """Only the digits of a phone number."""
    return re.sub(r"\D", "", str(text or ""))


def normalize_phone(text: Any) -> str:
    """Decision (§2.1 "normalises phones … (unconfirmed)", §7): compare digits without the
    extension; an 11-digit 8… is the Russian trunk form of +7…, a bare 10-digit number is +7."""
    main = re.split(r"(?i)\s*(?:ext\.?|доб\.?|x|#)\s*\d+\s*$", str(text or ""))[0]
    number = digits(main)
    if len(number) == 11 and number.startswith("8"):
        number = "7" + number[1:]
    elif len(number) == 10:
        number = "7" + number
    return number
