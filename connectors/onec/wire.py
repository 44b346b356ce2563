"""The HTTP connections both 1C clients send their calls through: one kept-alive aiohttp
pool on the caller's event loop, with Basic auth, one timeout for the whole call, and the
environment (proxy, CA bundle) read once.

Why not ``requests`` in worker threads, as before: a balance look-up is two calls, and with
them in threads the bridge spent 4.6 ms of CPU per look-up, against 1.8 ms now (1C HTTP
service, 200 look-ups/s); ``requests`` also scanned ``os.environ`` for proxy settings on
every call (~9 % of the bridge's CPU). bench/README.md, "Balance look-ups", has the runs
and the profiles. Nothing here imports the bridge's core but ``bridge.deadline``: under
a caller's timer that comes sooner (a till's look-up), aiohttp's own is left out.
"""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
from collections.abc import Mapping
from typing import NamedTuple

import aiohttp
import requests.utils
from multidict import CIMultiDictProxy

from bridge.deadline import cut_off_within

_NO_TIMER = aiohttp.ClientTimeout()  # no total, no read timeout: aiohttp sets no timer


class OnecCallError(Exception):
    """A call to 1C failed; the subclasses say how (``errors.py`` decides the reaction)."""


class OnecUnreachable(OnecCallError):
    """No answer: the connection failed or the timeout passed."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class OnecFault(OnecCallError):
    """1C answered with a fault (SOAP) or an error document (HTTP service)."""

    def __init__(self, text: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code  # the business code, when the service gave one
        self.status = status


class OnecHTTPError(OnecCallError):
    """An HTTP status that is not the service talking: 401, 404 of the publication, 502."""

    def __init__(self, status: int, excerpt: str) -> None:
        super().__init__(f"HTTP {status}: {excerpt}")
        self.status = status


class OnecContractMismatch(OnecCallError):
    """The service does not have what the configured names say (operation, element)."""


class Answer(NamedTuple):
    """What came back: status, body, headers, the body's declared charset."""

    status: int
    body: bytes
    headers: CIMultiDictProxy[str]
    charset: str | None

    def text(self) -> str:
        """The body as text, undecodable bytes replaced."""
        try:
            return self.body.decode(self.charset or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            return self.body.decode("utf-8", errors="replace")


def excerpt(text: str) -> str:
    """The start of an answer's text on one line, for messages."""
    return " ".join(text.split())[:200]


def environment_proxy(url: str) -> str | None:
    """The proxy ``HTTP(S)_PROXY``/``ALL_PROXY`` name for ``url``, unless ``NO_PROXY`` exempts
    it: what ``requests`` would pick on every call, read once."""
    return requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))


def environment_ca_bundle() -> str | None:
    """The CA bundle ``requests`` takes from the environment (``REQUESTS_CA_BUNDLE``, then
    ``CURL_CA_BUNDLE``), read once."""
    return os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value; latin-1, as ``requests`` encodes it (onec.md §1.4)."""
    token = base64.b64encode(f"{username}:{password}".encode("latin-1")).decode()
    return f"Basic {token}"


class Wire:
    """Requests to one 1C host over a pool of at most ``pool_size`` kept-alive connections.

    The pool is made on first use and belongs to that call's event loop; a call made from
    another loop (a second ``asyncio.run``) gets a connection of its own, closed after it.
    """

    def __init__(
        self, *, url: str, username: str, password: str, timeout: float, pool_size: int
    ) -> None:
        self._headers = {"Authorization": basic_auth(username, password)}
        # total: connecting, waiting for a free connection, sending, reading the answer.
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._size = pool_size
        self._proxy = environment_proxy(url)
        bundle = environment_ca_bundle()
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=bundle) if bundle else True
        )
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """POST ``body``; the answer whatever its status, or ``OnecUnreachable``."""
        return await self.send("POST", url, body, headers)

    async def send(
        self, method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        """``method`` with ``body``; the answer whatever its status, or ``OnecUnreachable``."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http.closed:
            self._http, self._loop = self._open(), loop
        if loop is self._loop:
            return await self._send(self._http, method, url, body, headers)
        async with self._open() as one_off:
            return await self._send(one_off, method, url, body, headers)

    async def close(self) -> None:
        """Close the pooled connections (a later call opens a new pool)."""
        session, loop, self._http, self._loop = self._http, self._loop, None, None
        if session is not None and loop is asyncio.get_running_loop():
            await session.close()

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._size,  # at most delivery.concurrency calls at once, the rest wait
            ssl=self._ssl,
            # Below Apache's default KeepAliveTimeout of 5 s (1C is published through Apache
            # or IIS, onec.md §1.1): let an idle connection go before the server may, so a
            # call is not sent on a socket the server is closing.
            keepalive_timeout=4.0,
        )
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            trust_env=False,  # the proxy was read once, in __init__
            headers=self._headers,
        )

    async def _send(
        self,
        http: aiohttp.ClientSession,
        method: str,
        url: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> Answer:
        # Under a caller's timer that comes sooner (a till's look-up), no timer of aiohttp's.
        timeout = _NO_TIMER if cut_off_within(self._timeout.total or 0) else self._timeout
        try:
            async with http.request(
                method, url, data=body, headers=headers, proxy=self._proxy, timeout=timeout
            ) as r:
                return Answer(r.status, await r.read(), r.headers, r.charset)
        except TimeoutError as exc:  # aiohttp's ServerTimeoutError is one too
            seconds = self._timeout.total or 0
            raise OnecUnreachable(f"no answer within {seconds:g} s", timed_out=True) from exc
        except aiohttp.ClientError as exc:
            raise OnecUnreachable(f"{type(exc).__name__}: {exc}", timed_out=False) from exc
