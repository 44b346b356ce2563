"""The shapes the 1C connector exchanges with the core for mirroring.

- **Read** (``read_entity``): an order or customer as GetOrder / GetCustomer return it, as
  a plain JSON dict: 1C's own fields at the top (``number``, ``status``, ``date`` of an order;
  ``phone``, ``card``, ``name`` of a customer), the document itself under ``document`` —
  nested, so a document key such as the site's ``number`` never hides 1C's.
- **Write** (``deliver``): the delivery's document as the JSON text SaveOrder / SaveCustomer
  take, and the OperationId that makes the write idempotent.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import date, datetime, tzinfo
from decimal import Decimal
from typing import Any

from bridge.connector import DeliveryJob
from bridge.errors import PermanentError
from connectors.onec.contract import OPERATION_ID_MAX_LENGTH
from connectors.onec.values import OnecBadValue, read_moment

# entity → the contract operation that reads it, lists it, and (operation, parameter) that
# writes it.
# onec.md §4.5 "Concept mapping": the documents and catalogs 1C has for what we mirror.
ENTITIES: Mapping[str, str] = {
    "order": "ЗаказКлиента (Управление торговлей 11), ЗаказПокупателя (older configurations)",
    "receipt": "ЧекККМ, a retail sale at the till (never carried by CommerceML, onec.md §3.11)",
    "sale": "РеализацияТоваровУслуг, a shipment / sale to a customer",
    "return": "ВозвратТоваровОтКлиента, or a ЧекККМ of the return kind at the till",
    "customer": "Партнеры / Контрагенты, with their loyalty cards (КартыЛояльности)",
}
READS: Mapping[str, str] = {"order": "get_order", "customer": "get_customer"}
LISTS: Mapping[str, str] = {"order": "list_orders", "customer": "list_customers"}
WRITES: Mapping[str, tuple[str, str]] = {
    "order": ("save_order", "order"),
    "customer": ("save_customer", "customer"),
    # 1C's directory has no companies apart from people: a corporate customer is saved as
    # the person who buys for it (its mapping writes their phone, with the company beside).
    "corporate_customer": ("save_customer", "customer"),
}
_DIGEST = 16  # hex characters of the document's digest in an OperationId


def order_state(
    record: Mapping[str, Any], operation: str = "GetOrder", zone: tzinfo | None = None
) -> dict[str, Any]:
    """An ``OrderDocument`` (from ``operation``) as the core and the mapping files see it."""
    return {
        "id": _text(record.get("id")),
        "external_id": _text(record.get("external_id")),
        "number": _text(record.get("number")),
        "date": _iso(record.get("date"), operation, zone),
        "status": _text(record.get("status")),
        "version": _text(record.get("version")),
        "document": _json_object(record.get("order"), operation, "Order"),
    }


def customer_state(
    record: Mapping[str, Any], operation: str = "GetCustomer", zone: tzinfo | None = None
) -> dict[str, Any]:
    """A ``CustomerDocument`` (from ``operation``) as the core and the mapping files see it
    (``zone``: unused, a customer has no times; the same signature as ``order_state``)."""
    return {
        "customer_id": _text(record.get("customer_id")),
        "external_id": _text(record.get("external_id")),
        "phone": _text(record.get("phone")),
        "card": _text(record.get("card")),
        "name": _text(record.get("name")),
        "version": _text(record.get("version")),
        "document": _json_object(record.get("customer"), operation, "Customer"),
    }


def feed_id(entity: str, state: Mapping[str, Any]) -> str:
    """The id the change feed gives the entity ``state`` is of, so that a listed document
    and a live change of it are one entity in the event log.

    CONTRACT.md "Keys": the feed names an order by the ExternalId it was saved under, else
    by 1C's own id; a customer by 1C's CustomerId.
    """
    keys = ("external_id", "id") if entity == "order" else ("customer_id",)
    found = next((state[key] for key in keys if state.get(key)), None)
    if found is None:
        what = "an OrderDocument" if entity == "order" else "a CustomerDocument"
        raise PermanentError(f"1C listed {what} without its id")
    return str(found)


def document_of(job: DeliveryJob) -> Mapping[str, Any]:
    """What a delivery writes: the mapped document, else the latest change's own.

    Without a mapping the change must carry 1C's shape, as ``data.document`` or as the data
    itself (the same rule as the RetailCRM sink).
    """
    if job.document is not None:
        return job.document
    payload = job.events[-1].payload if job.events else None
    nested = payload.get("document") if isinstance(payload, Mapping) else None
    document = nested if isinstance(nested, Mapping) else payload
    if not isinstance(document, Mapping) or not document:
        raise PermanentError(
            f"{job.source} {job.entity} {job.entity_id}: nothing to write to 1C (no mapped"
            " document, and the change carried no data.document)"
        )
    return document


def document_text(document: Mapping[str, Any]) -> str:
    """The document as the JSON text 1C reads; amounts as decimal strings (CONTRACT.md
    "Conventions"), keys sorted so one state always gives one text."""
    try:
        return json.dumps(
            document,
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
            allow_nan=False,
            default=_json_default,
        )
    except (TypeError, ValueError) as exc:
        raise PermanentError(f"document: cannot be sent to 1C as JSON ({exc})") from exc


def operation_id(operation_key: str, text: str) -> str:
    """The OperationId of one write: the delivery's key and a digest of what it writes.

    The key alone is not enough: a delivery re-reads its source before every attempt, so a
    retry after a timeout (whose write may have landed) can carry newer state, and 1C would
    refuse it as ``operation_conflict`` (CONTRACT.md "Idempotency") and dead-letter the
    newest state. With the digest, a retry of the same state is still a repeat that 1C
    answers from memory, and newer state is a write of its own.
    """
    digest = hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]
    candidate = f"{operation_key}-{digest}"
    if len(candidate) <= OPERATION_ID_MAX_LENGTH:
        return candidate
    key = hashlib.sha256(operation_key.encode()).hexdigest()
    return f"{key[: OPERATION_ID_MAX_LENGTH - _DIGEST - 1]}-{digest}"


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_object(text: object, operation: str, element: str) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str | bytes) else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        # A broken record will not mend itself on a retry: someone must look at 1C.
        raise PermanentError(f"1C's {operation} answered an {element} that is not a JSON object")
    return value


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _iso(value: Any, operation: str, zone: tzinfo | None) -> str | None:
    # 1C's spellings (values.py): its empty date 0001-01-01T00:00:00 is no date, its local
    # time without an offset is read in the infobase's zone (onec.md §5.3), written in UTC.
    try:
        moment = read_moment(value, "date", zone)
    except OnecBadValue as exc:
        # A broken record will not mend itself on a retry: someone must look at 1C.
        raise PermanentError(f"1C's {operation} answered a Date that is not one: {exc}") from exc
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")
