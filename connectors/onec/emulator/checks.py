"""Parameter checks of the emulated 1C service, as its module would make them: every
failure a ``LedgerError`` with the contract's code, ``invalid_request`` naming the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from connectors.onec.contract import OPERATION_ID_MAX_LENGTH, ErrorCode

# CONTRACT.md "Errors": the stable codes, as contract.py lists them.
ERROR_CODES = frozenset(code.value for code in ErrorCode)
MAX_OPERATION_ID = OPERATION_ID_MAX_LENGTH  # CONTRACT.md "Idempotency"
CENT = Decimal("0.01")


class LedgerError(Exception):
    """A business error with its stable contract code; str() is the SOAP faultstring form."""

    def __init__(self, code: str, message: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"not a contract error code: {code!r}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def check_operation_id(value: object) -> str:
    """An OperationId: a non-empty string of at most 64 characters."""
    return check_text(value, "operation_id", MAX_OPERATION_ID)


def invalid(field: str, problem: str) -> LedgerError:
    """``invalid_request`` naming ``field``."""
    return LedgerError("invalid_request", f"{field}: {problem}")


def check_text(value: object, field: str, limit: int = 256) -> str:
    """A required, non-blank string of at most ``limit`` characters."""
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, "required, a non-empty string")
    if len(value) > limit:
        raise invalid(field, f"longer than {limit} characters")
    return value


def check_amount(value: object, field: str = "amount", *, allow_zero: bool = False) -> Decimal:
    """Points: a positive decimal (zero if allowed), at most 2 places, never a float."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise invalid(field, 'required, a decimal such as "150.00" (never a float)')
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
        exact = number.quantize(CENT) if number.is_finite() else None
    except InvalidOperation:
        exact = None
    if exact is None:
        raise invalid(field, f"{value!r} is not a decimal number")
    if exact != number:
        raise invalid(field, f"{value!r} has more than 2 decimal places")
    if exact < 0 or (exact == 0 and not allow_zero):
        raise invalid(field, f"{value!r} must be {'zero or more' if allow_zero else 'positive'}")
    return exact


def check_count(value: object, field: str, low: int, high: int | None = None) -> int:
    """An integer (or its digits as text) in ``low..high``."""
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(field, "required, an integer")
    if value < low or (high is not None and value > high):
        raise invalid(field, f"{value} is outside {low}..{high if high is not None else ''}")
    return value


def check_moment(value: object, field: str) -> datetime:
    """An ISO 8601 dateTime with an offset, in UTC."""
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else value
    except ValueError:
        when = None
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise invalid(field, "an ISO 8601 dateTime with an offset, e.g. 2026-11-22T10:00:00Z")
    return when.astimezone(UTC)


def _not_json(constant: str) -> object:
    raise ValueError(constant)


def is_blank(value: object) -> bool:
    """Absent: None or a blank string."""
    # 1C's XDTO writes an unset optional string as an empty element: blank counts as absent.
    return value is None or (isinstance(value, str) and not value.strip())


def parse_document(text: object, field: str) -> dict[str, object]:
    """A JSON object sent as a string (SaveOrder's Order, SaveCustomer's Customer)."""
    document: object = None
    if isinstance(text, str):
        try:
            # Decimal keeps amounts exact; NaN/Infinity are not JSON and never compare equal.
            document = json.loads(text, parse_float=Decimal, parse_constant=_not_json)
        except ValueError:
            document = None
    if not isinstance(document, dict):
        raise invalid(field, "required, a JSON object as a string")
    return document


def check_fields(value: object, field: str) -> dict[str, object]:
    """A JSON object (None: an empty one), e.g. the fields a change in 1C edits."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise invalid(field, "a JSON object")
    return dict(value)
