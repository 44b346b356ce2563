"""A thin Bitrix24 REST client on aiohttp (bitrix.md §5 recommends one over the libraries).

What it knows of the wire (bitrix.md §1): the two URL forms (an inbound webhook
``<portal>/rest/<user>/<secret>/<method>``, or ``<portal>/rest/<method>`` with an OAuth
``auth`` token that is refreshed when Bitrix answers ``expired_token``); POST JSON bodies;
the ``{result, total, next, time}`` envelope and ``{error, error_description}`` errors,
whose codes may be strings, empty strings or integers, and whose body may be HTML; list
pages of 50 (``start``), the fast ``>ID`` scan with ``start=-1``; ``batch`` of at most 50
commands with per-command errors inside an HTTP 200.

It knows nothing of the bridge: errors are :class:`BitrixError` with the HTTP status and the
code, classified by the connector. Every request goes through the caller's limiter.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp

PAGE = 50  # bitrix.md §1.4: list pages are fixed at 50 rows
BATCH_MAX = 50  # §1.5: more commands fail with ERROR_BATCH_LENGTH_EXCEEDED


class BitrixError(Exception):
    """An error answer (or a failure to get one): HTTP ``status`` (0: no answer), ``code``
    as Bitrix gave it (``QUERY_LIMIT_EXCEEDED``, ``""``, ``"200540400001"``), the text."""

    def __init__(self, status: int, code: str, description: str, body: Any = None) -> None:
        super().__init__(f"{code or 'error'}: {description}" if description else code or "error")
        self.status = status
        self.code = code
        self.description = description
        self.body = body  # the parsed answer, for the operating-limit reset time


class Limiter(Protocol):
    """The request budget every call waits on."""

    async def acquire(self) -> None:
        """Wait for a turn to send one request."""
        ...

    def hold(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (after a 503)."""
        ...


class LeakyBucket:
    """Bitrix's own meter, kept on our side (bitrix.md §1.6): each request adds 1 to a level
    that drains ``rate`` per second; a request that would take it above ``capacity`` waits.
    Keeping capacity and rate below the portal's (50 and 2/s) leaves room for others on the
    same IP and for clock skew."""

    def __init__(
        self, capacity: float, rate: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity < 1 or rate <= 0:
            raise ValueError("capacity must be >= 1 and rate > 0")
        self.capacity, self.rate = capacity, rate
        self._clock = clock
        self._level = 0.0
        self._at = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Wait until one more request fits, then count it."""
        async with self._lock:  # in arrival order
            while True:
                now = self._clock()
                self._level = max(0.0, self._level - (now - self._at) * self.rate)
                self._at = now
                wait = max(self._paused_until - now, (self._level + 1 - self.capacity) / self.rate)
                if wait <= 0:
                    self._level += 1
                    return
                await asyncio.sleep(wait)

    def hold(self, seconds: float) -> None:
        """Pause everyone (Bitrix said 503): the bucket is fuller than we thought."""
        now = self._clock()
        self._paused_until = max(self._paused_until, now + seconds)
        self._level = max(self._level, self.capacity)
        self._at = now


@dataclass(frozen=True)
class Envelope:
    """A successful answer: ``result`` and, for lists, ``total`` and ``next`` (§1.3)."""

    result: Any
    total: int | None = None
    next: int | None = None
    time: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchAnswer:
    """Per-command results and errors of one ``batch`` call (§1.5), by command name."""

    results: dict[str, Any]
    errors: dict[str, BitrixError]
    totals: dict[str, int]


@dataclass
class OAuthTokens:
    """An application's tokens (bitrix.md §1.1): ``access_token`` lives an hour, the
    ``refresh_token`` 180 days; a refresh may give a new refresh token, which ``on_refresh``
    should keep (it is what the next start needs)."""

    access_token: str
    refresh_token: str
    client_id: str
    client_secret: str
    token_url: str = "https://oauth.bitrix.info/oauth/token/"  # noqa: S105 (a URL)
    on_refresh: Callable[[OAuthTokens], Awaitable[None]] | None = None
    configured_refresh_token: str | None = None  # tried when a kept one is refused
    reload: Callable[[], str | None] | None = None  # the refresh token kept on disk now


class BitrixClient:
    """Calls one portal's REST API."""

    def __init__(
        self,
        url: str,
        *,
        limiter: Limiter,
        timeout: float = 30.0,
        oauth: OAuthTokens | None = None,
        user_agent: str = "bridge",
    ) -> None:
        # A webhook URL (…/rest/<user>/<secret>/) or, with ``oauth``, the portal's …/rest/.
        self.url = url.rstrip("/") + "/"
        self.oauth = oauth
        self._limiter = limiter
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._headers = {"Accept": "application/json", "User-Agent": user_agent}
        self._session: aiohttp.ClientSession | None = None
        self._renewal: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never the webhook secret or a token
        return "BitrixClient(<portal>)"

    async def close(self) -> None:
        """Close the pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def call(self, method: str, params: Mapping[str, Any] | None = None) -> Envelope:
        """One method call; raises :class:`BitrixError`."""
        oauth = self.oauth
        if oauth is not None and not oauth.access_token:
            await self._refresh()  # no access token kept yet
        used = oauth.access_token if oauth is not None else ""
        try:
            return await self._post(method, params or {})
        except BitrixError as exc:
            if oauth is None or exc.code not in ("expired_token", "invalid_token"):
                raise
        if oauth.access_token == used:  # else another call refreshed meanwhile
            await self._refresh()  # §1.7: 401 expired_token → refresh, retry once
        return await self._post(method, params or {})

    async def batch(
        self,
        commands: Mapping[str, tuple[str, Mapping[str, Any]]],
        *,
        halt: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> BatchAnswer:
        """Up to 50 calls in one request; a command's error does not fail the others.
        ``params`` go on the batch call itself (``auth_connector`` applies to the request)."""
        if not 0 < len(commands) <= BATCH_MAX:
            raise ValueError(f"a batch takes 1 to {BATCH_MAX} commands, not {len(commands)}")
        cmd = {name: f"{method}?{php_query(query)}" for name, (method, query) in commands.items()}
        body = dict(params or {}) | {"halt": 1 if halt else 0, "cmd": cmd}
        answer = await self.call("batch", body)
        inner = answer.result if isinstance(answer.result, Mapping) else {}
        results = _keyed(inner.get("result"), commands)
        totals = {k: int(v) for k, v in _keyed(inner.get("result_total"), commands).items()}
        errors: dict[str, BitrixError] = {}
        for name, error in _keyed(inner.get("result_error"), commands).items():
            if isinstance(error, Mapping):
                errors[name] = BitrixError(
                    200, str(error.get("error", "")), str(error.get("error_description", ""))
                )
        return BatchAnswer(results, errors, totals)

    async def pages(self, method: str, params: Mapping[str, Any]) -> AsyncIterator[Envelope]:
        """Every page of a list by ``start`` (§1.4: 50 rows a page, ``next`` while more
        wait); for a small list. A large one takes :meth:`scan`, which counts nothing."""
        start: int | None = 0
        while start is not None:
            page = await self.call(method, dict(params) | {"start": start})
            yield page
            start = page.next

    async def scan(
        self,
        method: str,
        params: Mapping[str, Any],
        *,
        items: Callable[[Any], list[Mapping[str, Any]]],
        id_key: str = "ID",
        after: int = 0,
    ) -> AsyncIterator[list[Mapping[str, Any]]]:
        """Every row of a list, oldest id first, a page at a time, by the fast scan (§1.4):
        ``order {ID: ASC}``, ``filter {">ID": last}``, ``start: -1``; stops at a short page."""
        last = after
        while True:
            query = dict(params)
            query["order"] = {id_key: "ASC"}
            query["filter"] = dict(params.get("filter") or {}) | {f">{id_key}": last}
            query["start"] = -1
            rows = items((await self.call(method, query)).result)
            if rows:
                yield rows
                last = int(rows[-1][id_key])
            if len(rows) < PAGE:
                return

    async def _post(self, method: str, params: Mapping[str, Any]) -> Envelope:
        body = dict(params)
        if self.oauth is not None:
            body["auth"] = self.oauth.access_token
        await self._limiter.acquire()
        session = self._session_now()
        try:
            async with session.post(
                self.url + quote(method), json=body, headers=self._headers
            ) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BitrixError(0, "", f"no answer from Bitrix: {type(exc).__name__}: {exc}") from exc
        data = _json(text)
        if status == 503:  # §1.6: the portal's bucket is fuller than ours thought
            self._limiter.hold(1.0)
        if not isinstance(data, Mapping):
            raise BitrixError(status, "", f"HTTP {status}, not a JSON answer: {text[:200]!r}")
        if "error" in data:
            code, text = str(data.get("error") or ""), str(data.get("error_description") or "")
            raise BitrixError(status if status >= 400 else 400, code, text, data)
        if status >= 400 or "result" not in data:
            raise BitrixError(status, "", f"HTTP {status} without a result", data)
        total, following, spent = data.get("total"), data.get("next"), data.get("time")
        return Envelope(
            data["result"],
            int(total) if isinstance(total, int) else None,
            int(following) if isinstance(following, int) else None,
            spent if isinstance(spent, Mapping) else {},
        )

    async def _refresh(self) -> None:
        """Renew the access token, once for all callers waiting on it. The renewal runs as
        a task of its own that a caller giving up (a timeout) does not cancel: the token
        server spends the old refresh token when it answers (§1.1), so an answer cut off
        half-way would lose the only token that works."""
        task = self._renewal
        if task is None or task.done():
            task = self._renewal = asyncio.create_task(self._renew())
        await asyncio.shield(task)

    async def _renew(self) -> None:
        oauth = self.oauth
        assert oauth is not None
        tried = {oauth.refresh_token}
        try:
            data = await self._grant(oauth.refresh_token)
        except BitrixError as exc:
            # A token the server no longer knows: another process of ours (``bridge check
            # --probe``) may have renewed it and kept the new one, or the app was installed
            # again and only the configured one is good.
            candidates = [oauth.reload() if oauth.reload else None, oauth.configured_refresh_token]
            others = [t for t in candidates if t and t not in tried]
            if exc.code != "invalid_grant" or not others:
                raise
            data = await self._retry_grant(others, exc)
        oauth.access_token = str(data["access_token"])
        oauth.refresh_token = str(data.get("refresh_token") or oauth.refresh_token)
        if oauth.on_refresh is not None:
            await oauth.on_refresh(oauth)

    async def _retry_grant(self, tokens: list[str], first: BitrixError) -> Mapping[str, Any]:
        error = first
        for token in tokens:
            try:
                data = await self._grant(token)
            except BitrixError as exc:
                error = exc
                continue
            assert self.oauth is not None
            self.oauth.refresh_token = token
            return data
        raise error

    async def _grant(self, refresh_token: str) -> Mapping[str, Any]:
        """The token endpoint's ``refresh_token`` grant (§1.1)."""
        oauth = self.oauth
        assert oauth is not None
        query = {
            "grant_type": "refresh_token",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "refresh_token": refresh_token,
        }
        try:
            async with self._session_now().get(oauth.token_url, params=query) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BitrixError(0, "", f"token refresh failed: {exc}") from exc
        data = _json(text)
        if status != 200 or not isinstance(data, Mapping) or "access_token" not in data:
            code = str(data.get("error", "")) if isinstance(data, Mapping) else ""
            raise BitrixError(401 if status < 400 else status, code or "ERROR_OAUTH", text[:200])
        return data

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session


def php_query(params: Mapping[str, Any]) -> str:
    """Parameters as a PHP-style query string (bitrix.md §1.2: ``filter[>ID]=10``,
    ``select[]=ID``), every key and value percent-encoded once, as a ``batch`` command in a
    JSON body takes it."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(f"{prefix}[{key}]" if prefix else str(key), inner)
        elif isinstance(value, list | tuple):
            for index, inner in enumerate(value):
                walk(f"{prefix}[{index}]", inner)
        elif isinstance(value, bool):
            pairs.append((prefix, "Y" if value else "N"))  # §1.2: Y/N booleans
        else:  # None clears the field: Bitrix takes an empty value as "none"
            pairs.append((prefix, "" if value is None else str(value)))

    walk("", params)
    return "&".join(f"{quote(k, safe='[]')}={quote(v, safe='')}" for k, v in pairs)


def _keyed(value: Any, commands: Mapping[str, Any]) -> dict[str, Any]:
    """A batch's per-command map. PHP sends an empty map as ``[]``, and a map whose keys
    are all numeric as a list that cannot be told apart by command (§1.5): callers name
    commands with letters, and a list is read by position only when it covers them all."""
    if isinstance(value, Mapping):
        return {str(k): v for k, v in value.items() if str(k) in commands}
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == len(commands):
        return dict(zip(commands, value, strict=True))
    return {}


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
