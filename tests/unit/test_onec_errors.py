"""The 1C error table, as a table: each wire failure and the reaction it gets."""

from __future__ import annotations

import pytest

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
from connectors.onec.errors import classify


@pytest.mark.parametrize(
    ("failure", "reaction"),
    [
        (OnecFault("unknown_customer: Клиент не найден"), LedgerRefused),
        (OnecFault("{ОбщийМодуль.Бонусы(12)}: insufficient_balance: мало"), LedgerRefused),
        (OnecFault("x", code="operation_conflict", status=409), LedgerRefused),
        (OnecFault("Ошибка СУБД: блокировка таблицы"), TransientError),
        (OnecFault("no_such_code: whatever"), TransientError),
        (OnecHTTPError(401, "Unauthorized"), AuthError),
        (OnecHTTPError(403, "Forbidden"), AuthError),
        (OnecHTTPError(404, "Not Found"), ConfigError),
        (OnecHTTPError(429, "Too Many"), RateLimited),
        (OnecHTTPError(500, "Internal"), TransientError),
        (OnecHTTPError(502, "Bad Gateway"), TransientError),
        (OnecHTTPError(400, "Bad Request"), PermanentError),
        (OnecUnreachable("ConnectionError", timed_out=False), TransientError),
        (OnecUnreachable("ReadTimeout", timed_out=True), TransientError),
        (OnecContractMismatch("the WSDL lacks operations: balance"), ConfigError),
        (OnecCallError("something else"), TransientError),
    ],
)
def test_reaction_table(failure: OnecCallError, reaction: type[DeliveryError]) -> None:
    got = classify(failure)
    assert type(got) is reaction


def test_refusals_keep_the_code_and_the_message() -> None:
    got = classify(OnecFault("unknown_customer: Клиент не найден"))
    assert isinstance(got, LedgerRefused)
    assert got.code is LedgerErrorCode.UNKNOWN_CUSTOMER
    assert got.detail == "Клиент не найден"
    assert got.error_class == "permanent"
