"""The reference 1C loyalty contract (``CONTRACT.md``) as data.

Three layers of names:

- **logical** (snake_case): what the bridge's code uses, and the keys of the HTTP service's
  JSON — ``POST /hs/loyalty/v1/balance`` takes ``{"customer_id": "c1", "cart_total": "100.00"}``
  and answers the ``Balance`` record as ``{"customer_id": ..., "balance": "150.00", ...}``;
- **default element names** (PascalCase, ``CONTRACT.md``): the reference SOAP service's XML;
- an **installation's names** (``Naming`` in ``naming.py``, config
  ``systems.<name>.operations``): an existing, hand-written 1C web service, often with
  Cyrillic names (``ПолучитьБаланс``).

No I/O here: ``wsdl.py`` renders the WSDL, callers read config.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

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
    UNKNOWN_CARD = "unknown_card"
    CARD_TAKEN = "card_taken"
    CARD_BLOCKED = "card_blocked"

    @property
    def http_status(self) -> int:
        """The HTTP service's status for this code."""
        return _HTTP_STATUS.get(self, 422)


_HTTP_STATUS = {
    "operation_conflict": 409,
    "unknown_customer": 404,
    "unknown_order": 404,
    "reservation_not_found": 404,
    "unknown_card": 404,
    "card_taken": 409,
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
OPERATION_KINDS = frozenset({"reserve", "commit", "release", "accrue", "reverse", "move"})
OPERATION_STATUSES = frozenset(
    {"reserved", "committed", "released", "accrued", "reversed", "moved"}
)
# Card.status: a blocked card neither accrues nor spends; accumulate_only accrues only.
CARD_STATUSES = frozenset({"active", "blocked", "accumulate_only"})
# The questionnaire's fields (Profile), by the bridge's names; every value text or nil.
PROFILE_FIELDS = ("last_name", "first_name", "middle_name", "birth_date", "gender", "email")
GENDERS = frozenset({"male", "female"})
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
    def cards(self) -> bool:
        """Added for customers' cards, questionnaires and registration (issue 17): a master
        without them answers ``not_supported`` for those calls alone."""
        return self.name in CARDS

    @property
    def optional(self) -> bool:
        """Whether a service may lack it and still be used (a mirroring, listing or card
        call)."""
        return self.mirroring or self.listing or self.cards

    @property
    def idempotent(self) -> bool:
        """Whether it changes the ledger or order book and so takes ``operation_id``."""
        return any(param.name == "operation_id" for param in self.params)


MIRRORING = frozenset({"get_order", "save_customer", "get_customer"})
LISTING = frozenset({"list_orders", "list_customers"})
CARDS = frozenset({
    "find_cards", "get_card", "attach_card", "set_card_status", "set_main_card", "move_points",
    "get_profile", "save_profile", "register_customer",
})  # fmt: skip

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
# A loyalty card (issue 17): its owner's id and phone are nil for a card no one owns yet.
CARD = Record("Card", (
    _f("number", _S), _f("status", _S), _f("balance", _D), _f("reserved", _D), _f("main", _B),
    _f("customer_id", _S, True), _f("phone", _S, True)))
# Total beside Items: zeep hands a record of one repeated element back as a bare list.
CARD_LIST = Record("CardList", (
    RecordField("items", "Items", CARD, optional=True, repeated=True), _f("total", _N)))
PROFILE = Record("Profile", (
    _f("customer_id", _S), *(_f(name, _S, True) for name in PROFILE_FIELDS)))
RECORDS: Mapping[str, Record] = MappingProxyType(
    {r.name: r for r in (
        CUSTOMER, BALANCE, OPERATION, SAVED_ORDER, ORDER_DOCUMENT, SAVED_CUSTOMER,
        CUSTOMER_DOCUMENT, CHANGES, CHANGE, ORDER_LIST, CUSTOMER_LIST, CARD, CARD_LIST,
        PROFILE)})

_OP_ID, _CUSTOMER_ID, _AMOUNT = _p("operation_id", _S), _p("customer_id", _S), _p("amount", _D)
_ORDER_ID, _RESERVATION_ID = _p("order_id", _S), _p("reservation_id", _S)
_EXTERNAL_ID, _ID = _p("external_id", _S), _p("id", _S)
_LISTING = (_p("created_from", _T, True), _p("after", _S, True), _p("limit", _N, True))
_CARD, _PHONE = _p("card", _S), _p("phone", _S)
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
    Operation("find_cards", "FindCards", "/v1/find-cards", (_PHONE,), CARD_LIST),
    Operation("get_card", "GetCard", "/v1/card", (_CARD,), CARD),
    Operation("attach_card", "AttachCard", "/v1/attach-card", (_OP_ID, _CARD, _PHONE), CARD),
    Operation("set_card_status", "SetCardStatus", "/v1/set-card-status",
              (_OP_ID, _CARD, _p("status", _S)), CARD),
    Operation("set_main_card", "SetMainCard", "/v1/set-main-card", (_OP_ID, _CARD), CARD),
    Operation("move_points", "MovePoints", "/v1/move-points",
              (_OP_ID, _p("from_card", _S), _p("to_card", _S), _AMOUNT), OPERATION),
    Operation("get_profile", "GetProfile", "/v1/profile", (_CUSTOMER_ID,), PROFILE),
    Operation("save_profile", "SaveProfile", "/v1/save-profile",
              (_OP_ID, _CUSTOMER_ID, _p("profile", _S)), PROFILE),
    Operation("register_customer", "RegisterCustomer", "/v1/register-customer",
              (_OP_ID, _PHONE, _p("name", _S, True)), CUSTOMER),
)})
# fmt: on


def optional_only(logical: Iterable[str]) -> frozenset[str]:
    """``logical`` as a set, checked to name only optional operations (what a 1C may lack)."""
    names = frozenset(logical)
    if bad := sorted(n for n in names if n not in OPERATIONS or not OPERATIONS[n].optional):
        raise ValueError(f"only optional operations may be left out, not {', '.join(bad)}")
    return names
