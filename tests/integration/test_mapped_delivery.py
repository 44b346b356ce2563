"""A route's mapping file between the event log and the target (PRODUCT 3.3, 4.4)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import StartBridge, Target
from tests.integration.test_delivery import wait_for_status
from tests.integration.test_intake import AUTH, order, post

MAPPING = """\
version: 1
source: shop
entity: order
target: crm
tables:
  statuses:
    values: {new: "Новый", paid: "Оплачен"}
    unknown: error
filters:
  - {path: channel, not_in: [test]}
fields:
  - {to: Status, from: status, transform: lookup, table: statuses}
  - {to: Total, from: total, transform: money}
  - {to: Customer.Phone, from: phone, transform: phone}
"""


async def test_the_target_gets_the_mapped_document(
    start_bridge: StartBridge, target: Target, tmp_path: Path
) -> None:
    (tmp_path / "shop_order_to_crm.yaml").write_text(MAPPING, encoding="utf-8")
    bridge = await start_bridge(target_url=target.url, mapping="shop_order_to_crm.yaml")
    change = order("m1", "5", status="paid", total=1500, phone="8 (900) 000-00-01")
    _, body, _ = await post(bridge, change, AUTH)
    await wait_for_status(bridge, body["event_id"], "done")
    [request] = target.state.requests
    assert request["document"] == {
        "Status": "Оплачен",
        "Total": "1500.00",
        "Customer": {"Phone": "+79000000001"},
    }


async def test_a_filtered_change_is_done_without_a_write(
    start_bridge: StartBridge, target: Target, tmp_path: Path
) -> None:
    (tmp_path / "shop_order_to_crm.yaml").write_text(MAPPING, encoding="utf-8")
    bridge = await start_bridge(target_url=target.url, mapping="shop_order_to_crm.yaml")
    _, body, _ = await post(bridge, order("m2", "6", status="new", channel="test"), AUTH)
    await wait_for_status(bridge, body["event_id"], "done")
    assert target.state.requests == []
    detail = await bridge.runtime.store.get_event(body["event_id"])
    [attempt] = detail.history
    assert attempt.outcome == "done"
    assert attempt.message is not None
    assert attempt.message.startswith("skipped: ")
    assert "channel" in attempt.message


async def test_an_unmappable_change_is_dead_with_the_rule_named(
    start_bridge: StartBridge, target: Target, tmp_path: Path
) -> None:
    (tmp_path / "shop_order_to_crm.yaml").write_text(MAPPING, encoding="utf-8")
    bridge = await start_bridge(target_url=target.url, mapping="shop_order_to_crm.yaml")
    _, body, _ = await post(bridge, order("m3", "7", status="weird", total=1), AUTH)
    await wait_for_status(bridge, body["event_id"], "dead")
    assert target.state.requests == []
    detail = await bridge.runtime.store.get_event(body["event_id"])
    message = detail.history[-1].message or ""
    assert "shop_order_to_crm.yaml:" in message
    assert "Status" in message and "'weird'" in message
    assert detail.history[-1].error_class == "permanent"
