"""Logs: phones masked; tokens, passwords and SMS codes never written."""

from __future__ import annotations

import io
import json
import logging

import structlog

from bridge.logs import configure_logging, get_logger
from bridge.redact import mask_phone, redact_value
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
        configure_logging(LogSettings(format=LogFormat.JSON), stream=stream)
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
