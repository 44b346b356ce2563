"""SMS gateways against loopback servers that read requests and answer as each provider does.

The SMS.ru and SMSC servers below follow the providers' documentation: SMS.ru reads a
UTF-8 form or query (``api_id``, ``to``, ``msg``, ``json=1``) and answers HTTP 200 with a
request-level status and one result per number; SMSC reads ``login``/``psw``/``phones``/
``mes`` with the text in the ``charset`` the request names (windows-1251 when none) and, with
``fmt=3``, answers ``{id, cnt}`` or ``{error, error_code}``. The template target records
whatever arrives and answers what a test tells it to.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from pydantic import SecretStr
from structlog.testing import capture_logs

from bridge.settings_sms import HttpGatewaySettings, SmscGatewaySettings, SmsRuGatewaySettings
from bridge.sms.gateway import SmsGateway, SmsRejected, SmsSent, SmsUnavailable
from bridge.sms.providers import (
    HttpTemplateGateway,
    SmscGateway,
    SmsRuGateway,
    build_http_gateway,
)
from tests.support.daemon import free_port

PHONE = "+79000000001"
DIGITS = "79000000001"
MASKED = "+7 900 ***-**-01"
CODE = "482913"
TEXT = f"Код {CODE}: списание 500 бонусов по заказу A-17. Никому его не сообщайте."
REFERENCE = "rsv_0123456789abcdef0123"  # the shape of the bridge's reservation ids
API_ID = "C0FFEE00-1234-5678-9ABC-DEF012345678"
LOGIN = "shop"
PASSWORD = "smsc-Pa55word"
TOKEN = "Bearer tmpl-Secret-Token"
PARAM_KEY = "plain-key-7788"
TIMEOUT = 0.3


@dataclass
class Call:
    """One request as a provider received it."""

    method: str
    query: dict[str, str]
    form: dict[str, str]
    content_type: str
    headers: dict[str, str]
    raw: bytes


@dataclass
class Faults:
    """What a server does instead of answering normally."""

    http_status: int | None = None  # answer this status with an HTML error page
    hang: bool = False  # answer nothing until the test ends
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def apply(self) -> web.Response | None:
        """Hang or fail as configured; None to answer normally."""
        if self.hang:
            await self.release.wait()
        if self.http_status is not None:
            return web.Response(
                status=self.http_status,
                text=f"<html><body><h1>{self.http_status}</h1>nginx</body></html>",
                content_type="text/html",
            )
        return None


SMSRU_TEXTS = {
    200: "Неправильный api_id",
    201: "Не хватает средств на лицевом счету",
    202: "Неправильно указан номер телефона получателя, либо на него нет маршрута",
    203: "Нет текста сообщения",
    204: "Имя отправителя не согласовано с администрацией",
    207: "На этот номер нет маршрута для доставки сообщений",
    209: "Вы добавили этот номер (или один из номеров) в стоп-лист",
    212: "Текст сообщения необходимо передать в кодировке UTF-8",
    220: "Сервис временно недоступен, попробуйте чуть позже",
    230: "Превышен общий лимит количества сообщений на этот номер в день",
    231: "Превышен лимит одинаковых сообщений на этот номер в минуту",
    233: "Превышен лимит отправки повторных сообщений с кодом на этот номер",
    500: "Ошибка на сервере. Повторите запрос.",
}


@dataclass
class SmsRuEmulator:
    """``/sms/send`` as sms.ru/api/send describes it."""

    api_id: str = API_ID
    request_error: int | None = None  # a request-level error code (money, sender, outage)
    number_errors: dict[str, int] = field(default_factory=dict)  # per-number error codes
    faults: Faults = field(default_factory=Faults)
    calls: list[Call] = field(default_factory=list)
    sent: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        """Read GET or POST parameters (form fields win) and answer like SMS.ru."""
        if (failed := await self.faults.apply()) is not None:
            return failed
        raw = await request.read()
        try:
            form = dict(parse_qsl(raw.decode("ascii"), encoding="utf-8", errors="strict"))
        except UnicodeDecodeError:
            return self._error(212)
        self.calls.append(
            Call(
                request.method,
                dict(request.query),
                form,
                request.content_type,
                dict(request.headers),
                raw,
            )
        )
        params = {**request.query, **form}
        if params.get("json") != "1":  # the plain-text answer: code, ids, balance
            return web.Response(text="100\n000000-10000001\nbalance=4122.56")
        if params.get("api_id") != self.api_id:
            return self._error(200)
        if self.request_error is not None:
            return self._error(self.request_error)
        if not params.get("msg"):
            return self._error(203)
        results: dict[str, Any] = {}
        for number in params.get("to", "").split(","):
            code = self.number_errors.get(number, 100 if number.isdigit() else 202)
            if code == 100:
                self.sent += 1
                results[number] = {
                    "status": "OK",
                    "status_code": 100,
                    "sms_id": f"000000-{10000000 + self.sent}",
                }
            else:
                results[number] = {
                    "status": "ERROR",
                    "status_code": code,
                    "status_text": SMSRU_TEXTS[code],
                }
        return web.json_response(
            {"status": "OK", "status_code": 100, "sms": results, "balance": 4122.56}
        )

    def _error(self, code: int) -> web.Response:
        return web.json_response(
            {"status": "ERROR", "status_code": code, "status_text": SMSRU_TEXTS[code]}
        )


SMSC_TEXTS = {
    1: "Ошибка в параметрах.",
    2: "Неверный логин или пароль.",
    3: "Недостаточно средств на счете Клиента.",
    4: "IP-адрес временно заблокирован из-за частых ошибок в запросах.",
    5: "Неверный формат даты.",
    6: "Сообщение запрещено (по тексту или по имени отправителя).",
    7: "Неверный формат номера телефона.",
    8: "Сообщение на указанный номер не может быть доставлено.",
    9: "Отправка более одного одинакового запроса на передачу SMS-сообщения в течение минуты.",
}


@dataclass
class SmscEmulator:
    """``/sys/send.php`` as smsc.ru/api/http/send/sms/ describes it."""

    login: str = LOGIN
    password: str = PASSWORD
    error: int | None = None  # answer this error code to a valid request
    faults: Faults = field(default_factory=Faults)
    calls: list[Call] = field(default_factory=list)
    sent: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        """Decode the text in the request's ``charset`` (windows-1251 by default)."""
        if (failed := await self.faults.apply()) is not None:
            return failed
        raw = await request.read()
        body = raw.decode("ascii")
        charset = dict(parse_qsl(body)).get("charset") or request.query.get("charset")
        form = dict(parse_qsl(body, encoding=charset or "windows-1251", errors="replace"))
        self.calls.append(
            Call(
                request.method,
                dict(request.query),
                form,
                request.content_type,
                dict(request.headers),
                raw,
            )
        )
        params = {**request.query, **form}
        if params.get("fmt") != "3":
            return web.Response(text=f"OK - 1 SMS, ID - {self.sent + 1}")
        if params.get("login") != self.login or params.get("psw") != self.password:
            return self._error(2)
        if not params.get("mes") or not params.get("phones"):
            return self._error(1)
        if not params["phones"].removeprefix("+").isdigit():
            return self._error(7)
        if self.error is not None:
            return self._error(self.error)
        self.sent += 1
        return web.json_response({"id": params.get("id") or self.sent, "cnt": 1})

    def _error(self, code: int) -> web.Response:
        answer: dict[str, Any] = {"error": SMSC_TEXTS[code], "error_code": code}
        if code in {3, 6, 7, 8}:  # these errors name the message id as well
            answer["id"] = self.sent + 1
        return web.json_response(answer)


@dataclass
class TemplateTarget:
    """Some provider's HTTP API: records each request, answers ``status`` and ``body``."""

    status: int = 202
    body: str = '{"queued": true, "id": "m-1"}'
    faults: Faults = field(default_factory=Faults)
    calls: list[Call] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request as it arrived."""
        if (failed := await self.faults.apply()) is not None:
            return failed
        raw = await request.read()
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded":
            form = dict(parse_qsl(raw.decode("ascii"), encoding="utf-8", errors="strict"))
        self.calls.append(
            Call(
                request.method,
                dict(request.query),
                form,
                request.content_type,
                dict(request.headers),
                raw,
            )
        )
        return web.Response(status=self.status, text=self.body, content_type="application/json")


class Emulator(Protocol):
    faults: Faults

    async def handle(self, request: web.Request) -> web.Response: ...


Serve = Callable[[Emulator, str], Awaitable[str]]
G = TypeVar("G", bound=SmsGateway)


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an emulator on a free loopback port; its URL for ``path``."""
    started: list[tuple[Emulator, web.AppRunner]] = []

    async def start(emulator: Emulator, path: str) -> str:
        app = web.Application()
        app.router.add_route("*", path, emulator.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        started.append((emulator, runner))
        return f"http://127.0.0.1:{runner.addresses[0][1]}{path}"

    yield start
    for emulator, runner in started:
        emulator.faults.release.set()
        await runner.cleanup()


@pytest.fixture
async def keep() -> AsyncIterator[Callable[[G], G]]:
    """Close every gateway a test made."""
    made: list[SmsGateway] = []

    def hold(gateway: G) -> G:
        made.append(gateway)
        return gateway

    yield hold
    for gateway in made:
        await gateway.close()


def smsru(url: str, **options: Any) -> SmsRuGateway:
    settings = SmsRuGatewaySettings(type="smsru", api_id=SecretStr(API_ID), url=url)
    return SmsRuGateway(settings.model_copy(update=options), TIMEOUT)


def smsc(url: str, **options: Any) -> SmscGateway:
    settings = SmscGatewaySettings(type="smsc", login=LOGIN, password=SecretStr(PASSWORD), url=url)
    return SmscGateway(settings.model_copy(update=options), TIMEOUT)


def template(url: str, **options: Any) -> HttpTemplateGateway:
    settings = HttpGatewaySettings.model_validate({"type": "http", "url": url, **options})
    return HttpTemplateGateway(settings, TIMEOUT)


def assert_clean(exc: BaseException, *secrets: str) -> None:
    """No exception in the chain shows the text, the code, the full phone or a secret."""
    seen: BaseException | None = exc
    while seen is not None:
        shown = f"{seen!s} {seen!r}"
        for secret in (TEXT, CODE, DIGITS, DIGITS[1:], *secrets):
            assert secret not in shown, f"{secret!r} in {shown!r}"
        seen = seen.__cause__ or seen.__context__


# --- SMS.ru ------------------------------------------------------------------------------


async def test_smsru_posts_a_utf8_form_and_returns_the_sms_id(serve: Serve, keep: Any) -> None:
    emulator = SmsRuEmulator()
    gateway = keep(smsru(await serve(emulator, "/sms/send"), sender="SHOP", test=True))
    with capture_logs() as logs:
        sent = await gateway.send(PHONE, TEXT, REFERENCE)

    assert sent == SmsSent("smsru", "000000-10000001")
    (call,) = emulator.calls
    assert call.method == "POST"
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.query == {}  # the api_id never travels in the URL
    assert call.form == {
        "api_id": API_ID,
        "to": DIGITS,
        "msg": TEXT,
        "json": "1",
        "from": "SHOP",
        "test": "1",
    }
    assert b"msg=%D0%9A%D0%BE%D0%B4+482913" in call.raw  # "Код 482913" percent-encoded UTF-8
    assert logs == [
        {
            "event": "sms_sent",
            "log_level": "info",
            "gateway": "smsru",
            "phone": MASKED,
            "reference": REFERENCE,
            "message_id": "000000-10000001",
        }
    ]


async def test_smsru_leaves_out_sender_and_test_unless_configured(serve: Serve, keep: Any) -> None:
    emulator = SmsRuEmulator()
    gateway = keep(smsru(await serve(emulator, "/sms/send")))
    await gateway.send(PHONE, TEXT, REFERENCE)
    assert set(emulator.calls[0].form) == {"api_id", "to", "msg", "json"}


@pytest.mark.parametrize(
    ("where", "code", "reaction"),
    [
        ("request", 201, SmsRejected),  # no money
        ("request", 204, SmsRejected),  # sender not approved
        ("request", 220, SmsUnavailable),  # service temporarily unavailable
        ("request", 500, SmsUnavailable),  # server error, repeat
        ("number", 202, SmsRejected),  # bad number
        ("number", 207, SmsRejected),  # no route
        ("number", 209, SmsRejected),  # stop list
        ("number", 230, SmsRejected),  # daily limit for the number
        ("number", 231, SmsUnavailable),  # identical messages per minute
        ("number", 233, SmsUnavailable),  # repeated codes in a short period
    ],
)
async def test_smsru_answer_codes_map_to_reactions(
    serve: Serve, keep: Any, where: str, code: int, reaction: type[Exception]
) -> None:
    emulator = SmsRuEmulator()
    if where == "request":
        emulator.request_error = code
    else:
        emulator.number_errors[DIGITS] = code
    gateway = keep(smsru(await serve(emulator, "/sms/send")))

    with pytest.raises(reaction) as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)

    assert type(caught.value) is reaction
    assert str(caught.value) == f"smsru answered {code}: {SMSRU_TEXTS[code]} (to {MASKED})"
    assert_clean(caught.value, API_ID)


async def test_smsru_wrong_api_id_is_rejected_without_showing_it(serve: Serve, keep: Any) -> None:
    emulator = SmsRuEmulator(api_id="the-right-one")
    gateway = keep(smsru(await serve(emulator, "/sms/send")))
    with pytest.raises(SmsRejected, match="smsru answered 200: Неправильный api_id") as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)
    assert_clean(caught.value, API_ID)


async def test_smsru_5xx_timeout_and_refused_connection_are_unavailable(
    serve: Serve, keep: Any
) -> None:
    broken = SmsRuEmulator(faults=Faults(http_status=502))
    hanging = SmsRuEmulator(faults=Faults(hang=True))
    gateways = [
        keep(smsru(await serve(broken, "/sms/send"))),
        keep(smsru(await serve(hanging, "/sms/send"))),
        keep(smsru(f"http://127.0.0.1:{free_port()}/sms/send")),
    ]
    messages = []
    for gateway in gateways:
        started = time.monotonic()
        with pytest.raises(SmsUnavailable) as caught:
            await gateway.send(PHONE, TEXT, REFERENCE)
        assert time.monotonic() - started < 1.5
        assert_clean(caught.value, API_ID)
        messages.append(str(caught.value))
    assert messages[0].startswith("smsru answered HTTP 502: <html>")
    assert messages[1] == f"smsru: no answer within 0.3 s (to {MASKED})"
    assert messages[2].startswith("smsru: cannot reach the provider (")


async def test_smsru_unreadable_answer_is_unavailable(serve: Serve, keep: Any) -> None:
    target = TemplateTarget(status=200, body="100\n000000-10000001\nbalance=1.00")
    gateway = keep(smsru(await serve(target, "/sms/send")))
    with pytest.raises(SmsUnavailable, match="not a JSON object") as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)
    assert_clean(caught.value, API_ID)


# --- SMSC.ru -----------------------------------------------------------------------------


async def test_smsc_posts_fmt3_utf8_and_returns_the_id(serve: Serve, keep: Any) -> None:
    emulator = SmscEmulator()
    gateway = keep(smsc(await serve(emulator, "/sys/send.php"), sender="SHOP"))

    sent = await gateway.send(PHONE, TEXT, REFERENCE)

    assert sent == SmsSent("smsc", REFERENCE)
    (call,) = emulator.calls
    assert call.method == "POST"
    assert call.query == {}  # login and password stay out of the URL
    assert call.form == {
        "login": LOGIN,
        "psw": PASSWORD,
        "phones": DIGITS,
        "mes": TEXT,  # decoded as the charset the request named: UTF-8
        "fmt": "3",
        "charset": "utf-8",
        "sender": "SHOP",
        "id": REFERENCE,
    }


async def test_smsc_sends_no_id_the_provider_would_refuse(serve: Serve, keep: Any) -> None:
    emulator = SmscEmulator()
    gateway = keep(smsc(await serve(emulator, "/sys/send.php")))
    sent = await gateway.send(PHONE, TEXT, "reservation #17 / Иванов")
    assert sent == SmsSent("smsc", "1")
    assert "id" not in emulator.calls[0].form
    assert "sender" not in emulator.calls[0].form


@pytest.mark.parametrize(
    ("code", "reaction"),
    [
        (1, SmsRejected),
        (3, SmsRejected),
        (4, SmsUnavailable),
        (5, SmsRejected),
        (6, SmsRejected),
        (7, SmsRejected),
        (8, SmsRejected),
        (9, SmsUnavailable),
    ],
)
async def test_smsc_error_codes_map_to_reactions(
    serve: Serve, keep: Any, code: int, reaction: type[Exception]
) -> None:
    emulator = SmscEmulator(error=code)
    gateway = keep(smsc(await serve(emulator, "/sys/send.php")))
    with pytest.raises(reaction) as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)
    assert type(caught.value) is reaction
    assert str(caught.value) == f"smsc answered {code}: {SMSC_TEXTS[code]} (to {MASKED})"
    assert_clean(caught.value, PASSWORD)


async def test_smsc_wrong_password_is_rejected_without_showing_it(serve: Serve, keep: Any) -> None:
    emulator = SmscEmulator(password="the-right-one")
    gateway = keep(smsc(await serve(emulator, "/sys/send.php")))
    with pytest.raises(SmsRejected, match="smsc answered 2: Неверный логин или пароль") as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)
    assert_clean(caught.value, PASSWORD)


async def test_smsc_5xx_and_timeout_are_unavailable(serve: Serve, keep: Any) -> None:
    for faults in (Faults(http_status=503), Faults(hang=True)):
        gateway = keep(smsc(await serve(SmscEmulator(faults=faults), "/sys/send.php")))
        started = time.monotonic()
        with pytest.raises(SmsUnavailable) as caught:
            await gateway.send(PHONE, TEXT, REFERENCE)
        assert time.monotonic() - started < 1.5
        assert_clean(caught.value, PASSWORD)


# --- HTTP template -----------------------------------------------------------------------

PARAMS = {"to": "{phone}", "message": "{text}", "key": PARAM_KEY}


async def test_template_get_renders_params_into_the_query(serve: Serve, keep: Any) -> None:
    target = TemplateTarget(status=200, body="OK: queued")
    url = await serve(target, "/send")
    gateway = keep(
        template(
            url,
            method="GET",
            params=PARAMS,
            headers={"Authorization": TOKEN},
            success_contains="OK",
        )
    )

    assert await gateway.send(PHONE, TEXT, REFERENCE) == SmsSent("http", None)

    (call,) = target.calls
    assert call.method == "GET"
    assert call.query == {"to": PHONE, "message": TEXT, "key": PARAM_KEY}
    assert call.headers["Authorization"] == TOKEN
    assert call.raw == b""


async def test_template_post_sends_a_utf8_form(serve: Serve, keep: Any) -> None:
    target = TemplateTarget()
    gateway = keep(template(await serve(target, "/send"), params=PARAMS))

    await gateway.send(PHONE, TEXT, REFERENCE)

    (call,) = target.calls
    assert call.method == "POST"
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.form == {"to": PHONE, "message": TEXT, "key": PARAM_KEY}
    assert call.query == {}


async def test_template_post_json_body_renders_every_string(serve: Serve, keep: Any) -> None:
    target = TemplateTarget()
    body = {
        "messages": [{"recipient": "{phone}", "body": "{text}", "flash": False, "ttl": 300}],
        "channel": "sms",
        "meta": {"note": "to {phone}; braces {{kept}}"},
    }
    gateway = keep(template(await serve(target, "/send"), json_body=body, params={"account": "a1"}))

    await gateway.send(PHONE, TEXT, REFERENCE)

    (call,) = target.calls
    assert call.content_type == "application/json"
    assert json.loads(call.raw) == {
        "messages": [{"recipient": PHONE, "body": TEXT, "flash": False, "ttl": 300}],
        "channel": "sms",
        "meta": {"note": f"to {PHONE}; braces {{kept}}"},
    }
    assert call.query == {"account": "a1"}


@pytest.mark.parametrize(
    ("status", "reaction"),
    [
        (400, SmsRejected),
        (401, SmsRejected),
        (403, SmsRejected),
        (404, SmsRejected),
        (422, SmsRejected),
        (408, SmsUnavailable),
        (429, SmsUnavailable),
        (500, SmsUnavailable),
        (502, SmsUnavailable),
        (503, SmsUnavailable),
    ],
)
async def test_template_statuses_map_to_reactions(
    serve: Serve, keep: Any, status: int, reaction: type[Exception]
) -> None:
    target = TemplateTarget(status=status, body='{"error": "nope"}')
    gateway = keep(template(await serve(target, "/send"), params=PARAMS))
    with pytest.raises(reaction) as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)
    assert type(caught.value) is reaction
    assert str(caught.value) == f'http answered {status}: {{"error": "nope"}} (to {MASKED})'


async def test_template_200_without_the_marker_is_rejected(serve: Serve, keep: Any) -> None:
    target = TemplateTarget(status=200, body='{"result": "ERROR", "reason": "bad sender"}')
    gateway = keep(template(await serve(target, "/send"), params=PARAMS, success_contains="OK"))
    with pytest.raises(SmsRejected, match="bad sender"):
        await gateway.send(PHONE, TEXT, REFERENCE)


async def test_template_error_text_is_scrubbed_of_what_was_sent(serve: Serve, keep: Any) -> None:
    echo = {
        "error": "invalid sender",
        "preview": TEXT[:12],  # a partial echo: only the code's digits give it away
        "to": PHONE,
        "text": TEXT,
        "auth": TOKEN,
        "key": PARAM_KEY,
    }
    target = TemplateTarget(status=400, body=json.dumps(echo))  # Cyrillic \u-escaped
    gateway = keep(
        template(await serve(target, "/send"), params=PARAMS, headers={"Authorization": TOKEN})
    )
    with pytest.raises(SmsRejected, match="invalid sender") as caught:
        await gateway.send(PHONE, TEXT, REFERENCE)
    escaped_word = json.dumps("списание")[1:-1]  # the text as a JSON answer spells it
    assert_clean(caught.value, TOKEN, "tmpl-Secret-Token", PARAM_KEY, escaped_word)


async def test_template_timeout_and_refused_connection_are_unavailable(
    serve: Serve, keep: Any
) -> None:
    hanging = TemplateTarget(faults=Faults(hang=True))
    secret_url = f"http://127.0.0.1:{free_port()}/send?apikey={PARAM_KEY}"
    gateways = [
        keep(template(await serve(hanging, "/send"), method="GET", params=PARAMS)),
        keep(template(secret_url, method="GET", params=PARAMS)),
    ]
    for gateway in gateways:
        started = time.monotonic()
        with pytest.raises(SmsUnavailable) as caught:
            await gateway.send(PHONE, TEXT, REFERENCE)
        assert time.monotonic() - started < 1.5
        assert_clean(caught.value, PARAM_KEY, "apikey")


async def test_template_json_body_placeholders_are_checked_up_front() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{code\}"):
        template("http://127.0.0.1:1/send", json_body={"msg": "{text}", "otp": "{code}"})
    with pytest.raises(ValueError, match="json_body needs method: POST"):
        template("http://127.0.0.1:1/send", method="GET", json_body={"msg": "{text}"})


# --- all ---------------------------------------------------------------------------------


async def test_build_http_gateway_picks_the_provider() -> None:
    built = [
        build_http_gateway(
            SmsRuGatewaySettings(type="smsru", api_id=SecretStr(API_ID)), timeout_seconds=2
        ),
        build_http_gateway(
            SmscGatewaySettings(type="smsc", login=LOGIN, password=SecretStr(PASSWORD)), 2
        ),
        build_http_gateway(HttpGatewaySettings(type="http", url="https://sms.example/send"), 2),
    ]
    assert [type(g) for g in built] == [SmsRuGateway, SmscGateway, HttpTemplateGateway]
    assert [g.name for g in built] == ["smsru", "smsc", "http"]
    assert all(isinstance(g, SmsGateway) for g in built)
    for gateway in built:
        await gateway.close()  # nothing was opened: closing is still safe


@pytest.mark.parametrize("make", [smsru, smsc, template])
async def test_a_phone_not_in_e164_is_refused_before_sending(
    serve: Serve, keep: Any, make: Callable[..., SmsGateway]
) -> None:
    target = TemplateTarget()
    gateway = keep(make(await serve(target, "/send")))
    with pytest.raises(SmsRejected, match=r"not in E\.164"):
        await gateway.send("89000000001", TEXT, REFERENCE)
    assert target.calls == []
