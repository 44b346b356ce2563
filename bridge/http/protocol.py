"""Errors met before a request reaches the app, answered as problem documents.

aiohttp answers a request its HTTP parser refuses (a NUL or a bare CR in a header, a bad
request line, an encoding it cannot decode) from ``RequestHandler.handle_error``, outside
every middleware, with a ``text/plain`` 400 whose text quotes the offending bytes: a whole
``Authorization: Bearer …`` line included. ``ProblemRequestHandler`` answers a terse
problem document instead and logs the exception's class, never its text.

A body that cannot be decoded (``Content-Encoding: gzip`` on bytes that are not gzip) is
found later, while a handler reads it; ``unreadable_body`` turns that into a 400 problem.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMethod,
    ContentEncodingError,
    DecompressSizeError,
    HttpProcessingError,
    LineTooLong,
)
from aiohttp.web_protocol import RequestHandler

from bridge.http.problems import Problem, problem_response
from bridge.logs import get_logger

log = get_logger("bridge.http")

# What aiohttp decodes by itself (brotli and zstd only with optional packages the bridge
# does not install); anything else would reach the JSON parser as raw bytes.
READABLE_ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})


def unsupported_encoding() -> Problem:
    """415: the body is in an encoding the bridge does not read."""
    return Problem(
        415,
        "unsupported_content_encoding",
        "Content-Encoding: only gzip, deflate or none are accepted",
        headers={"Accept-Encoding": "gzip, deflate"},
    )


def check_content_encoding(request: web.Request) -> None:
    """Refuse a body in an encoding aiohttp would hand over undecoded."""
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in READABLE_ENCODINGS:
        raise unsupported_encoding()


def unreadable_body(request: web.BaseRequest, exc: Exception) -> Problem:
    """The problem for a body that failed while it was read; the rest of it is dropped."""
    # The stream keeps its exception: without EOF aiohttp would read on after the answer,
    # meet the exception again and log it as an unhandled error.
    request.content.feed_eof()
    cause = exc.__cause__ if isinstance(exc, web.RequestPayloadError) else exc
    if isinstance(cause, DecompressSizeError):
        return Problem(413, "payload_too_large", "the decoded body is too large")
    if isinstance(cause, ContentEncodingError):
        return Problem(400, "undecodable_body", "the body is not in its Content-Encoding")
    return Problem(400, "unreadable_body", "the body could not be read")


def parse_error_problem(status: int, exc: BaseException | None) -> Problem:
    """The terse problem for a request the HTTP parser refused (nothing of it echoed)."""
    if isinstance(exc, ContentEncodingError):
        return unsupported_encoding()
    if isinstance(exc, LineTooLong):
        return Problem(431, "headers_too_large", "a request line or header is too long")
    if status == HTTPStatus.INTERNAL_SERVER_ERROR:
        return Problem(500, "internal_error", "an internal error occurred")
    if isinstance(exc, HttpProcessingError) or status == HTTPStatus.BAD_REQUEST:
        return Problem(400, "malformed_request", "the request is not well-formed HTTP")
    phrase = HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    return Problem(status, phrase, HTTPStatus(status).phrase)


class ProblemRequestHandler(RequestHandler):
    """aiohttp's connection handler, with parser errors answered as problem documents."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A problem document; the log names the exception's class, not its text (which
        quotes the request's bytes, secrets included)."""
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:
            log.error("request_failed", path=request.path, exc_info=exc)
        elif not (self._request_count == 1 and isinstance(exc, BadHttpMethod)):
            # A first line that is not HTTP is port scanners' noise (aiohttp logs it at debug).
            log.warning("request_malformed", status=status, error=type(exc).__name__)
        if request.writer.output_size > 0:  # an answer has begun: only closing is left
            raise ConnectionError("response already started; cannot send an error")
        response = problem_response(parse_error_problem(status, exc))
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """A body that fails while aiohttp drains it after the answer (a route that never
        read it: 404, 405, 401) is the client's fault, not an unhandled error."""
        exc = kw.get("exc_info")
        if isinstance(exc, web.RequestPayloadError | HttpProcessingError):
            log.info("request_body_dropped", error=type(exc).__name__)
            return
        super().log_exception(*args, **kw)


class ProblemServer(web.Server):
    """A ``web.Server`` whose connections use :class:`ProblemRequestHandler`."""

    def __call__(self) -> RequestHandler:
        """One connection's handler (aiohttp's protocol factory)."""
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


def answer_parser_errors_with_problems(app: web.Application) -> None:
    """Make every runner of ``app`` (``web.run_app``, ``AppRunner``) serve it through
    :class:`ProblemServer`; aiohttp has no public hook for the handler's class."""
    make_handler = app._make_handler

    def make_problem_handler(**kwargs: Any) -> web.Server:
        server = make_handler(**kwargs)
        server.__class__ = ProblemServer
        return server

    # object.__setattr__: aiohttp's debug mode warns on new attributes of an Application.
    object.__setattr__(app, "_make_handler", make_problem_handler)
