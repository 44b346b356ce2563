"""A rules file read with file:line errors (bridge.rules.loader), its look-ups
(bridge.rules.book) and a cart priced by it (bridge.rules.engine)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from bridge.rules.book import LineKeys, RuleBook
from bridge.rules.engine import CartLine, LineError, price_cart
from bridge.rules.loader import load_rules
from bridge.rules.spread import SpendTooLarge

REPO = Path(__file__).resolve().parents[2]
GOOD = """\
version: test-1
cap_per_document: "100.00"
product_groups:
  tobacco: {sku_prefixes: [TOB-]}
  promo: {line_groups: [promo20], categories: [sale]}
  listed: {skus: [TOB-1]}
customer_groups:
  silver: {levels: [Серебряный]}
rules:
  - {group: default, max_share: 0.5, min_unit_price: "1.00", accrual_rate: 0.05,
     customer_multipliers: {silver: 2}}
  - {group: tobacco, max_share: 0, accrual_rate: 0}
  - {group: promo, max_share: 0.2, accrual_rate: 0.1}
  - {group: promo, max_share: 0.3, accrual_rate: 0.1, valid_from: 2026-12-25,
     valid_until: 2027-01-07}
"""
DAY = date(2026, 12, 6)


def book(tmp_path: Path, text: str = GOOD) -> RuleBook:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = load_rules(path)
    assert not problems, [str(p) for p in problems]
    assert loaded is not None
    return loaded


def problems_of(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    loaded, problems = load_rules(path)
    assert loaded is None
    return [str(p) for p in problems]


def test_the_shipped_sandbox_rules_load() -> None:
    loaded, problems = load_rules(REPO / "rules" / "sandbox.yaml")
    assert problems == []
    assert loaded is not None
    assert loaded.version == "sandbox-2026-12"


def test_every_mistake_is_named_with_file_line_and_key(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """\
rounding: sideways
product_groups:
  Bad-Name: {skus: [A]}
rules:
  - group: default
    max_share: 1.5
    valid_from: 2026-01-01
  - group: nosuch
    min_unit_price: "1.005"
    customer_multipliers: {gold: 2}
  - group: default
    accrual_rate: -1
    colour: red
""",
    )
    where = str(tmp_path / "rules.yaml")
    assert f"{where}:1: rounding: Input should be 'down', 'half_up' or 'up'" in found
    assert any(p.startswith(f"{where}:2: product_groups: group name 'Bad-Name'") for p in found)
    assert f"{where}:6: rules[0].max_share: must be a share from 0 to 1, e.g. 0.2" in found
    assert f"{where}:8: rules[1].group: unknown group 'nosuch'" in found
    assert any(
        p.startswith(f"{where}:9: rules[1].min_unit_price: must be an amount") for p in found
    )
    assert f"{where}:10: rules[1].customer_multipliers.gold: unknown customer group 'gold'" in found
    assert f"{where}:12: rules[2].accrual_rate: must be from 0 to 100" in found
    assert f"{where}:13: rules[2].colour: unknown key" in found
    assert len(found) == 8  # the default has an undated rule (rules[2]): no complaint


def test_a_default_rule_always_in_force_is_required(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "rules:\n  - {group: default, valid_until: 2027-01-01}\n")
    assert found == [
        f"{tmp_path / 'rules.yaml'}:1: rules: needs a rule for group default with no dates"
        " (lines that match no group)"
    ]


def test_yaml_mistakes_carry_their_line(tmp_path: Path) -> None:
    found = problems_of(tmp_path, "rules:\n  - {group: default}\nrules: []\n")
    assert found[0] == f"{tmp_path / 'rules.yaml'}:3: rules: duplicate key"
    found = problems_of(tmp_path, "rules: [\n")
    assert found[0].startswith(f"{tmp_path / 'rules.yaml'}:2: (top level): YAML syntax")


def test_lines_find_their_group(tmp_path: Path) -> None:
    rules = book(tmp_path)
    assert rules.product_group(LineKeys("TOB-2")) == "tobacco"  # prefix
    assert rules.product_group(LineKeys("TOB-1")) == "listed"  # a listed SKU wins
    assert rules.product_group(LineKeys("A", group="promo20")) == "promo"  # the line's field
    assert rules.product_group(LineKeys("A", group="promo")) == "promo"  # the group's name
    assert rules.product_group(LineKeys("A", category="sale")) == "promo"
    assert rules.product_group(LineKeys("A", category="food")) == "default"
    assert rules.customer_group("Серебряный") == "silver"
    assert rules.customer_group("Базовый") is None


def test_the_newest_rule_in_force_wins(tmp_path: Path) -> None:
    rules = book(tmp_path)
    assert rules.rule("promo", DAY).max_share == Decimal("0.2")
    assert rules.rule("promo", date(2026, 12, 25)).max_share == Decimal("0.3")
    assert rules.rule("promo", date(2027, 1, 8)).max_share == Decimal("0.2")
    assert rules.rule("listed", DAY).group == "default"  # a group without a rule


def test_a_cart_priced_line_by_line(tmp_path: Path) -> None:
    rules = book(tmp_path)
    lines = [
        CartLine("MILK", Decimal(2), Decimal("80.00")),  # 160.00: half, 80.00
        CartLine("TOB-9", Decimal(1), Decimal("200.00")),  # excluded
        CartLine("CHEESE", Decimal("0.375"), Decimal("1000.00"), group="promo20"),  # 375.00: 75.00
        CartLine("BREAD", Decimal(1), Decimal("1.50"), discount=Decimal("0.20")),  # 1.30: 0.30
    ]
    priced = price_cart(rules, lines, None, None, DAY)
    assert [ln.max_spend for ln in priced.lines] == [
        Decimal("80.00"),
        Decimal("0.00"),
        Decimal("75.00"),
        Decimal("0.30"),
    ]
    assert [ln.spend for ln in priced.lines] == [ln.max_spend for ln in priced.lines]
    # accrual: (amount − spend) × rate: 80.00 × 0.05, 0, 300.00 × 0.1, 1.00 × 0.05
    assert [ln.accrual for ln in priced.lines] == [
        Decimal("4.00"),
        Decimal("0.00"),
        Decimal("30.00"),
        Decimal("0.05"),
    ]
    assert priced.total("spend") == Decimal("155.30")
    silver = price_cart(rules, lines, "Серебряный", Decimal("10.00"), DAY)
    assert silver.customer_group == "silver"
    assert sum(ln.spend for ln in silver.lines) == Decimal("10.00")
    assert silver.lines[0].accrual == (
        (Decimal("160.00") - silver.lines[0].spend) * Decimal("0.1")
    ).quantize(Decimal("0.01"))


def test_the_document_cap_and_refusals(tmp_path: Path) -> None:
    rules = book(tmp_path)
    big = [
        CartLine("A", Decimal(1), Decimal("3000.00")),
        CartLine("B", Decimal(1), Decimal("1000.00")),
    ]
    priced = price_cart(rules, big, None, Decimal(0), DAY)
    # 150.00 + 50.00 earned, cut to 100.00 in proportion: 75.00 + 25.00
    assert [ln.accrual for ln in priced.lines] == [Decimal("75.00"), Decimal("25.00")]
    with pytest.raises(SpendTooLarge) as refused:
        price_cart(rules, big, None, Decimal("2000.01"), DAY)
    assert refused.value.largest == Decimal("2000.00")
    with pytest.raises(LineError) as bad:
        price_cart(
            rules, [big[0], CartLine("C", Decimal(1), Decimal(1), Decimal(2))], None, None, DAY
        )
    assert (bad.value.index, bad.value.field) == (1, "discount")


def test_a_sku_listed_in_two_groups_is_a_mistake(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        """\
product_groups:
  a: {skus: [X1, X2]}
  b:
    skus: [X3, X2]
rules:
  - {group: default}
""",
    )
    where = f"{tmp_path / 'rules.yaml'}:4: product_groups.b.skus[1]"
    assert found == [f"{where}: SKU 'X2' is listed in group 'a' too"]
