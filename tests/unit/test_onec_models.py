"""What the 1C connector writes and hands the core: documents, OperationIds, read states."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.connector import DeliveryJob
from bridge.errors import PermanentError
from bridge.store.records import EventRecord, Status
from connectors.onec.contract import OPERATION_ID_MAX_LENGTH
from connectors.onec.models import (
    customer_state,
    document_of,
    document_text,
    operation_id,
    order_state,
)


def job(document: dict[str, Any] | None, payload: Any = None) -> DeliveryJob:
    event = EventRecord(
        "evt_1", "crm", "k", "order", "7", "changed", Status.IN_FLIGHT, None, payload, 0.0, 0.0
    )
    return DeliveryJob("1", "bridge-1", "onec", "crm", "order", "7", 1, (event,), document=document)


def test_document_text_is_canonical_and_keeps_amounts_decimal() -> None:
    one = document_text({"b": Decimal("10.50"), "a": [1, "x"], "when": datetime(2026, 1, 2)})
    two = document_text({"when": datetime(2026, 1, 2), "a": [1, "x"], "b": Decimal("10.50")})
    assert one == two == '{"a":[1,"x"],"b":"10.50","when":"2026-01-02T00:00:00"}'
    assert json.loads(document_text({"имя": "Иван"})) == {"имя": "Иван"}
    for bad in ({"x": float("nan")}, {"x": object()}):
        with pytest.raises(PermanentError, match="document"):
            document_text(bad)


def test_operation_id_is_the_key_and_the_documents_digest() -> None:
    text = document_text({"total": "1.00"})
    first = operation_id("bridge-42", text)
    assert first.startswith("bridge-42-")
    assert operation_id("bridge-42", text) == first  # a retry of the same state: a repeat
    assert operation_id("bridge-42", document_text({"total": "2.00"})) != first
    assert operation_id("bridge-42-r1", text) != first  # a replay is a new operation
    long_key = "bridge-" + "9" * 80
    long_id = operation_id(long_key, text)
    assert len(long_id) == OPERATION_ID_MAX_LENGTH
    assert long_id == operation_id(long_key, text)
    assert long_id != operation_id(long_key + "0", text)


def test_document_of_prefers_the_mapped_document_then_the_changes_own() -> None:
    assert document_of(job({"a": 1}, {"document": {"b": 2}})) == {"a": 1}
    assert document_of(job(None, {"document": {"b": 2}, "c": 3})) == {"b": 2}
    assert document_of(job(None, {"c": 3})) == {"c": 3}
    # A data.document that is no object: the data itself is the document (as for RetailCRM).
    assert document_of(job(None, {"document": "text"})) == {"document": "text"}
    payloads: tuple[dict[str, Any] | None, ...] = ({}, None)
    for payload in payloads:
        with pytest.raises(PermanentError, match="nothing to write"):
            document_of(job(None, payload))


def test_order_state_nests_the_document_under_1c_fields() -> None:
    record = {
        "id": "g-1",
        "external_id": None,
        "number": "00-000001",
        "date": datetime(2026, 11, 22, 13, 0, tzinfo=timezone(timedelta(hours=3))),
        "status": "new",
        "version": "2",
        "order": '{"number": "A-1", "total": "10.00"}',
    }
    state = order_state(record)
    assert state == {
        "id": "g-1",
        "external_id": None,
        "number": "00-000001",
        "date": "2026-11-22T10:00:00Z",
        "status": "new",
        "version": "2",
        "document": {"number": "A-1", "total": "10.00"},  # the site's number kept apart
    }
    # 1C's local time without an offset is read in the infobase's zone: Moscow (UTC+3) unless
    # the declaration says another (onec.md §5.3, issue 14); written in UTC.
    assert order_state({**record, "date": "2026-11-22T13:00:00"})["date"] == state["date"]
    assert order_state({**record, "date": "2026-11-22T10:00:00"}, zone=UTC) == state
    yekaterinburg = ZoneInfo("Asia/Yekaterinburg")  # UTC+5
    assert order_state({**record, "date": "2026-11-22T15:00:00"}, zone=yekaterinburg) == state
    assert order_state(record, zone=yekaterinburg) == state  # an offset given wins
    assert order_state({**record, "date": datetime(2026, 11, 22, 10, tzinfo=UTC)}) == state
    for broken in ({"order": "[1]"}, {"order": "{not json"}, {"order": None}, {"date": "x"}):
        with pytest.raises(PermanentError, match="GetOrder"):
            order_state({**record, **broken})


def test_customer_state() -> None:
    record = {
        "customer_id": "c-1",
        "phone": "+79000000001",
        "card": "",
        "version": "3",
        "customer": '{"phone": "+79000000001"}',
    }
    assert customer_state(record) == {
        "customer_id": "c-1",
        "external_id": None,
        "phone": "+79000000001",
        "card": None,
        "name": None,
        "version": "3",
        "document": {"phone": "+79000000001"},
    }
    with pytest.raises(PermanentError, match="GetCustomer"):
        customer_state({**record, "customer": "1"})
