"""The one place 1C's failures are classified: what the bridge does about each.

====================================  ===============================================
what 1C did                           reaction
====================================  ===============================================
fault with a business code            ``LedgerRefused(code)`` (permanent: not retried);
                                      ``PermanentError`` for orders and customers
                                      (``invalid_request`` names the field)
fault without a known code            ``TransientError`` (a 1C exception, DB lock, ...)
HTTP 401 / 403                        ``AuthError`` (user or its right to the service)
HTTP 404 of the publication           ``ConfigError`` (wrong address or service name)
HTTP 429 / 5xx, no answer, timeout    ``TransientError`` (``RateLimited`` for 429)
other HTTP 4xx                        ``PermanentError``
WSDL or names do not match            ``ConfigError`` (caught by ``bridge check --probe``)
a value not readable in any of 1C's   ``InvalidAnswer(field)``: the master's fault (a till
spellings, a required one missing     gets 502 naming the field), retried as transient
====================================  ===============================================
"""

from __future__ import annotations

from bridge.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    InvalidAnswer,
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
from connectors.onec.contract import ErrorCode, fault_code
from connectors.onec.declared.calls import OnecNotDeclared
from connectors.onec.values import OnecBadValue

# The contract's codes, and the Ledger's others a declaration may map a refusal to.
_CONTRACT_CODES = frozenset(code.value for code in ErrorCode) | frozenset(LedgerErrorCode)
_NOT_FOUND = frozenset({ErrorCode.UNKNOWN_ORDER.value, ErrorCode.UNKNOWN_CUSTOMER.value})


def classify(exc: OnecCallError, *, ledger: bool = True) -> DeliveryError:
    """The bridge error for a failed 1C call; raise it ``from`` the original.

    ``ledger``: a bonus call, whose refusals the core reads by code (``LedgerRefused``);
    otherwise an order or customer read or write, refused with a ``PermanentError``.
    """
    if isinstance(exc, OnecFault):
        code = _business_code(exc)
        if code is None:
            return TransientError(f"1C fault: {exc.text}")
        message = exc.text.split(":", 1)[-1].strip() if ":" in exc.text else exc.text
        if ledger and code in LedgerErrorCode.__members__.values():
            return LedgerRefused(LedgerErrorCode(code), message)
        # The same document would be refused again: invalid_request names the field.
        return PermanentError(f"1C refused it: {code}: {message}")
    if isinstance(exc, OnecHTTPError):
        return _by_status(exc.status, str(exc))
    if isinstance(exc, OnecBadValue):
        return InvalidAnswer(f"1C answered a value the bridge cannot read: {exc}", exc.field)
    if isinstance(exc, OnecUnreachable):
        return TransientError(f"1C did not answer: {exc}")
    if isinstance(exc, OnecNotDeclared):
        if ledger:
            return LedgerRefused(LedgerErrorCode.NOT_SUPPORTED, str(exc))
        return ConfigError(str(exc))
    if isinstance(exc, OnecContractMismatch):
        return ConfigError(f"1C service does not match the configured contract: {exc}")
    return TransientError(f"1C call failed: {exc}")


def is_not_found(exc: BaseException | None) -> bool:
    """Whether 1C answered that the order or customer asked for does not exist."""
    return isinstance(exc, OnecFault) and _business_code(exc) in _NOT_FOUND


def is_unpublished(exc: BaseException | None) -> bool:
    """Whether the HTTP service has no template for the operation called: a 404 that is
    no business answer (an optional operation a service published before it lacks).

    A URL under the service's root that no template matches is answered 404 by the 1C
    platform, as the emulator does (assumed: onec.md §2 names templates, not this answer).
    """
    if isinstance(exc, OnecFault):
        return exc.status == 404 and _business_code(exc) is None
    return isinstance(exc, OnecHTTPError) and exc.status == 404


def _business_code(exc: OnecFault) -> str | None:
    code = exc.code or fault_code(exc.text)
    return code if code in _CONTRACT_CODES else None


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
