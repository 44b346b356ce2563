"""Phone numbers as customers type them, to E.164 (``+79000000001``)."""

from __future__ import annotations

import functools

import phonenumbers

from bridge.errors import BridgeError

DEFAULT_REGION = "RU"


class PhoneError(BridgeError, ValueError):
    """The text is not a phone number the bridge can use."""


@functools.lru_cache(maxsize=4096)
def normalize_phone(text: str, region: str = DEFAULT_REGION) -> str:
    """``8 (900) 000-00-01``, ``+7 900 000 00 01``, ``9000000001`` → ``+79000000001``.

    Kept for the last 4,096 texts: a look-up parses its phone when it is validated and
    again when it is resolved, and tills send the same few notations all day (~50 µs each).
    """
    raw = text.strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not 10 <= len(digits) <= 15 or len(raw) > 40:
        raise PhoneError("must be a phone number of 10 to 15 digits")
    if len(digits) == 10 and not raw.startswith("+"):
        raw = "8" + digits  # a bare national number, as tills often send it
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneError(f"is not a phone number ({exc.error_type})") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask(e164: str) -> str:
    """``+79000000001`` → ``+7 900 ***-**-01``: enough for a customer to recognise it."""
    digits = e164.lstrip("+")
    if len(digits) == 11 and digits[0] == "7":
        return f"+7 {digits[1:4]} ***-**-{digits[-2:]}"
    return "+" + digits[:2] + "*" * max(0, len(digits) - 4) + digits[-2:]
