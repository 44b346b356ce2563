"""A described HTTP service's calls: arguments read from the URL template, the query and
the JSON body, as a 1C HTTP service's module reads them (``Запрос.ПараметрыURL``,
``Запрос.ПараметрыЗапроса``, ``ЧитатьJSON(Запрос.ПолучитьТелоКакСтроку())``, onec.md §2).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from aiohttp import web

from connectors.onec.emulator.described.description import DescribedOperation

JSON_TYPE = "application/json"


def read_body(data: bytes) -> dict[str, Any]:
    """The JSON object of a request body (empty: no body); ValueError when it is no JSON,
    TypeError when it is no object."""
    if not data.strip():
        return {}
    # Numbers as decimals: ЧитатьJSON reads them into Число, never a float.
    value = json.loads(data, parse_float=Decimal)
    if not isinstance(value, dict):
        raise TypeError("the body must be a JSON object")
    return value


def read_args(
    request: web.Request, body: dict[str, Any], operation: DescribedOperation
) -> dict[str, Any]:
    """The call's arguments under logical names; places that hold nothing are left out."""
    args: dict[str, Any] = {}
    for name, place in operation.inputs.items():
        where, _, key = place.partition(".")
        if where == "path":
            value: Any = request.match_info.get(key)
        elif where == "query":
            value = request.query.get(key)
        else:
            value = _dig(body, key.split("."))
        if value is not None:
            args[name] = value
    return args


def _dig(body: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(body, dict):
            return None
        body = body.get(key)
    return body


def json_answer(status: int, body: Any) -> web.Response:
    """A JSON answer as a 1C module writes it with ЗаписатьJSON: UTF-8, Cyrillic as is."""
    text = json.dumps(body, ensure_ascii=False, default=_plain)
    return web.Response(status=status, text=text, content_type=JSON_TYPE, charset="utf-8")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)
