"""History pages → events: echoes dropped, one event per entity, stable keys."""

from __future__ import annotations

from typing import Any

from connectors.retailcrm.history import (
    bonus_operation_events,
    fold_history,
    is_own_echo,
    last_history_id,
)


def rec(rid: int, order_id: int, field: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "field": field,
        "order": {"id": order_id, "externalId": f"x-{order_id}", "site": "shop"},
        **extra,
    }


OWN = {"source": "api", "apiKey": {"current": True}}
OTHER_KEY = {"source": "api", "apiKey": {"current": False}}
USER = {"source": "user", "user": {"id": 5}}


def test_own_writes_are_echoes_and_nothing_else_is() -> None:
    assert is_own_echo(OWN)
    assert not is_own_echo(OTHER_KEY)
    assert not is_own_echo(USER)
    assert not is_own_echo({"source": "api"})


def test_a_page_folds_into_one_event_per_entity_without_echoes() -> None:
    page = [
        rec(101, 7, "id", created=True, **USER),
        rec(102, 7, "status", **USER),
        rec(103, 8, "status", **OWN),  # the bridge's own write: dropped
        rec(104, 9, "manager", **OTHER_KEY),
        rec(105, 7, "status", **OTHER_KEY),
    ]
    events = fold_history("orders", page)
    assert [(e.entity, e.entity_id, e.action, e.source_key) for e in events] == [
        ("order", "7", "created", "orders-history:7:105"),
        ("order", "9", "changed", "orders-history:9:104"),
    ]
    assert events[0].payload == {
        "external_id": "x-7",
        "site": "shop",
        "fields": ["id", "status"],
        "sources": ["api", "user"],
        "history_id": 105,
    }
    assert last_history_id(page, 100) == 105  # the cursor passes the echoes too
    assert fold_history("orders", page) == events  # the same page gives the same keys


def test_deleted_and_customer_feed() -> None:
    page = [{"id": 3, "field": "id", "deleted": True, "customer": {"id": 4}, **USER}]
    (event,) = fold_history("customers", page)
    assert (event.entity, event.entity_id, event.action) == ("customer", "4", "deleted")
    assert last_history_id([], 42) == 42


def test_bonus_operations_keys_follow_the_page_cursor_and_place() -> None:
    row = {
        "type": "credit_manual",
        "createdAt": "2026-11-22 10:00:00",
        "amount": 25,
        "loyaltyAccount": {"id": 11},
    }
    page: list[dict[str, Any]] = [row, dict(row), {**row, "amount": 30}, {"type": "burn"}]
    events = bonus_operation_events(page, "c-1")
    assert [(e.entity, e.entity_id, e.action) for e in events] == [
        ("loyalty_account", "11", "credit_manual")
    ] * 3
    assert len({e.source_key for e in events}) == 3  # twins on a page stay two
    again = bonus_operation_events(page, "c-1")
    assert [e.source_key for e in again] == [e.source_key for e in events]  # a re-read
    later = bonus_operation_events([row], "c-2")  # the same operation read in a later poll
    assert later[0].source_key not in {e.source_key for e in events}
