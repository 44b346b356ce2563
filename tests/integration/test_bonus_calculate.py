"""``POST /api/v1/bonus/calculate`` end to end with the 1C sandbox as the master: the
customer's group from 1C's level, the spread to the kopeck, refusals naming the field."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.support.bonus import ADMIN, Bonus, BonusFactory, bonus_config, bonus_factory

__all__ = ["bonus_factory"]  # the fixture, used by name

CALC = "/api/v1/bonus/calculate"
REPO = Path(__file__).resolve().parents[2]
RULES = """\
version: calc-test
product_groups:
  tobacco: {sku_prefixes: [TOB-]}
  promo: {line_groups: [promo20]}
customer_groups:
  silver: {levels: [Серебряный]}
rules:
  - {group: default, max_share: 0.5, min_unit_price: "1.00", accrual_rate: 0.05,
     customer_multipliers: {silver: 1.5}}
  - {group: tobacco, max_share: 0, accrual_rate: 0}
  - {group: promo, max_share: 0.2, accrual_rate: 0.05}
"""
IVAN = {"phone": "+79000000001"}  # 1C sandbox: 1,000 points, level "Базовый"
MARIA = {"card": "2000000000022"}  # level "Серебряный"


async def calculator(bonus_factory: BonusFactory, tmp_path: Path, **rules: Any) -> Bonus:
    (tmp_path / "calc-rules.yaml").write_text(RULES, encoding="utf-8")
    config = bonus_config(tmp_path, "onec", rules={"file": "calc-rules.yaml", **rules})
    return await bonus_factory("onec", config=config)


def item(sku: str, quantity: str, price: str, **more: str) -> dict[str, str]:
    return {"sku": sku, "quantity": quantity, "price": price, **more}


async def test_the_largest_write_off_spread_line_by_line(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await calculator(bonus_factory, tmp_path)
    cart = {
        "items": [
            item("MILK", "2", "80.00"),
            item("TOB-1", "1", "200.00"),
            item("CHEESE", "0.375", "1000.00", group="promo20"),
            item("BREAD", "1", "1.50", discount="0.20"),
        ]
    }
    status, answer = await bonus.call("POST", CALC, {"customer": IVAN, "cart": cart})
    assert status == 200, answer
    assert [(ln["sku"], ln["max_spend"], ln["spend"], ln["accrual"]) for ln in answer["lines"]] == [
        ("MILK", "80.00", "80.00", "4.00"),
        ("TOB-1", "0.00", "0.00", "0.00"),
        ("CHEESE", "75.00", "75.00", "15.00"),
        ("BREAD", "0.30", "0.30", "0.05"),
    ]
    assert answer["totals"] == {
        "amount": "736.30",
        "max_spend": "155.30",
        "spend": "155.30",
        "accrual": "19.05",
    }
    assert answer["rules"] == "calc-test"
    assert answer["customer"]["phone"] == "+7 900 ***-**-01"
    assert answer["customer"]["level"] == "Базовый"
    assert answer["customer_group"] is None


async def test_a_requested_spend_sums_exactly_and_the_level_multiplies(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await calculator(bonus_factory, tmp_path)
    cart = {"items": [item(f"SKU{i}", "1", "33.33") for i in range(3)]}
    body = {"customer": MARIA, "cart": cart, "spend": "10.00"}
    status, answer = await bonus.call("POST", CALC, body)
    assert status == 200, answer
    # 16.66 cap each: 10.00 by largest remainder, the tie to the earlier lines
    assert [ln["spend"] for ln in answer["lines"]] == ["3.34", "3.33", "3.33"]
    assert answer["customer_group"] == "silver"
    # (33.33 − 3.34) × 0.05 × 1.5 = 2.24925 → 2.24 (down)
    assert answer["lines"][0]["accrual"] == "2.24"
    status, again = await bonus.call("POST", CALC, body)
    assert again["lines"] == answer["lines"]  # the same cart, the same answer


async def test_the_seeds_20_percent_cap_on_every_line(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await calculator(bonus_factory, tmp_path)
    prices = ["100.00", "2499.95", "35.50", "12345.60"]
    cart = {"items": [item(f"P{i}", "1", p, group="promo20") for i, p in enumerate(prices)]}
    status, answer = await bonus.call("POST", CALC, {"customer": IVAN, "cart": cart})
    assert status == 200, answer
    spends = [Decimal(ln["spend"]) for ln in answer["lines"]]
    assert spends == [Decimal(p) * Decimal("0.2") for p in prices]
    assert Decimal(answer["totals"]["spend"]) == sum(Decimal(p) for p in prices) * Decimal("0.2")


async def test_too_much_asked_is_refused_with_the_largest(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await calculator(bonus_factory, tmp_path)
    body = {"customer": IVAN, "cart": {"items": [item("A", "1", "10.00")]}, "spend": "5.01"}
    status, problem = await bonus.call("POST", CALC, body)
    assert (status, problem["field"], problem["max_spend"]) == (422, "spend", "5.00")


@pytest.mark.parametrize(
    ("cart", "field"),
    [
        ({"items": [item("A", "1", "10.00"), item("B", "1", "1.001")]}, "cart.items.1.price"),
        ({"items": [item("A", "0", "10.00")]}, "cart.items.0.quantity"),
        ({"items": [item("A", "0.0001", "10.00")]}, "cart.items.0.quantity"),
        ({"items": [item("A", "1", "10.00", discount="10.01")]}, "cart.items.0.discount"),
        ({"items": [{"sku": "A", "quantity": 1.5, "price": "1.00"}]}, "cart.items.0.quantity"),
        ({"items": [{"quantity": "1", "price": "1.00"}]}, "cart.items.0.sku"),
        ({"items": []}, "cart.items"),
        ({"items": [item("A", "1", "1.00", colour="red")]}, "cart.items.0.colour"),
    ],
)
async def test_bad_input_names_the_field(
    bonus_factory: BonusFactory, tmp_path: Path, cart: Any, field: str
) -> None:
    bonus = await calculator(bonus_factory, tmp_path)
    status, problem = await bonus.call("POST", CALC, {"customer": IVAN, "cart": cart})
    assert status == 422, problem
    assert problem["field"] == field
    assert problem["detail"].startswith(f"{field}: ")


async def test_scope_unknown_customer_master_down_and_no_rules(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await calculator(bonus_factory, tmp_path)
    body = {"customer": {"phone": "+79009999999"}, "cart": {"items": [item("A", "1", "1.00")]}}
    assert (await bonus.call("POST", CALC, body, headers={}))[0] == 401
    assert (await bonus.call("POST", CALC, body, headers=ADMIN))[0] == 403
    status, problem = await bonus.call("POST", CALC, body)
    assert (status, problem["code"]) == (404, "unknown_customer")
    bad = {"items": [item("A", "1", "1.00", discount="2.00")]}
    status, problem = await bonus.call("POST", CALC, body | {"cart": bad})
    assert (status, problem["field"]) == (422, "cart.items.0.discount")  # the master not asked
    bonus.emulator.faults.set(outage=True)
    status, problem = await bonus.call("POST", CALC, body | {"customer": IVAN})
    assert (status, problem["code"]) == (503, "master_unavailable")
    config = bonus_config(tmp_path / "plain", "onec")
    plain = await bonus_factory("onec", config=config)
    status, problem = await plain.call("POST", CALC, body | {"customer": IVAN})
    assert (status, problem["code"]) == (404, "no_rules")


async def test_rules_source_master_is_not_supported_yet(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await calculator(bonus_factory, tmp_path, source="master")
    body = {"customer": IVAN, "cart": {"items": [item("A", "1", "1.00")]}}
    status, problem = await bonus.call("POST", CALC, body)
    assert (status, problem["code"]) == (501, "not_supported")


async def test_the_shipped_sandbox_rules(bonus_factory: BonusFactory, tmp_path: Path) -> None:
    config = bonus_config(tmp_path, "onec", rules={"file": str(REPO / "rules" / "sandbox.yaml")})
    bonus = await bonus_factory("onec", config=config)
    cart = {"items": [item("PROMO-1", "1", "1000.00"), item("TOB-1", "1", "300.00")]}
    status, answer = await bonus.call("POST", CALC, {"customer": IVAN, "cart": cart})
    assert status == 200, answer
    assert [ln["spend"] for ln in answer["lines"]] == ["200.00", "0.00"]
    assert answer["rules"] == "sandbox-2026-12"
