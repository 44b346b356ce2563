"""The reference 1C loyalty contract (``CONTRACT.md``) as data, and an installation's names for it.

Three layers of names:

- **logical** (snake_case): what the bridge's code uses, and the keys of the HTTP service's
  JSON — ``POST /hs/loyalty/v1/balance`` takes ``{"customer_id": "c1", "cart_total": "100.00"}``
  and answers the ``Balance`` record as ``{"customer_id": ..., "balance": "150.00", ...}``;
- **default element names** (PascalCase, ``CONTRACT.md``): the reference SOAP service's XML;
- an **installation's names** (``Naming``, config ``systems.<name>.operations``): an existing,
  hand-written 1C web service, often with Cyrillic names (``ПолучитьБаланс``).

No I/O here: ``wsdl.py`` renders the WSDL, callers read config.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

HTTP_ROOT = "loyalty"  # the HTTP service's root URL: /hs/loyalty/v1/<operation>
OPERATION_ID_MAX_LENGTH = 64
CHANGES_LIMIT_DEFAULT = 100
CHANGES_LIMIT_MAX = 1000
LIST_LIMIT_DEFAULT = 100  # ListOrders / ListCustomers: documents per page
LIST_LIMIT_MAX = 1000
# Change.origin of a change the bridge itself wrote (SaveOrder, SaveCustomer): its poller
# drops these, so a write never comes back as a change to mirror (PRODUCT 3.3, "No echoes").
ORIGIN_BRIDGE = "bridge"


class XsdType(StrEnum):
    """The XDTO primitive types the contract uses; no platform types (onec.md §1.3)."""

    STRING = "string"
    DECIMAL = "decimal"
    INT = "int"
    BOOLEAN = "boolean"
    DATETIME = "dateTime"


class ErrorCode(StrEnum):
    """Business error codes: the start of a SOAP faultstring, or ``error.code`` in JSON."""

    UNKNOWN_CUSTOMER = "unknown_customer"
    UNKNOWN_ORDER = "unknown_order"
    INSUFFICIENT_BALANCE = "insufficient_balance"
    RESERVATION_NOT_FOUND = "reservation_not_found"
    RESERVATION_CLOSED = "reservation_closed"
    AMOUNT_EXCEEDS_RESERVATION = "amount_exceeds_reservation"
    AMOUNT_EXCEEDS_ORIGINAL = "amount_exceeds_original"
    OPERATION_CONFLICT = "operation_conflict"
    INVALID_REQUEST = "invalid_request"

    @property
    def http_status(self) -> int:
        """The HTTP service's status for this code."""
        return _HTTP_STATUS.get(self, 422)


_HTTP_STATUS = {
    "operation_conflict": 409,
    "unknown_customer": 404,
    "unknown_order": 404,
    "reservation_not_found": 404,
}


def fault_text(code: ErrorCode, message: str) -> str:
    """A SOAP faultstring for a business error: ``unknown_customer: Клиент не найден``."""
    return f"{code}: {message}"


_FAULT_CODE = re.compile(r"(?<![A-Za-z0-9_])(" + "|".join(c.value for c in ErrorCode) + r"):")


def fault_code(text: str) -> ErrorCode | None:
    """The business code in a faultstring, or None (a transient server error).

    The code may follow a prefix: how 1C lays out the text of ``ВызватьИсключение`` in a
    fault is unconfirmed (onec.md §1.5), and some platforms prepend the module and line.
    """
    match = _FAULT_CODE.search(text)
    return ErrorCode(match.group(1)) if match else None


# The values of Operation.kind, Operation.status, Change.entity and Change.action.
OPERATION_KINDS = frozenset({"reserve", "commit", "release", "accrue", "reverse"})
OPERATION_STATUSES = frozenset({"reserved", "committed", "released", "accrued", "reversed"})
CHANGE_ENTITIES = frozenset({"order", "receipt", "sale", "return", "customer"})
CHANGE_ACTIONS = frozenset({"created", "changed", "deleted"})


@dataclass(frozen=True)
class RecordField:
    """One element of a result record: a primitive or a nested record, maybe repeated."""

    name: str
    element: str
    type: XsdType | Record
    optional: bool = False
    repeated: bool = False


@dataclass(frozen=True)
class Record:
    """A result record: an XDTO object type, a ``complexType`` in the WSDL."""

    name: str
    fields: tuple[RecordField, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The logical names of its fields, in order."""
        return tuple(field.name for field in self.fields)

    def walk(self) -> Iterator[Record]:
        """This record, then the records nested in it, depth first."""
        yield self
        for field in self.fields:
            if isinstance(field.type, Record):
                yield from field.type.walk()


@dataclass(frozen=True)
class Param:
    """One input parameter of an operation, in its order."""

    name: str
    element: str
    type: XsdType
    optional: bool = False


@dataclass(frozen=True)
class Operation:
    """A logical operation: default SOAP name, HTTP path, parameters and result record."""

    name: str
    soap: str
    http_path: str
    params: tuple[Param, ...]
    result: Record

    @property
    def mirroring(self) -> bool:
        """Added for order and customer mirroring: a service published only for the loyalty
        calls (every 1C installed before they existed) may lack it and still be a master."""
        return self.name in MIRRORING

    @property
    def listing(self) -> bool:
        """Added for ``bridge backfill``: a service without it still mirrors live changes."""
        return self.name in LISTING

    @property
    def optional(self) -> bool:
        """Whether a service may lack it and still be used (a mirroring or listing call)."""
        return self.mirroring or self.listing

    @property
    def idempotent(self) -> bool:
        """Whether it changes the ledger or order book and so takes ``operation_id``."""
        return any(param.name == "operation_id" for param in self.params)


MIRRORING = frozenset({"get_order", "save_customer", "get_customer"})
LISTING = frozenset({"list_orders", "list_customers"})

_S, _D, _N, _B, _T = XsdType.STRING, XsdType.DECIMAL, XsdType.INT, XsdType.BOOLEAN, XsdType.DATETIME


def default_element(logical: str) -> str:
    """The reference element name of a logical name: PascalCase (``cart_total`` → ``CartTotal``)."""
    return "".join(part.capitalize() for part in logical.split("_"))


def _f(name: str, type_: XsdType | Record, optional: bool = False) -> RecordField:
    return RecordField(name, default_element(name), type_, optional, repeated=False)


def _p(name: str, type_: XsdType, optional: bool = False) -> Param:
    return Param(name, default_element(name), type_, optional)


# fmt: off
CUSTOMER = Record("Customer", (
    _f("customer_id", _S), _f("phone", _S), _f("card", _S, True), _f("name", _S, True)))
BALANCE = Record("Balance", (
    _f("customer_id", _S), _f("balance", _D), _f("reserved", _D), _f("available", _D),
    _f("max_redeemable", _D, True), _f("level", _S, True), _f("as_of", _T)))
OPERATION = Record("Operation", (
    _f("operation_id", _S), _f("kind", _S), _f("status", _S), _f("reservation_id", _S, True),
    _f("amount", _D), _f("balance", _D), _f("available", _D)))
SAVED_ORDER = Record("SavedOrder", (_f("external_id", _S), _f("number", _S), _f("created", _B)))
ORDER_DOCUMENT = Record("OrderDocument", (
    _f("id", _S), _f("external_id", _S, True), _f("number", _S), _f("date", _T),
    _f("status", _S), _f("version", _S), _f("order", _S)))
SAVED_CUSTOMER = Record("SavedCustomer", (
    _f("external_id", _S), _f("customer_id", _S), _f("created", _B)))
CUSTOMER_DOCUMENT = Record("CustomerDocument", (
    _f("customer_id", _S), _f("external_id", _S, True), _f("phone", _S, True),
    _f("card", _S, True), _f("name", _S, True), _f("version", _S), _f("customer", _S)))
CHANGE = Record("Change", (
    _f("message_no", _N), _f("entity", _S), _f("id", _S), _f("action", _S),
    _f("version", _S, True), _f("origin", _S, True)))
CHANGES = Record("Changes", (
    RecordField("items", "Items", CHANGE, optional=True, repeated=True),
    _f("last_message_no", _N), _f("more", _B)))
# A page of a listing: the documents exactly as GetOrder / GetCustomer answer them.
ORDER_LIST = Record("OrderList", (
    RecordField("items", "Items", ORDER_DOCUMENT, optional=True, repeated=True),
    _f("next", _S, True), _f("total", _N)))
CUSTOMER_LIST = Record("CustomerList", (
    RecordField("items", "Items", CUSTOMER_DOCUMENT, optional=True, repeated=True),
    _f("next", _S, True), _f("total", _N)))
RECORDS: Mapping[str, Record] = MappingProxyType(
    {r.name: r for r in (
        CUSTOMER, BALANCE, OPERATION, SAVED_ORDER, ORDER_DOCUMENT, SAVED_CUSTOMER,
        CUSTOMER_DOCUMENT, CHANGES, CHANGE, ORDER_LIST, CUSTOMER_LIST)})

_OP_ID, _CUSTOMER_ID, _AMOUNT = _p("operation_id", _S), _p("customer_id", _S), _p("amount", _D)
_ORDER_ID, _RESERVATION_ID = _p("order_id", _S), _p("reservation_id", _S)
_EXTERNAL_ID, _ID = _p("external_id", _S), _p("id", _S)
_LISTING = (_p("created_from", _T, True), _p("after", _S, True), _p("limit", _N, True))
OPERATIONS: Mapping[str, Operation] = MappingProxyType({op.name: op for op in (
    Operation("find_customer", "FindCustomer", "/v1/find-customer",
              (_p("phone", _S, True), _p("card", _S, True), _p("customer_id", _S, True)), CUSTOMER),
    Operation("balance", "GetBalance", "/v1/balance",
              (_CUSTOMER_ID, _p("cart_total", _D, True)), BALANCE),
    Operation("reserve", "Reserve", "/v1/reserve",
              (_OP_ID, _CUSTOMER_ID, _AMOUNT, _ORDER_ID, _p("expires_at", _T, True)), OPERATION),
    Operation("commit", "Commit", "/v1/commit",
              (_OP_ID, _RESERVATION_ID, _p("amount", _D, True)), OPERATION),
    Operation("release", "Release", "/v1/release", (_OP_ID, _RESERVATION_ID), OPERATION),
    Operation("accrue", "Accrue", "/v1/accrue",
              (_OP_ID, _CUSTOMER_ID, _AMOUNT, _ORDER_ID), OPERATION),
    Operation("reverse", "Reverse", "/v1/reverse",
              (_OP_ID, _p("original_operation_id", _S), _AMOUNT), OPERATION),
    Operation("save_order", "SaveOrder", "/v1/save-order",
              (_OP_ID, _EXTERNAL_ID, _p("order", _S)), SAVED_ORDER),
    Operation("get_order", "GetOrder", "/v1/order", (_ID,), ORDER_DOCUMENT),
    Operation("save_customer", "SaveCustomer", "/v1/save-customer",
              (_OP_ID, _EXTERNAL_ID, _p("customer", _S)), SAVED_CUSTOMER),
    Operation("get_customer", "GetCustomer", "/v1/customer", (_ID,), CUSTOMER_DOCUMENT),
    Operation("get_changes", "GetChanges", "/v1/changes",
              (_p("since_message_no", _N), _p("limit", _N, True)), CHANGES),
    Operation("list_orders", "ListOrders", "/v1/orders", _LISTING, ORDER_LIST),
    Operation("list_customers", "ListCustomers", "/v1/customers", _LISTING, CUSTOMER_LIST),
)})
# fmt: on


def optional_only(logical: Iterable[str]) -> frozenset[str]:
    """``logical`` as a set, checked to name only optional operations (what a 1C may lack)."""
    names = frozenset(logical)
    if bad := sorted(n for n in names if n not in OPERATIONS or not OPERATIONS[n].optional):
        raise ValueError(f"only optional operations may be left out, not {', '.join(bad)}")
    return names


# XML 1.0 (5th ed.) NameStartChar / NameChar without ':' — Cyrillic (U+0400..U+04FF) is in
# U+037F..U+1FFF, so 1C's Cyrillic identifiers are valid element and operation names.
_START = (
    r"A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D"
    r"\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\U00010000-\U000EFFFF"
)
_NCNAME = re.compile(rf"[{_START}][{_START}\-.0-9\u00B7\u0300-\u036F\u203F-\u2040]*")
_BAD_NAME = "is not a valid XML name (letters, digits, '_', '-', '.'; no spaces or ':')"
Problem = tuple[tuple[str, ...], str]  # (location in the config, message)


class OperationNaming(BaseModel):
    """One operation's names in an installation; whatever is left out keeps the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: str | None = None
    params: dict[str, str] = Field(default_factory=dict)  # logical parameter → element
    result: dict[str, str] = Field(default_factory=dict)  # logical field → element


@dataclass(frozen=True)
class NamedOperation:
    """One operation under an installation's names: what a client sends, an emulator serves."""

    contract: Operation
    name: str
    soap_action: str
    params: Mapping[str, str]  # logical → element, in contract order
    fields: Mapping[str, str]  # logical → element, for the result record and nested records

    def params_to_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Logical parameter values keyed by element name; unknown logical names are errors."""
        _reject_unknown(self.contract.name, "parameter", values, self.params)
        return {self.params[key]: value for key, value in values.items()}

    def params_from_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Element-named parameter values keyed by logical name; other elements are dropped."""
        return {key: values[e] for key, e in self.params.items() if e in values}

    def result_to_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A logical result (nested items too) keyed by element names."""
        return self._rename(self.contract.result, values, outbound=True)

    def result_from_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """An element-named result keyed by logical names; elements not in the contract dropped."""
        # Lenient on purpose: a hand-written 1C record may carry more than the contract needs.
        return self._rename(self.contract.result, values, outbound=False)

    def _rename(self, record: Record, values: Mapping[str, Any], outbound: bool) -> dict[str, Any]:
        if outbound:
            _reject_unknown(self.contract.name, f"{record.name} field", values, record.names)
        renamed: dict[str, Any] = {}
        for field in record.fields:
            pair = (field.name, self.fields[field.name])
            source, target = pair if outbound else pair[::-1]
            if source in values:
                value = values[source]
                if isinstance(field.type, Record) and value is not None:
                    items = value if field.repeated else [value]
                    value = [self._rename(field.type, item, outbound) for item in items]
                    value = value if field.repeated else value[0]
                renamed[target] = value
        return renamed


def _reject_unknown(operation: str, what: str, values: Iterable[str], known: Iterable[str]) -> None:
    if unknown := sorted(set(values) - set(known)):
        raise ValueError(f"{operation}: unknown {what} {', '.join(unknown)}")


class Naming(BaseModel):
    """An installation's names for the contract; ``Naming()`` is the reference contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = "BridgeLoyalty"
    # 1C takes any string as the service's "Пространство имен URI" (onec.md §1.2).
    namespace: str = "urn:bridge-loyalty:v1"
    operations: dict[str, OperationNaming] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Naming:
        # Every problem at once, each at its own location (a nested ValidationError keeps both).
        problems = list(_config_problems(self))
        if not problems:
            problems = _clashes(self.resolve_all())
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("naming", "{message}", {"message": message}),
                        loc=loc,
                        input=None,
                    )
                    for loc, message in problems
                ],
            )
        return self

    def resolve(self, logical: str) -> NamedOperation:
        """The logical operation ``logical`` (e.g. ``balance``) under these names."""
        contract = OPERATIONS[logical]
        own = self.operations.get(logical) or OperationNaming()
        name = own.operation or contract.soap
        params = {p.name: own.params.get(p.name, p.element) for p in contract.params}
        fields = {
            f.name: own.result.get(f.name, f.element)
            for record in contract.result.walk()
            for f in record.fields
        }
        # SOAPAction as 1C generates it: <namespace>#<Service>:<Operation> (onec.md §1.2).
        action = f"{self.namespace}#{self.service}:{name}"
        return NamedOperation(
            contract, name, action, MappingProxyType(params), MappingProxyType(fields)
        )

    def resolve_all(self) -> tuple[NamedOperation, ...]:
        """Every operation under these names, in contract order."""
        return tuple(self.resolve(logical) for logical in OPERATIONS)

    def logical_for(self, operation_name: str) -> str | None:
        """The logical operation an installation's operation name stands for, if any."""
        for named in self.resolve_all():
            if named.name == operation_name:
                return named.contract.name
        return None


def _config_problems(naming: Naming) -> Iterator[Problem]:
    if not _NCNAME.fullmatch(naming.service):
        yield ("service",), f"{naming.service!r} {_BAD_NAME}"
    if not naming.namespace or any(char.isspace() for char in naming.namespace):
        yield ("namespace",), "must be a non-empty URI without spaces"
    for logical, own in naming.operations.items():
        at = ("operations", logical)
        if (contract := OPERATIONS.get(logical)) is None:
            yield at, f"unknown operation {logical!r} (one of {', '.join(OPERATIONS)})"
            continue
        if own.operation is not None and not _NCNAME.fullmatch(own.operation):
            yield (*at, "operation"), f"{own.operation!r} {_BAD_NAME}"
        fields = [name for record in contract.result.walk() for name in record.names]
        for section, what, names, known in (
            ("params", "parameter", own.params, [p.name for p in contract.params]),
            ("result", "result field", own.result, fields),
        ):
            for key, value in names.items():
                if key not in known:
                    message = f"unknown {what} {key!r} of {logical} (one of {', '.join(known)})"
                    yield (*at, section, key), message
                elif not _NCNAME.fullmatch(value):
                    yield (*at, section, key), f"{value!r} {_BAD_NAME}"


def _clashes(named: tuple[NamedOperation, ...]) -> list[Problem]:
    problems: list[Problem] = []
    # Each operation has the wrapper elements Op and OpResponse in one schema (onec.md §1.2).
    wrappers = Counter([n.name for n in named] + [f"{n.name}Response" for n in named])
    for op in named:
        where = ("operations", op.contract.name)
        if wrappers[op.name] > 1:
            problems.append(((*where, "operation"), f"{op.name!r} clashes with another operation"))
        problems += [((*where, "params"), m) for m in _twice(op.params, op.params)]
        for record in op.contract.result.walk():
            problems += [((*where, "result"), m) for m in _twice(op.fields, record.names)]
    return problems


def _twice(names: Mapping[str, str], keys: Iterable[str]) -> Iterator[str]:
    by_element: dict[str, list[str]] = {}
    for key in keys:
        by_element.setdefault(names[key], []).append(key)
    for element, owners in by_element.items():
        if len(owners) > 1:
            yield f"{element!r} is the name of both {' and '.join(owners)}"
