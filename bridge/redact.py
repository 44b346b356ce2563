"""Redaction of log records: phones masked; tokens, keys, passwords and codes removed.

Runs as a structlog processor on every record, ours and the stdlib's, so nothing reaches
the output unredacted whatever logged it.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from typing import Any

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
        return mask_phone(_INLINE_SECRET.sub(lambda m: m.group(1) + REDACTED, value))
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
