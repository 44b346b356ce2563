"""The HTTP-service form of a 1C service (onec.md §2): any method, arguments in the path,
the query and a JSON body, a JSON answer read with exact decimals. Which route serves what is
the declaration's business (``declared/``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any
from urllib.parse import urlencode

from connectors.onec.wire import Answer, Wire


class HttpServiceClient:
    """An HTTP service (``<root>/<path>``, onec.md §2): any method, JSON both ways."""

    def __init__(
        self, *, url: str, username: str, password: str, timeout: float, pool_size: int = 4
    ) -> None:
        self._root = url.rstrip("/")
        self._wire = Wire(
            url=self._root,
            username=username,
            password=password,
            timeout=timeout,
            pool_size=pool_size,
        )

    @property
    def loaded(self) -> bool:
        """Always: there is nothing to load."""
        return True

    def load(self) -> str:
        """Nothing to load: the HTTP service has no schema (onec.md §2)."""
        return f"HTTP service at {self._root}"

    def publishes(self, operation: str) -> bool | None:
        """Unknown (None): without a schema only a call tells (a template it lacks is 404)."""
        return None

    async def request(
        self, method: str, path: str, query: Mapping[str, Any], body: Any
    ) -> tuple[int, Any, Answer]:
        """(status, the JSON answer or None when it is not JSON, the answer itself).

        A JSON number (ЗаписатьJSON writes an Число so) is read as a Decimal: amounts
        exact, never via a float; a UTF-8 BOM, which 1C may write, is fine.
        """
        url = f"{self._root}/{path.lstrip('/')}"
        if query:
            url += "?" + urlencode({k: _query_value(v) for k, v in query.items()})
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = dump_json(body).encode()
            headers["Content-Type"] = "application/json"
        answer = await self._wire.send(method, url, data, headers)
        try:
            doc = json.loads(answer.body, parse_float=Decimal) if answer.body else None
        except ValueError:
            doc = None
        return answer.status, doc, answer

    async def close(self) -> None:
        """Close the pooled connections (a later call opens a new pool)."""
        await self._wire.close()


def dump_json(value: Any) -> str:
    """JSON text of ``value``; a Decimal is written as the exact number it is (never through
    a float), a moment as xs:dateTime in UTC (``2026-11-22T10:00:00Z``)."""
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a number JSON can carry")
        return format(value, "f")
    if isinstance(value, Mapping):
        items = (f"{encode_basestring(str(k))}:{dump_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump_json(v) for v in value) + "]"
    if isinstance(value, datetime):
        return encode_basestring(value.astimezone(UTC).isoformat().replace("+00:00", "Z"))
    return json.dumps(value, allow_nan=False)  # numbers, true, false, null


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return format(value, "f") if isinstance(value, Decimal) else str(value)
