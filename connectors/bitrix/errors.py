"""Bitrix24 errors as the core's delivery errors (bitrix.md §1.7).

- 503 ``QUERY_LIMIT_EXCEEDED`` (the leaky bucket): RateLimited, retry after 1 s;
- 429 ``OPERATION_TIME_LIMIT`` (the method's CPU budget): RateLimited until
  ``operating_reset_at``;
- 503 ``OVERLOAD_LIMIT`` (a manual block), no answer, HTML, 5xx: Transient;
- 401 (``NO_AUTH_FOUND``, ``INVALID_TOKEN`` …), 403 (``ACCESS_DENIED``,
  ``insufficient_scope`` …): AuthError;
- ``ERROR_METHOD_NOT_FOUND``, ``ERROR_BATCH_*``: ConfigError;
- 400 (invalid fields, not found, sale's numeric codes): PermanentError.
"""

from __future__ import annotations

import time

from bridge.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.bitrix.client import BitrixError

# By code, for errors of a command inside a batch, which come with HTTP 200 (§1.5, §1.7).
AUTH_CODES = frozenset(
    {
        "NO_AUTH_FOUND",
        "INVALID_CREDENTIALS",
        "ACCESS_DENIED",
        "insufficient_scope",
        "user_access_error",
        "expired_token",
        "invalid_token",
        "invalid_grant",
        "invalid_client",
        "ERROR_OAUTH",
        "WRONG_AUTH_TYPE",
    }
)
TRANSIENT_CODES = frozenset({"INTERNAL_SERVER_ERROR", "ERROR_UNEXPECTED_ANSWER", "OVERLOAD_LIMIT"})
CONFIG_CODES = frozenset(
    {"ERROR_METHOD_NOT_FOUND", "ERROR_BATCH_LENGTH_EXCEEDED", "ERROR_BATCH_METHOD_NOT_ALLOWED"}
)
# §1.7: "not found" answers differ by family: old crm.* ("" + "Not found"), crm.item.*
# (NOT_FOUND), sale.* (a numeric code whose last part is 404...).
NOT_FOUND_TEXT = ("not found", "is not defined or invalid", "does not exist")


def classify(exc: BitrixError, now: float | None = None) -> DeliveryError:
    """The delivery error a Bitrix error is."""
    code, status = exc.code, exc.status
    if code == "QUERY_LIMIT_EXCEEDED" or (status == 503 and code != "OVERLOAD_LIMIT"):
        return RateLimited(f"Bitrix24 asks to slow down ({exc})", 1.0)
    if code == "OPERATION_TIME_LIMIT" or status == 429:
        return RateLimited(
            f"Bitrix24's time budget for the method is spent ({exc})", _reset(exc, now)
        )
    if status == 0 or status >= 500 or code in TRANSIENT_CODES:
        return TransientError(f"Bitrix24 failed ({exc})")
    if code in CONFIG_CODES:
        return ConfigError(f"Bitrix24 cannot take this call ({exc})")
    if status in (401, 403) or code in AUTH_CODES:
        return AuthError(f"Bitrix24 refused the webhook or token, or its rights ({exc})")
    return PermanentError(f"Bitrix24 rejected the call ({exc})")


def is_not_found(exc: BitrixError) -> bool:
    """Whether Bitrix said the entity does not exist."""
    if exc.status in (0, 401, 403, 429, 503) or exc.code in CONFIG_CODES:
        return False
    text = exc.description.casefold()
    return exc.code == "NOT_FOUND" or any(t in text for t in NOT_FOUND_TEXT)


def _reset(exc: BitrixError, now: float | None) -> float:
    """Seconds until the method's oldest minute of spent time expires (§1.6
    ``operating_reset_at``), 60 s when the answer does not say."""
    body = exc.body if isinstance(exc.body, dict) else {}
    spent = body.get("time")
    reset = spent.get("operating_reset_at") if isinstance(spent, dict) else None
    if isinstance(reset, int | float):
        return max(1.0, float(reset) - (time.time() if now is None else now))
    return 60.0
