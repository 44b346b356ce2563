"""The official package's transport, replaced; and the failures a RetailCRM call can have.

``retailcrm.v5`` (5.3.x) has a method for every endpoint the bridge needs, but its
``get``/``post`` are unfit for a daemon (retailcrm-api.md §6.2): module-level ``requests``
calls with no timeout and no pooling, request state on the object (leaked when ``requests``
raises), and ``.json()`` before the status is looked at. ``PackageApi`` keeps the methods and
sends through a shared pooled session instead. ``client.py`` makes one per call; which
reaction each failure calls for is decided in ``errors.py``. Nothing here imports the bridge.

::

    RetailcrmError                 ``status`` and ``retry_after`` when the server answered
    ├── RetailcrmApiError          a JSON envelope with ``success: false``
    │   └── RetailcrmPartial       HTTP 460: a batch upload partly failed
    ├── RetailcrmNotJson           HTML or other non-JSON (wrong account URL, a proxy's page)
    └── RetailcrmUnreachable       no answer: the connection failed or the timeout passed
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
import requests.utils
import retailcrm
from requests.adapters import HTTPAdapter


class RetailcrmError(Exception):
    """A call to RetailCRM failed; subclasses say how."""

    status: int | None = None
    retry_after: float | None = None  # seconds, from a Retry-After header


class RetailcrmApiError(RetailcrmError):
    """RetailCRM answered with its error envelope (``success: false``)."""

    def __init__(
        self,
        status: int,
        error_msg: str,
        errors: Any,
        body: Mapping[str, Any],
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.error_msg = error_msg
        self.raw_errors = errors  # as sent: an object keyed by field, or a list (§1.4)
        self.errors = normalize_errors(errors)  # ["field: message", ...]
        self.body = dict(body)
        self.retry_after = retry_after
        details = f" ({'; '.join(self.errors[:10])})" if self.errors else ""
        super().__init__(f"HTTP {status}: {error_msg or 'no errorMsg'}{details}")


class RetailcrmPartial(RetailcrmApiError):
    """HTTP 460: a batch upload stored ``uploaded`` and refused ``failed`` (§2.4)."""

    def __init__(
        self,
        status: int,
        error_msg: str,
        errors: Any,
        body: Mapping[str, Any],
        *,
        uploaded: list[dict[str, Any]],
        failed: list[dict[str, Any]],
    ) -> None:
        super().__init__(status, error_msg, errors, body)
        self.uploaded = uploaded  # [{id, externalId}]
        self.failed = failed  # [{externalId}]; the errors are not keyed by entity


class RetailcrmNotJson(RetailcrmError):
    """The answer was not a JSON object: an HTML page, a proxy's error, an empty body."""

    def __init__(
        self, status: int, content_type: str, excerpt: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"HTTP {status} {content_type or 'without Content-Type'}: {excerpt}")
        self.status = status
        self.content_type = content_type
        self.excerpt = excerpt
        self.retry_after = retry_after


class RetailcrmUnreachable(RetailcrmError):
    """No answer: the connection failed or the timeout passed."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def normalize_errors(raw: Any) -> list[str]:
    """``errors`` as ``field: message`` strings, whether sent as an object or a list (§1.4)."""
    if isinstance(raw, Mapping):
        return [f"{key}: {_text(value)}" for key, value in raw.items()]
    if isinstance(raw, list | tuple):
        return [_text(item) for item in raw]
    return [] if raw in (None, "") else [_text(raw)]


def open_session(api_key: str, pool_size: int, url: str = "") -> requests.Session:
    """A pooled session that sends the key as ``X-API-KEY`` (kept out of access logs, §1.2).

    The environment is read here, once, for the account at ``url``: with ``trust_env`` on,
    requests would scan ``os.environ`` for proxy settings on every call (twice), ~5-9 % of
    the bridge's CPU per call in the balance bench; the variables still apply.
    """
    session = requests.Session()
    session.headers.update({"X-API-KEY": api_key, "Accept": "application/json"})
    session.trust_env = False
    proxies = requests.utils.get_environ_proxies(url) if url else {}
    proxy = requests.utils.select_proxy(url, proxies) if url else None
    session.proxies = {"http": proxy, "https": proxy} if proxy else {}
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    session.verify = bundle or True
    # Threads share the session: a cookie set by one answer must not ride on another call.
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class PackageApi(retailcrm.v5):  # type: ignore[misc]  # the package is untyped
    """The package's v5 methods over a shared session: timeouts, pooling, checked answers."""

    parameters: dict[str, Any]  # the package collects each call's parameters here

    def __init__(self, url: str, session: requests.Session, timeout: float) -> None:
        super().__init__(url, "")  # the key travels in the session's X-API-KEY header
        self._session = session
        self._timeout = timeout

    def get(self, url: str, version: bool = True) -> dict[str, Any]:
        """Send the collected parameters as a PHP-style query string."""
        params, self.parameters = self.parameters, {}  # reset before anything can raise
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            _flatten(str(key), value, pairs)
        query = f"?{urlencode(pairs)}" if pairs else ""
        return self._send("GET", self._address(url, version) + query)

    def post(self, url: str, version: bool = True) -> dict[str, Any]:
        """Send the collected parameters as a form (nested values are JSON strings already)."""
        params, self.parameters = self.parameters, {}
        form = {str(k): _scalar(v) for k, v in params.items() if v is not None}
        return self._send("POST", self._address(url, version), data=form)

    def _address(self, path: str, version: bool) -> str:
        root = f"{self.api_url}/{self.api_version}" if version else self.api_url
        return f"{root}{path}"

    def _send(self, method: str, address: str, **kwargs: Any) -> dict[str, Any]:
        try:
            # No redirects: requests would resend X-API-KEY to wherever a 30x points.
            response = self._session.request(
                method, address, timeout=self._timeout, allow_redirects=False, **kwargs
            )
        except requests.RequestException as exc:
            timed_out = isinstance(exc, requests.Timeout)
            reason = getattr(exc.args[0], "reason", exc.args[0]) if exc.args else exc
            if isinstance(exc, requests.exceptions.InvalidHeader):
                reason = "a header value was refused"  # its text would carry the API key
            where = urlsplit(address).path  # not the query: it may hold a phone number
            message = f"{type(exc).__name__} on {method} {where}: {reason}"
            raise RetailcrmUnreachable(message, timed_out=timed_out) from exc
        return _read(response)


def _read(response: requests.Response) -> dict[str, Any]:
    status = response.status_code
    wait = _retry_after(response.headers.get("Retry-After"))
    kind = response.headers.get("Content-Type", "")
    body: Any = None
    if "json" in kind.lower():  # an HTML page must never reach the JSON parser (§1.5)
        try:
            body = response.json()
        except ValueError:
            body = None
    if not isinstance(body, dict):
        raise RetailcrmNotJson(status, kind, _excerpt(response.text), retry_after=wait)
    error_msg = str(body.get("errorMsg") or "")
    if status == 460:  # uploadedOrders/failedOrders or uploadedCustomers/failedCustomers
        uploaded = next((v for k, v in body.items() if k.startswith("uploaded")), None)
        failed = next((v for k, v in body.items() if k.startswith("failed")), None)
        raise RetailcrmPartial(
            status,
            error_msg,
            body.get("errors"),
            body,
            uploaded=dict_list(uploaded),
            failed=dict_list(failed),
        )
    if status >= 300 or body.get("success") is False:
        raise RetailcrmApiError(status, error_msg, body.get("errors"), body, retry_after=wait)
    return body


def jsonable(value: Any) -> Any:
    """A payload ``json.dumps`` accepts: Decimal as a number, dates as RetailCRM writes them."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")  # account-local, no offset (§1.3)
    if isinstance(value, date):
        return value.isoformat()
    return value


def dict_list(value: Any) -> list[dict[str, Any]]:
    """The objects in a list, or in an id-keyed object (PHP sends either, §1.4)."""
    if isinstance(value, Mapping):
        value = list(value.values())
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _flatten(name: str, value: Any, out: list[tuple[str, str]]) -> None:
    """PHP-style query pairs: ``filter[ids][]=1``; booleans as 1/0, ``None`` left out (§6.4)."""
    if value is None:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{name}[{key}]", item, out)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _flatten(f"{name}[{index}]" if isinstance(item, Mapping) else f"{name}[]", item, out)
    else:
        out.append((name, _scalar(value)))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):  # str(True) would send "True" (§6.4)
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")  # never "1E+1"
    return value if isinstance(value, str) else str(value)


def _retry_after(header: str | None) -> float | None:
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(moment.tzinfo)).total_seconds())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _excerpt(text: str) -> str:
    return " ".join(re.sub(r"<[^>]*>", " ", text).split())[:200]
