"""The one place RetailCRM's failures are classified: what the bridge does about each.

Status *and* body decide (retailcrm-api.md §1.4-1.6); the first matching row wins:

=================================================  ==============================================
what RetailCRM did                                 reaction
=================================================  ==============================================
HTTP 460 (a batch upload partly failed)            ``PartialUpload``, a ``PermanentError`` with
                                                   ``uploaded`` and ``failed`` (see below)
HTTP 503 or 429, any body (JSON, HTML, none)       ``RateLimited`` (``retry_after`` = Retry-After)
no answer: refused, reset, DNS, timeout            ``TransientError``
``Wrong "apiKey" value.``, ``"apiKey" is           ``AuthError`` (whatever the status)
missing.``, ``Access denied.``; any HTTP 401/403
``Account does not exist.``                        ``ConfigError`` (wrong account URL)
not JSON below 500 (405 + HTML, a 404 page, 30x)   ``ConfigError`` (the URL is not a RetailCRM API)
HTTP 404 ``API method not found``                  ``ConfigError`` (version or module lacks it)
HTTP 5xx other than 503, JSON or not               ``TransientError``
HTTP 404 ``Not found``                             ``PermanentError`` (see below)
HTTP 400: ``Errors in the entity format``,         ``PermanentError`` whose message carries the
``Validation error``, ``Parameter 'x' is           field errors (``errors`` as object or list)
missing``, ``Errors in the input parameters``
any other 4xx, or ``success: false`` with 2xx      ``PermanentError``
=================================================  ==============================================

"Not found" is only an error where the entity must exist: where it means "create instead"
(an upsert by ``externalId``) the connector asks ``is_not_found`` before classifying. A 460
is neither all-failed nor all-done: the connector records ``uploaded`` as delivered and
retries or dead-letters each of ``failed`` on its own (re-sent one by one through ``create``
for a precise error, since the upload's ``errors`` are not keyed by entity, §2.4).
"""

from __future__ import annotations

from typing import Any

from bridge.errors import (
    AuthError,
    ConfigError,
    DeliveryError,
    PermanentError,
    RateLimited,
    TransientError,
)
from connectors.retailcrm.client import (
    RetailcrmApiError,
    RetailcrmError,
    RetailcrmNotJson,
    RetailcrmPartial,
    RetailcrmUnreachable,
)

AUTH_MESSAGES = frozenset({'Wrong "apiKey" value.', '"apiKey" is missing.', "Access denied."})
ACCOUNT_MISSING = "Account does not exist."
METHOD_MISSING = "API method not found"


class PartialUpload(PermanentError):
    """Part of a batch upload was stored (``uploaded``), part refused (``failed``)."""

    def __init__(
        self,
        message: str,
        *,
        uploaded: list[dict[str, Any]],
        failed: list[dict[str, Any]],
        errors: list[str],
    ) -> None:
        super().__init__(message)
        self.uploaded = uploaded
        self.failed = failed
        self.errors = errors


def classify(exc: RetailcrmError) -> DeliveryError:
    """The bridge error for a failed RetailCRM call; raise it ``from`` the original."""
    if isinstance(exc, RetailcrmPartial):
        message = f"RetailCRM stored {len(exc.uploaded)} and refused {len(exc.failed)}: {exc}"
        return PartialUpload(message, uploaded=exc.uploaded, failed=exc.failed, errors=exc.errors)
    status = exc.status
    if status in (429, 503):
        return RateLimited(f"RetailCRM asks to slow down ({exc})", exc.retry_after)
    if isinstance(exc, RetailcrmUnreachable) or status is None:
        return TransientError(f"RetailCRM did not answer: {exc}")
    message = exc.error_msg if isinstance(exc, RetailcrmApiError) else ""
    if message in AUTH_MESSAGES or status in (401, 403):
        return AuthError(f"RetailCRM refused the API key or its access ({exc})")
    if message == ACCOUNT_MISSING or (isinstance(exc, RetailcrmNotJson) and status < 500):
        return ConfigError(f"the url does not lead to a RetailCRM account API ({exc})")
    if status == 404 and message == METHOD_MISSING:
        return ConfigError(f"this RetailCRM has no such API method ({exc})")
    if status >= 500:
        return TransientError(f"RetailCRM failed ({exc})")
    return PermanentError(f"RetailCRM rejected the call ({exc})")


def is_not_found(exc: RetailcrmError) -> bool:
    """Whether RetailCRM said the entity does not exist (404 ``Not found``, not a bad path)."""
    return (
        isinstance(exc, RetailcrmApiError) and exc.status == 404 and exc.error_msg != METHOD_MISSING
    )


def merged_into(exc: RetailcrmError) -> str | None:
    """The survivor's id a 404 names as ``combinedTo`` (a customer merged away, §1.4)."""
    if not isinstance(exc, RetailcrmApiError):
        return None
    survivor = exc.body.get("combinedTo")
    own = survivor.get("id") if isinstance(survivor, dict) else None
    return str(own) if isinstance(own, int | str) and str(own).isdigit() else None
