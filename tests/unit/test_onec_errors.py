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
from connectors.onec.errors import classify, is_not_found


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


@pytest.mark.parametrize(
    ("failure", "reaction"),
    [
        (OnecFault("invalid_request: customer.phone: required"), PermanentError),
        (OnecFault("x", code="operation_conflict", status=409), PermanentError),
        (OnecFault("unknown_order: Заказ не найден", code="unknown_order"), PermanentError),
        (OnecFault("Ошибка СУБД"), TransientError),
        (OnecFault("x", code="not_found", status=404), TransientError),  # not a contract code
        (OnecHTTPError(401, "Unauthorized"), AuthError),
        (OnecUnreachable("ReadTimeout", timed_out=True), TransientError),
    ],
)
def test_order_and_customer_calls_are_refused_without_a_ledger_code(
    failure: OnecCallError, reaction: type[DeliveryError]
) -> None:
    got = classify(failure, ledger=False)
    assert type(got) is reaction
    if reaction is PermanentError:
        assert str(failure).split(":", 1)[-1].strip() in str(got)


def test_unknown_order_is_permanent_even_on_the_ledger_path() -> None:
    assert type(classify(OnecFault("unknown_order: нет"))) is PermanentError


def test_not_found_is_an_unknown_order_or_customer() -> None:
    assert is_not_found(OnecFault("unknown_order: нет"))
    assert is_not_found(OnecFault("x", code="unknown_customer", status=404))
    assert not is_not_found(OnecFault("invalid_request: id: required"))
    assert not is_not_found(OnecHTTPError(404, "Not Found"))  # the publication, not the entity
    assert not is_not_found(None)
