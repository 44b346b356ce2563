"""Logs: phones masked; tokens, passwords and SMS codes never written."""

from __future__ import annotations

import io
import json
import logging

import structlog

from bridge.logs import configure_logging, get_logger
from bridge.redact import mask_phone, redact_body, redact_value
from bridge.settings import LogFormat, LogSettings


def test_mask_phone_keeps_the_last_two_digits() -> None:
    assert mask_phone("call +7 900 000-00-01 now") == "call +7********01 now"
    assert mask_phone("89000000001") == "8********01"
    assert mask_phone("order 12345 of 2026-11-22") == "order 12345 of 2026-11-22"


def test_secret_keys_are_removed_wherever_they_nest() -> None:
    value = {
        "token": "abc",
        "nested": {"sms_code": "123456", "Authorization": "Bearer x"},
        "list": [{"password": "p"}],
        "code": "4321",
        "phone": "+79000000001",
    }
    assert redact_value("", value) == {
        "token": "[redacted]",
        "nested": {"sms_code": "[redacted]", "Authorization": "[redacted]"},
        "list": [{"password": "[redacted]"}],
        "code": "[redacted]",
        "phone": "+7********01",
    }


def test_inline_secrets_in_messages() -> None:
    text = redact_value("error", "GET /hooks/x?token=s3cr3t&a=1 failed; Bearer abc.def")
    assert "s3cr3t" not in text and "abc.def" not in text


def _json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_structlog_and_stdlib_records_are_redacted_json() -> None:
    stream = io.StringIO()
    try:
        configure_logging(LogSettings(format=LogFormat.JSON), stream=stream, cache=False)
        get_logger("t").info("code_sent", phone="+7 900 000-00-01", code="654321", api_key="k-123")
        logging.getLogger("aiohttp.server").warning("peer +79000000001 sent token=abc")
        lines = _json_lines(stream)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    assert lines[0]["event"] == "code_sent"
    assert lines[0]["phone"] == "+7********01"
    assert lines[0]["code"] == "[redacted]"
    assert lines[0]["api_key"] == "[redacted]"
    assert "654321" not in json.dumps(lines)
    assert lines[1]["event"] == "peer +7********01 sent token=[redacted]"
    assert lines[1]["level"] == "warning"


def test_stored_bodies_lose_their_credentials() -> None:
    form = (
        b"event=ONAPPINSTALL&data%5BFIELDS%5D%5BID%5D=7&auth%5Bapplication_token%5D=s3"
        b"&auth%5Baccess_token%5D=a1&auth%5Bdomain%5D=shop.bitrix24.ru"
    )
    stored = redact_body(form, "application/x-www-form-urlencoded")
    assert "s3" not in stored.replace("shop", "")
    assert "a1" not in stored
    assert "auth[domain]=shop.bitrix24.ru" in stored
    assert "data[FIELDS][ID]=7" in stored
    as_json = redact_body(b'{"apiKey": "k", "phone": "+79000000001", "x": [1', "application/json")
    assert as_json == '{"apiKey": "[redacted]", "phone": "+7********01", "x": [1'
    assert redact_body(b'{"password": "p", "n": 1}', "application/json") == (
        '{"password": "[redacted]", "n": 1}'
    )
