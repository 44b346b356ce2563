"""Errors as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

CONTENT_TYPE = "application/problem+json"


class Problem(Exception):
    """Raise from a handler to answer with a problem document."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(problem: Problem) -> web.Response:
    """Render a :class:`Problem` as a response."""
    body = {
        "type": f"urn:bridge:problem:{problem.code}",
        "title": HTTPStatus(problem.status).phrase,
        "status": problem.status,
        "code": problem.code,
        "detail": problem.detail,
        **problem.extra,
    }
    return web.Response(
        status=problem.status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response with decimals and datetimes already made strings by the caller."""
    return web.Response(
        status=status,
        body=json.dumps(data, ensure_ascii=False).encode(),
        content_type="application/json",
    )
