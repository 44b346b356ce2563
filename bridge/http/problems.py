"""Errors as ``application/problem+json`` (RFC 9457) with a stable ``code``."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from aiohttp import web

from bridge.errors import BridgeError

CONTENT_TYPE = "application/problem+json"


class Problem(BridgeError):
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
        # A caller's text echoed in a detail may hold a lone surrogate: escape it.
        body=json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace"),
        content_type=CONTENT_TYPE,
        headers=problem.headers,
    )


# Codes of the errors aiohttp raises itself (routing, body size); the rest are named after
# their status phrase (``unsupported_media_type``).
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def http_problem(exc: web.HTTPException) -> Problem:
    """The problem document for one of aiohttp's own HTTP errors (keeps its ``Allow``)."""
    phrase = HTTPStatus(exc.status).phrase
    code = HTTP_CODES.get(exc.status) or phrase.lower().replace(" ", "_").replace("-", "_")
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return Problem(exc.status, code, exc.reason or phrase, headers=headers)


# json.dumps builds an encoder per call when given any option; this one is built once.
_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def json_response(data: Any, status: int = 200) -> web.Response:
    """A JSON response with decimals and datetimes already made strings by the caller."""
    return web.Response(status=status, body=_ENCODE(data).encode(), content_type=JSON_TYPE)


JSON_TYPE = "application/json"
