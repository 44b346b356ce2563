"""Running one method call, `batch`, and the portal's general methods.

bitrix.md §1.5 and the rest module's `CRestProvider::methodsBatch` (inferred from source):
`batch {halt, cmd}` runs up to 50 `"method?query"` commands with the batch's own auth; a
51st and later command fails with ERROR_BATCH_LENGTH_EXCEEDED, a nested `batch` with
ERROR_BATCH_METHOD_NOT_ALLOWED; `$result[cmd][FIELD]` (also `$next`, `$total`, `$time`,
`$error`) refers to earlier answers; the answer is always HTTP 200 with `result`,
`result_error`, `result_total`, `result_next`, `result_time`, PHP's empty maps as `[]`.
A batch is one HTTP request for the leaky bucket (§1.6); every command is one call.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from connectors.bitrix.emulator.auth import Caller, OAuthApp
from connectors.bitrix.emulator.calls import GLOBAL, Method, RestCall
from connectors.bitrix.emulator.limits import BitrixFaults
from connectors.bitrix.emulator.wire import (
    Clock,
    Json,
    Reply,
    RestError,
    envelope,
    iso,
    method_not_found,
    parse_query,
    php_array,
    php_list,
    php_true,
    system_error,
)

log = logging.getLogger("connectors.bitrix.emulator")
BATCH_MAX = 50  # §1.5
_REFERENCE = re.compile(r"\$(result|next|total|time|error)(\S*)", re.IGNORECASE)
_STEP = re.compile(r"\[([^\]]+)\]")
_MISSING = object()


class MethodDispatcher:
    """Checks scope and context, injects faults, runs the handler, writes the envelope."""

    def __init__(self, methods: dict[str, Method], faults: BitrixFaults, clock: Clock) -> None:
        self.methods, self.faults, self._clock = methods, faults, clock
        self.calls: dict[str, int] = {}  # every method call, batch commands included
        self.methods["batch"] = Method(GLOBAL, self._batch, batchable=False)

    def run(
        self, name: str, params: Json, caller: Caller, fault: str | None = None
    ) -> tuple[int, Json]:
        """Call `name`; the HTTP status and body of its answer."""
        started = self._clock()
        perf = time.perf_counter()
        try:
            method = self._allowed(name, caller, fault)
            self.calls[name] = self.calls.get(name, 0) + 1
            answer = method.handler(RestCall(name, params, caller))
        except RestError as exc:
            return exc.status, exc.body()
        except Exception:  # a request the emulator did not foresee: a 500 as PHP's
            log.exception("bitrix_emulator_error")
            error = system_error("INTERNAL_SERVER_ERROR")
            return error.status, error.body()
        finished = started + (time.perf_counter() - perf)
        return 200, envelope(answer, started, finished)

    def _allowed(self, name: str, caller: Caller, fault: str | None) -> Method:
        """The method, once the caller may call it now; RestError otherwise."""
        method = self.methods.get(name)
        if method is None:
            raise method_not_found()
        if method.scope != GLOBAL and method.scope not in caller.scopes:
            raise system_error("insufficient_scope")
        if method.app_only and not caller.is_app:
            # rest module AuthTypeException: the method needs the application context.
            text = "Current authorization type is denied for this method"
            raise RestError(403, "WRONG_AUTH_TYPE", text)
        if fault is not None:
            raise system_error(fault)
        return method

    def _batch(self, call: RestCall) -> Reply:
        halt = php_true(call.get("halt"))
        given = call.get("cmd")
        commands = (
            list(given.items()) if isinstance(given, Mapping) else list(enumerate(php_list(given)))
        )
        found: dict[str, dict[str, Any]] = {k: {} for k in ("result", "next", "total", "time")}
        found["error"] = {}
        for number, (key, text) in enumerate(commands):
            body = self._command(number, str(text), found, call.caller)
            name = str(key)
            if "error" in body:
                found["error"][name] = body
            else:
                found["result"][name] = body["result"]
                found["time"][name] = body["time"]
                for part in ("total", "next"):
                    if part in body:
                        found[part][name] = body[part]
            if "error" in body and halt:
                break
        return Reply(
            {
                "result": php_array(found["result"]),
                "result_error": php_array(found["error"]),
                "result_total": php_array(found["total"]),
                "result_next": php_array(found["next"]),
                "result_time": php_array(found["time"]),
            }
        )

    def _command(
        self, number: int, text: str, found: dict[str, dict[str, Any]], caller: Caller
    ) -> Json:
        """One command's answer body (inside a batch the status is not seen)."""
        if number >= BATCH_MAX:
            return RestError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded").body()
        name, _, query = text.partition("?")
        name = name.strip().lower()
        method = self.methods.get(name)
        if method is not None and not method.batchable:
            text = "Method is not allowed for batch usage"
            return RestError(405, "ERROR_BATCH_METHOD_NOT_ALLOWED", text).body()
        params = substitute(parse_query(query), found)
        params.pop("auth", None)  # the batch's own auth applies to every command
        share = self.faults.take(method=name, inner=True)
        return self.run(name, params, caller, share.error)[1]


def substitute(value: Any, found: Mapping[str, Mapping[str, Any]]) -> Any:
    """`$result[cmd][FIELD]` references replaced by earlier answers (CRestUtil, §1.5).

    A value that is exactly one reference takes the referenced value as is (a number, a
    list); inside longer text it is written as PHP would print it.
    """
    if isinstance(value, dict):
        return {k: substitute(v, found) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, found) for v in value]
    if not isinstance(value, str) or "$" not in value:
        return value
    text: Any = value
    for match in _REFERENCE.finditer(value):
        steps = _STEP.findall(match.group(2))
        if not steps:
            continue
        node: Any = found[match.group(1).lower()]
        for step in steps:
            nxt = _lookup(node, step)
            if nxt is _MISSING:
                break
            node = nxt
        if match.group(0) == value:
            return node
        text = str(text).replace(match.group(0), _php_text(node))
    return text


def _lookup(node: Any, key: str) -> Any:
    """PHP's `isset($node[$key]) ? $node[$key]`: null counts as missing."""
    if isinstance(node, Mapping):
        found = node.get(key, _MISSING)
    elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
        found = node[int(key)]
    else:
        return _MISSING
    return _MISSING if found is None else found


def _php_text(value: Any) -> str:
    if value is True:
        return "1"
    if value is None or value is False:
        return ""
    if isinstance(value, list | dict):
        return "Array"
    return str(value)


def general_methods(
    app: OAuthApp, clock: Clock, profile: Callable[[Caller], Json]
) -> dict[str, Method]:
    """`server.time`, `profile`, `app.info`, `scope`, `feature.get` (rest module)."""

    def app_info(call: RestCall) -> Reply:
        license_name = "ru_pro"  # Decision: a Professional cloud plan (offline events, §3.5)
        if not call.caller.is_app:
            return Reply({"SCOPE": sorted(call.caller.scopes), "LICENSE": license_name})
        return Reply(
            {
                "ID": 1,
                "CODE": app.client_id,
                "VERSION": 1,
                "STATUS": "L",
                "INSTALLED": True,
                "PAYMENT_EXPIRED": "N",
                "DAYS": None,
                "LANGUAGE_ID": "ru",
                "LICENSE": license_name,
            }
        )

    def feature(call: RestCall) -> Reply:
        code = str(call.get("CODE") or "")
        if not code:
            raise RestError(400, "CODE_EMPTY", "CODE can't be empty")
        return Reply({"value": "Y"})  # every feature of the Professional plan is on

    return {
        "server.time": Method(GLOBAL, lambda call: Reply(iso(clock()))),
        "profile": Method(GLOBAL, lambda call: Reply(profile(call.caller))),
        "app.info": Method(GLOBAL, app_info),
        "scope": Method(GLOBAL, lambda call: Reply(sorted(call.caller.scopes))),
        "feature.get": Method(GLOBAL, feature),
    }
