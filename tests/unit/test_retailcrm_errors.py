"""The RetailCRM error table, as a table: each wire failure and the reaction it gets."""

from __future__ import annotations

from typing import Any

import pytest

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
from connectors.retailcrm.errors import PartialUpload, classify, is_not_found

HTML = "text/html; charset=utf-8"


def api(
    status: int, msg: str, errors: Any = None, *, retry_after: float | None = None, **extra: Any
) -> RetailcrmApiError:
    """The exception the client raises for this envelope."""
    body = {"success": False, "errorMsg": msg, **({"errors": errors} if errors else {}), **extra}
    return RetailcrmApiError(status, msg, errors, body, retry_after=retry_after)


def partial() -> RetailcrmPartial:
    body: dict[str, Any] = {
        "success": False,
        "errorMsg": "Orders are loaded with errors",
        "errors": ["items[0].offer.id: Offer with id 123 not found."],
        "uploadedOrders": [{"id": 1, "externalId": "a"}],
        "failedOrders": [{"externalId": "b"}],
    }
    return RetailcrmPartial(
        460,
        body["errorMsg"],
        body["errors"],
        body,
        uploaded=[{"id": 1, "externalId": "a"}],
        failed=[{"externalId": "b"}],
    )


@pytest.mark.parametrize(
    ("failure", "reaction"),
    [
        # 460: part stored, part refused
        (partial(), PartialUpload),
        # rate limit: 503 and 429 whatever the body
        (api(503, "Rate limit exceeded"), RateLimited),
        (RetailcrmNotJson(503, HTML, "503 Service Temporarily Unavailable nginx"), RateLimited),
        (RetailcrmNotJson(503, "", ""), RateLimited),
        (api(429, "Too Many Requests"), RateLimited),
        (RetailcrmNotJson(429, "text/plain", "slow down"), RateLimited),
        # no answer
        (
            RetailcrmUnreachable("ConnectionError on GET /api/v5/orders", timed_out=False),
            TransientError,
        ),
        (RetailcrmUnreachable("ReadTimeout on GET /api/v5/orders", timed_out=True), TransientError),
        # credentials
        (api(403, 'Wrong "apiKey" value.'), AuthError),
        (api(401, '"apiKey" is missing.'), AuthError),
        (api(403, "Access denied."), AuthError),
        (api(400, "Access denied."), AuthError),
        (api(403, "Forbidden"), AuthError),
        (RetailcrmNotJson(401, HTML, "Unauthorized"), AuthError),
        # wrong URL
        (RetailcrmNotJson(405, HTML, "405 Not Allowed nginx"), ConfigError),
        (api(400, "Account does not exist."), ConfigError),
        (api(404, "Account does not exist."), ConfigError),
        (RetailcrmNotJson(404, HTML, "Page not found"), ConfigError),
        (RetailcrmNotJson(301, HTML, "Moved Permanently"), ConfigError),
        (RetailcrmNotJson(200, HTML, "Welcome to our shop"), ConfigError),
        (api(404, "API method not found"), ConfigError),
        # server trouble
        (api(500, "Internal error"), TransientError),
        (RetailcrmNotJson(502, HTML, "502 Bad Gateway nginx"), TransientError),
        (RetailcrmNotJson(504, HTML, "504 Gateway Time-out"), TransientError),
        # the call itself is wrong
        (api(404, "Not found"), PermanentError),
        (
            api(400, "Errors in the entity format", {"name": "name must be provided"}),
            PermanentError,
        ),
        (api(400, "Validation error", ["items[0].offer.id: Offer not found."]), PermanentError),
        (api(400, "Parameter 'order' is missing"), PermanentError),
        (api(400, "Errors in the input parameters", {"filter[sinceId]": "bad"}), PermanentError),
        (api(402, "Payment required"), PermanentError),
        (api(409, "Conflict"), PermanentError),
        (api(200, "Something odd"), PermanentError),
        # anything else
        (RetailcrmError("unexpected"), TransientError),
    ],
)
def test_reaction_table(failure: RetailcrmError, reaction: type[DeliveryError]) -> None:
    got = classify(failure)
    assert type(got) is reaction


@pytest.mark.parametrize(
    ("failure", "retry_after"),
    [
        (api(503, "Rate limit exceeded", retry_after=2.0), 2.0),
        (RetailcrmNotJson(503, HTML, "busy", retry_after=1.5), 1.5),
        (api(429, "Too Many Requests"), None),
    ],
)
def test_rate_limits_carry_retry_after(failure: RetailcrmError, retry_after: float | None) -> None:
    got = classify(failure)
    assert isinstance(got, RateLimited)
    assert got.retry_after == retry_after


@pytest.mark.parametrize(
    ("errors", "shown"),
    [
        (
            {"name": "name must be provided", "phone": "bad"},
            "name: name must be provided; phone: bad",
        ),
        (
            ["items[0].offer.id: Offer with id 123 not found."],
            "items[0].offer.id: Offer with id 123",
        ),
        (
            {"children[startDate]": "Значение недопустимо."},
            "children[startDate]: Значение недопустимо.",
        ),
    ],
)
def test_validation_errors_name_the_fields(errors: Any, shown: str) -> None:
    got = classify(api(400, "Errors in the entity format", errors))
    assert isinstance(got, PermanentError)
    assert shown in str(got)
    assert "Errors in the entity format" in str(got)


def test_a_partial_upload_keeps_what_was_stored_and_what_failed() -> None:
    got = classify(partial())
    assert isinstance(got, PartialUpload)
    assert got.error_class == "permanent"
    assert got.uploaded == [{"id": 1, "externalId": "a"}]
    assert got.failed == [{"externalId": "b"}]
    assert got.errors == ["items[0].offer.id: Offer with id 123 not found."]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (api(404, "Not found"), True),
        (api(404, "Not found", combinedTo={"id": 7}), True),
        (api(404, "API method not found"), False),
        (RetailcrmNotJson(404, HTML, "Page not found"), False),
        (api(400, "Not found"), False),
    ],
)
def test_not_found_is_told_apart(failure: RetailcrmError, expected: bool) -> None:
    assert is_not_found(failure) is expected
