"""An order's payments mirrored from RetailCRM into 1C through the shipped mapping, over the wire.

RetailCRM takes payments as a list on write but answers them, on read, as an object keyed
by payment id, and an order without payments as ``[]`` (PHP's empty array;
reference/retailcrm-api.md §1.4, §2.2). The bridge re-reads the order before delivering
it, so the mapping sees that shape; ``payments[*]`` in the shipped mapping reads both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.bonus import BonusFactory, bonus_config, bonus_factory
from tests.support.emulators import onec_emulator
from tests.support.mirroring import create_order, crm_call, read_order, shipped_route
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name


def payments_config(tmp_path: Path) -> dict[str, Any]:
    """Both sandboxes, the RetailCRM poller, and the shipped route of orders into 1C."""
    config = bonus_config(tmp_path, "onec")
    config["systems"]["retailcrm"]["options"]["poll_interval"] = 0.2
    config["mirror"] = {"routes": [shipped_route("retailcrm", "order", "onec")]}
    return config


def order(number: str, payments: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "number": number,
        "status": "new",
        "customer": {"externalId": "c-1"},
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 1500}],
        "payments": payments,
    }


async def test_an_order_with_payments_arrives_in_1c_with_the_mapped_payment_type(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=payments_config(tmp_path))
    onec = onec_emulator(bonus.runtime)
    # On its first start the RetailCRM poller walks past the history it finds; wait for
    # that, so the orders below are news.
    await eventually(lambda: bonus.runtime.store.get_cursor("retailcrm", "orders"))
    paid = [
        {"type": "bank-card", "amount": 1000, "status": "paid"},
        {"type": "cash", "amount": 500, "status": "not-paid"},
    ]
    ids = []
    for number, payments in (("5001P", paid), ("5002P", [])):
        new = order(number, payments)
        created = await crm_call(bonus, create_order(new))
        ids.append(str(created["id"]))

    # What the bridge reads back: payments keyed by payment id, or PHP's [] for none.
    read = [(await crm_call(bonus, read_order(i)))["order"] for i in ids]
    assert isinstance(read[0]["payments"], dict) and len(read[0]["payments"]) == 2
    assert read[1]["payments"] == []

    async def both_in_1c() -> Any:
        orders = onec.ledger.snapshot()["orders"]
        found = [orders.get(f"retailcrm-{i}") for i in ids]
        return found if all(found) else None

    (_n1, _v1, with_payments), (_n2, _v2, without) = await eventually(both_in_1c)
    assert with_payments["number"] == "5001P"
    assert with_payments["payment"] == "Банковская карта"  # the first payment's type
    assert with_payments["payments"] == [
        {"type": "Банковская карта", "amount": "1000.00"},
        {"type": "Наличные", "amount": "500.00"},
    ]
    assert without["number"] == "5002P"
    assert "payment" not in without
    assert without["payments"] == []
