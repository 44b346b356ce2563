"""Redaction of log records: phones masked; tokens, keys, passwords and codes removed.

Runs as a structlog processor on every record, ours and the stdlib's, so nothing reaches
the output unredacted whatever logged it.
"""

from __future__ import annotations

import json
import re
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

REDACTED = "[redacted]"

# Keys whose values are secrets or one-time codes, wherever they appear.
_SECRET_KEY = re.compile(
    r"(token|secret|password|passwd|api[_-]?key|apikey|authorization|signature|"
    r"(^|_)code$|sms_code|otp|cookie|whsec)",
    re.IGNORECASE,
)
# Phone-like runs: an optional +, then 10 to 15 digits with spaces, dashes, dots or
# brackets between them. The last two digits stay so support can tell customers apart.
_PHONE = re.compile(r"(?<![\w])(\+?\d[\d\s\-().]{8,20}\d)(?![\w])")
# Secrets that travel inside strings: bearer tokens, ?token= / apiKey= query parameters.
_INLINE_SECRET = re.compile(
    r"(?i)(bearer\s+|(?:token|apikey|api_key|secret|password|code)=)[^\s&\"',;]+"
)
# The same inside text that looks like JSON but did not parse: "apiKey": "...".
_QUOTED_SECRET = re.compile(
    r'(?i)("[^"]*(?:token|secret|password|passwd|api_?key|code)[^"]*"\s*:\s*")[^"]*'
)


def mask_phone(text: str) -> str:
    """Mask every phone number in ``text``: ``+7 900 000-00-01`` → ``+7*******01``."""

    def one(match: re.Match[str]) -> str:
        raw = match.group(1)
        digits = re.sub(r"\D", "", raw)
        if not 10 <= len(digits) <= 15:
            return raw
        prefix = "+" if raw.startswith("+") else ""
        return f"{prefix}{digits[0]}{'*' * (len(digits) - 3)}{digits[-2:]}"

    return _PHONE.sub(one, text)


def redact_value(key: str, value: Any) -> Any:
    """Redact one value found under ``key`` (recursing into containers)."""
    if _SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        value = _INLINE_SECRET.sub(lambda m: m.group(1) + REDACTED, value)
        value = _QUOTED_SECRET.sub(lambda m: m.group(1) + REDACTED, value)
        return mask_phone(value)
    if isinstance(value, int) and not isinstance(value, bool) and 10**9 <= abs(value) < 10**15:
        return mask_phone(str(value))  # a phone sent as a JSON number
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(key, v) for v in value]
    return value


def redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> Any:
    """structlog processor: redact every field of the record, including the message."""
    for key in list(event):
        if key in ("level", "timestamp", "logger"):
            continue
        event[key] = redact_value("" if key == "event" else key, event[key])
    return event


def redact_body(body: bytes, content_type: str) -> str:
    """A stored copy of an inbound body with its secrets removed and phones masked.

    Rejected bodies are kept for support; a sender's credentials inside them (Bitrix puts
    ``auth[application_token]`` and OAuth tokens in every event) must not be.
    """
    return (
        _redact_text(body.decode("utf-8", "replace"), content_type)
        .encode("utf-8", "replace")
        .decode("utf-8")
    )  # a "\ud800" escape decodes to a lone surrogate SQLite cannot store


def _redact_text(text: str, content_type: str) -> str:
    if content_type == "application/x-www-form-urlencoded":
        pairs = parse_qsl(text, keep_blank_values=True)
        if pairs:
            return urlencode([(k, redact_value(k, v)) for k, v in pairs], safe="[]")
    try:
        doc = json.loads(text)
    except ValueError:
        return str(redact_value("body", text))
    except RecursionError:
        return "[unparsable body nested too deeply; not stored]"
    return json.dumps(redact_value("", doc), ensure_ascii=False)
