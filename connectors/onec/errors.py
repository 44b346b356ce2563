"""The one place 1C's failures are classified: what the bridge does about each.

====================================  ===============================================
what 1C did                           reaction
====================================  ===============================================
fault with a business code            ``LedgerRefused(code)`` (permanent: not retried)
fault without a known code            ``TransientError`` (a 1C exception, DB lock, ...)
HTTP 401 / 403                        ``AuthError`` (user or its right to the service)
HTTP 404 of the publication           ``ConfigError`` (wrong address or service name)
HTTP 429 / 5xx, no answer, timeout    ``TransientError`` (``RateLimited`` for 429)
other HTTP 4xx                        ``PermanentError``
WSDL or names do not match            ``ConfigError`` (caught by ``bridge check --probe``)
====================================  ===============================================
"""

from __future__ import annotations

from bridge.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)
from bridge.ledger import LedgerErrorCode, LedgerRefused
from connectors.onec.client import (
    OnecCallError,
    OnecContractMismatch,
    OnecFault,
    OnecHTTPError,
    OnecUnreachable,
)
from connectors.onec.contract import fault_code


def classify(exc: OnecCallError) -> DeliveryError:
    """The bridge error for a failed 1C call; raise it ``from`` the original."""
    if isinstance(exc, OnecFault):
        code = exc.code or fault_code(exc.text)
        if code is not None and code in LedgerErrorCode.__members__.values():
            message = exc.text.split(":", 1)[-1].strip() if ":" in exc.text else exc.text
            return LedgerRefused(LedgerErrorCode(code), message)
        return TransientError(f"1C fault: {exc.text}")
    if isinstance(exc, OnecHTTPError):
        return _by_status(exc.status, str(exc))
    if isinstance(exc, OnecUnreachable):
        return TransientError(f"1C did not answer: {exc}")
    if isinstance(exc, OnecContractMismatch):
        return ConfigError(f"1C service does not match the configured contract: {exc}")
    return TransientError(f"1C call failed: {exc}")


def _by_status(status: int, message: str) -> DeliveryError:
    if status in (401, 403):
        return AuthError(f"1C refused the credentials ({message})")
    if status == 404:
        return ConfigError(f"no such 1C service at the configured address ({message})")
    if status == 429:
        return RateLimited(message)
    if status >= 500:
        return TransientError(message)
    return PermanentError(message)
