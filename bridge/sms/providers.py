"""SMS gateways on real providers: SMS.ru, SMSC.ru, and any HTTP API through a template.

Each gateway turns its provider's answers into the two reactions of ``gateway.py``:

* ``SmsRejected`` — this message will never go: a bad or blocked number, a banned text or
  sender, no money, wrong credentials, any 4xx other than 408/429;
* ``SmsUnavailable`` — ask again later: timeouts, refused connections, 408/429/5xx, and the
  provider's own "temporarily unavailable" / "too often" codes.

Credentials travel in POST bodies, never in URLs, so no URL that an aiohttp error quotes
carries them. No message raised here contains the text (it carries the code), the full
phone or a credential: provider text quoted in an error is scrubbed of everything we sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Iterable, Iterator
from typing import Any

import aiohttp

from bridge.bonus.phones import mask
from bridge.logs import get_logger
from bridge.redact import mask_phone
from bridge.settings_sms import (
    HttpGatewaySettings,
    SmscGatewaySettings,
    SmsRuGatewaySettings,
    check_template,
)
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsSent, SmsUnavailable

log = get_logger("bridge.sms")

_E164 = re.compile(r"\+[1-9]\d{7,14}")
_TEMPLATE_FIELDS = frozenset({"phone", "text"})
_RETRY_HTTP = frozenset({408, 429})  # and every 5xx
_EXCERPT_CHARS = 200

# SMS.ru answer codes worth retrying (sms.ru/api/send; the code list in SMS.ru's API docs):
# 220 "service temporarily unavailable, try a bit later", 231 "limit of identical messages
# to this number per minute", 233 "limit of repeated code messages to this number for a
# short period" (anti-fraud), 500 "server error, repeat the request". Every other code is
# final for this message: 200/300/301 credentials, 201 no money, 202/207/209 bad, unroutable
# or stop-listed number, 204 sender not approved, 206/230/232 daily limits.
_SMSRU_RETRY = frozenset({220, 231, 233, 500})
# SMSC.ru send errors worth retrying (smsc.ru/api/http/send/sms/sms_answer/): 4 "IP address
# temporarily blocked after frequent errors", 9 "more than one identical send request per
# minute". Final: 1 parameters, 2 login/password, 3 no money, 5 date format, 6 message
# forbidden by text or sender, 7 phone format, 8 cannot be delivered to this number.
_SMSC_RETRY = frozenset({4, 9})
# SMSC's client id: "a 32-bit number 1..2147483647, or a string of up to 40 Latin letters,
# digits and '.-_'" (smsc.ru/api/http/send/sms/). Other references are not sent.
_SMSC_ID = re.compile(r"[A-Za-z0-9._-]{1,40}")


class _Http:
    """One aiohttp session per gateway, made on first use; transport failures → SmsUnavailable."""

    def __init__(self, gateway: str, timeout_seconds: float) -> None:
        self._gateway = gateway
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # trust_env=False: an HTTP(S)_PROXY left in the service's environment must not
            # route confirmation codes through a proxy nobody configured for the bridge.
            self._session = aiohttp.ClientSession(timeout=self._timeout, trust_env=False)
        return self._session

    async def request(self, method: str, url: str, masked: str, **options: Any) -> tuple[int, str]:
        """Send one request; the answer's status and body (UTF-8, undecodable bytes replaced)."""
        try:
            async with self._client().request(method, url, **options) as response:
                return response.status, (await response.read()).decode("utf-8", "replace")
        except TimeoutError as exc:
            seconds = self._timeout.total or 0
            raise SmsUnavailable(
                f"{self._gateway}: no answer within {seconds:g} s (to {masked})"
            ) from exc
        except aiohttp.InvalidURL:
            # Not chained: the exception's text is the URL, which may hold a key or the text.
            raise SmsRejected(f"{self._gateway}: the configured url is not valid") from None
        except aiohttp.ClientResponseError as exc:
            # Not chained: its text quotes the request URL with its query (phone, text).
            raise SmsUnavailable(
                f"{self._gateway}: unusable HTTP answer {exc.status} (to {masked})"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SmsUnavailable(
                f"{self._gateway}: cannot reach the provider ({type(exc).__name__}) (to {masked})"
            ) from exc

    async def close(self) -> None:
        """Close the session if one was made."""
        if self._session is not None:
            await self._session.close()
            self._session = None


class SmsRuGateway:
    """SMS.ru: ``POST /sms/send`` with ``api_id``, ``to``, ``msg``, ``json=1``."""

    name: str = "smsru"

    def __init__(self, settings: SmsRuGatewaySettings, timeout_seconds: float) -> None:
        self._settings = settings
        self._http = _Http(self.name, timeout_seconds)

    async def send(self, phone: str, text: str, reference: str) -> SmsSent:
        """Send ``text`` to ``phone``; SMS.ru has no field for our ``reference``."""
        return await _logged(self.name, phone, reference, self._send(phone, text))

    async def _send(self, phone: str, text: str) -> str | None:
        digits, masked = _digits(self.name, phone), mask(phone)
        api_id = self._settings.api_id.get_secret_value()
        # sms.ru/api/send: "to" is the number in international format, digits only as in
        # every example; "msg" must be UTF-8 (code 212 otherwise; aiohttp encodes forms so);
        # "from" an approved sender name; "test=1" checks everything but sends nothing.
        form = {"api_id": api_id, "to": digits, "msg": text, "json": "1"}
        if self._settings.sender:
            form["from"] = self._settings.sender
        if self._settings.test:
            form["test"] = "1"
        sent = (text, phone, digits, api_id)
        status, body = await self._http.request("POST", self._settings.url, masked, data=form)
        answer = _json_answer(self.name, status, body, masked, sent)
        # The answer: top-level "status" OK/ERROR with "status_code" (errors of the whole
        # request: credentials, money, sender), then "sms": {number: {status, status_code,
        # sms_id | status_text}} with the result for each number.
        if answer.get("status") != "OK":
            raise _refusal(
                self.name,
                answer.get("status_code"),
                answer.get("status_text"),
                _SMSRU_RETRY,
                masked,
                sent,
            )
        entry = _number_entry(answer.get("sms"), digits)
        if entry is None:
            raise SmsUnavailable(
                f"{self.name}: the answer has no result for the number (to {masked})"
            )
        if entry.get("status") != "OK":
            raise _refusal(
                self.name,
                entry.get("status_code"),
                entry.get("status_text"),
                _SMSRU_RETRY,
                masked,
                sent,
            )
        sms_id = entry.get("sms_id")
        return None if sms_id is None else str(sms_id)

    async def close(self) -> None:
        """Release connections."""
        await self._http.close()


class SmscGateway:
    """SMSC.ru: ``POST /sys/send.php`` with ``login``, ``psw``, ``phones``, ``mes``, ``fmt=3``."""

    name: str = "smsc"

    def __init__(self, settings: SmscGatewaySettings, timeout_seconds: float) -> None:
        self._settings = settings
        self._http = _Http(self.name, timeout_seconds)

    async def send(self, phone: str, text: str, reference: str) -> SmsSent:
        """Send ``text`` to ``phone``; ``reference`` becomes SMSC's ``id`` when it fits."""
        return await _logged(self.name, phone, reference, self._send(phone, text, reference))

    async def _send(self, phone: str, text: str, reference: str) -> str | None:
        digits, masked = _digits(self.name, phone), mask(phone)
        password = self._settings.password.get_secret_value()
        # smsc.ru/api/http/send/sms/: GET or POST; "phones" in international format, "may be
        # passed without '+'"; the text is read as windows-1251 unless "charset" says
        # otherwise; fmt=3 answers JSON.
        form = {
            "login": self._settings.login,
            "psw": password,
            "phones": digits,
            "mes": text,
            "fmt": "3",
            "charset": "utf-8",
        }
        if self._settings.sender:
            form["sender"] = self._settings.sender
        if _SMSC_ID.fullmatch(reference):
            form["id"] = reference
        sent = (text, phone, digits, password, self._settings.login)
        status, body = await self._http.request("POST", self._settings.url, masked, data=form)
        answer = _json_answer(self.name, status, body, masked, sent)
        # fmt=3 answers {"id": <id>, "cnt": <sms parts>} or {"error": <text>, "error_code": N}
        # (errors 3, 6, 7, 8 carry an "id" too, so the error is checked first).
        if "error_code" in answer or "error" in answer:
            raise _refusal(
                self.name, answer.get("error_code"), answer.get("error"), _SMSC_RETRY, masked, sent
            )
        if "id" not in answer:
            raise SmsUnavailable(f"{self.name}: the answer has neither id nor error (to {masked})")
        return str(answer["id"])

    async def close(self) -> None:
        """Release connections."""
        await self._http.close()


class HttpTemplateGateway:
    """Any HTTP API: ``params`` / ``json_body`` templates with ``{phone}`` and ``{text}``.

    GET puts ``params`` in the query. POST sends them as a form, or — when ``json_body`` is
    set — sends the JSON body and puts ``params`` (if any) in the query.
    """

    name: str = "http"

    def __init__(self, settings: HttpGatewaySettings, timeout_seconds: float) -> None:
        if settings.json_body is not None and settings.method == "GET":
            raise ValueError("json_body needs method POST")
        for value in _strings(settings.json_body):
            check_template(value, _TEMPLATE_FIELDS)  # settings check only ``params``
        self._settings = settings
        self._http = _Http(self.name, timeout_seconds)

    async def send(self, phone: str, text: str, reference: str) -> SmsSent:
        """Send ``text`` to ``phone``; the template has no place for ``reference``."""
        return await _logged(self.name, phone, reference, self._send(phone, text))

    async def _send(self, phone: str, text: str) -> None:
        _digits(self.name, phone)
        masked, fields = mask(phone), {"phone": phone, "text": text}
        settings = self._settings
        params = {key: value.format_map(fields) for key, value in settings.params.items()}
        headers = {key: value.get_secret_value() for key, value in settings.headers.items()}
        options: dict[str, Any] = {"headers": headers}
        if settings.method == "GET":
            options["params"] = params
        elif settings.json_body is not None:
            options["json"] = _render(settings.json_body, fields)
            options["params"] = params
        else:
            options["data"] = params
        sent = [text, phone, *params.values(), *headers.values(), *_strings(options.get("json"))]
        status, body = await self._http.request(settings.method, settings.url, masked, **options)
        if status not in settings.success_status or (
            settings.success_contains is not None and settings.success_contains not in body
        ):
            # Some APIs answer 200 on errors: without the expected marker it is a refusal.
            kind = SmsUnavailable if status in _RETRY_HTTP or status >= 500 else SmsRejected
            raise kind(f"{self.name} answered {status}: {_scrub(body, sent)} (to {masked})")

    async def close(self) -> None:
        """Release connections."""
        await self._http.close()


def build_http_gateway(
    settings: SmsRuGatewaySettings | SmscGatewaySettings | HttpGatewaySettings,
    timeout_seconds: float,
) -> SmsGateway:
    """The gateway for one ``bonus.sms.gateway`` section (all but ``sandbox``)."""
    if isinstance(settings, SmsRuGatewaySettings):
        return SmsRuGateway(settings, timeout_seconds)
    if isinstance(settings, SmscGatewaySettings):
        return SmscGateway(settings, timeout_seconds)
    return HttpTemplateGateway(settings, timeout_seconds)


async def _logged(
    gateway: str, phone: str, reference: str, attempt: Awaitable[str | None]
) -> SmsSent:
    """Await one send and log the receipt (masked phone, provider's id; never the text).

    Failures are not logged here: the caller logs them once, with the reservation.
    """
    message_id = await attempt
    log.info(
        "sms_sent", gateway=gateway, phone=mask(phone), reference=reference, message_id=message_id
    )
    return SmsSent(gateway=gateway, message_id=message_id)


def _digits(gateway: str, phone: str) -> str:
    """``+79000000001`` → ``79000000001``; anything but E.164 is refused before sending."""
    if not _E164.fullmatch(phone):
        raise SmsRejected(f"{gateway}: the phone is not in E.164 form (to {mask(phone)})")
    return phone[1:]


def _json_answer(
    gateway: str, status: int, body: str, masked: str, sent: Iterable[str]
) -> dict[str, Any]:
    """The JSON object SMS.ru and SMSC answer with HTTP 200 — errors included."""
    if status != 200:
        kind = SmsUnavailable if status in _RETRY_HTTP or status >= 500 else SmsRejected
        raise kind(f"{gateway} answered HTTP {status}: {_scrub(body, sent)} (to {masked})")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise SmsUnavailable(
            f"{gateway}: the answer is not a JSON object: {_scrub(body, sent)} (to {masked})"
        )
    return answer


def _number_entry(results: Any, digits: str) -> dict[str, Any] | None:
    """SMS.ru's result for our number (the only result, if it spelled the number otherwise)."""
    if not isinstance(results, dict):
        return None
    entry = results.get(digits)
    if entry is None and len(results) == 1:
        entry = next(iter(results.values()))
    return entry if isinstance(entry, dict) else None


def _refusal(
    gateway: str,
    code: Any,
    reason: Any,
    retry: frozenset[int],
    masked: str,
    sent: Iterable[str],
) -> SmsRejected | SmsUnavailable:
    """The error for a provider's error code: retryable codes → SmsUnavailable."""
    try:
        number: int | None = int(code)
    except (TypeError, ValueError):
        number = None
    kind = SmsUnavailable if number in retry else SmsRejected
    detail = _scrub(str(reason or "no description"), sent)
    return kind(f"{gateway} answered {code if number is None else number}: {detail} (to {masked})")


def _scrub(text: str, sent: Iterable[str]) -> str:
    """Provider text fit for an error: what we sent removed, phones masked, cut short.

    Digit runs of what we sent are removed one by one too, so a provider that echoes the
    code alone (or JSON-escapes the text around it) does not put the code in an error.
    """
    values: set[str] = set()
    for value in sent:
        values.add(value)
        values.add(json.dumps(value)[1:-1])  # as it reads inside a JSON answer
        values.update(re.findall(r"\d{4,}", value))
    for value in sorted((v for v in values if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    text = mask_phone(" ".join(text.split()))
    return text if len(text) <= _EXCERPT_CHARS else text[:_EXCERPT_CHARS] + "…"


def _render(template: Any, fields: dict[str, str]) -> Any:
    """``json_body`` with every string (at any depth) rendered with ``fields``."""
    if isinstance(template, str):
        return template.format_map(fields)
    if isinstance(template, dict):
        return {key: _render(value, fields) for key, value in template.items()}
    if isinstance(template, list):
        return [_render(value, fields) for value in template]
    return template


def _strings(value: Any) -> Iterator[str]:
    """Every string inside a JSON-like value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
