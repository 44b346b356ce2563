"""Order arithmetic in the emulator: item defaults, unit prices, totals and bonus shares.

retailcrm-api.md §2.2 (items with `initialPrice`, `discountManualAmount`, `discountTotal`,
`prices[]`, `bonusesChargeTotal`; order `summ`, `totalSumm`, `prepaySum`) and §4.3 (a bonus
charge spread over the items, the total dropping by `bonuses × chargeRate`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal
from typing import Any

from connectors.retailcrm.emulator.wire import Json, money

CENT = Decimal("0.01")
ZERO = Decimal(0)
_ITEM_DEFAULTS = (
    ("quantity", 1),
    ("initialPrice", 0),
    ("discountManualAmount", 0),
    ("bonusesChargeTotal", 0),
    ("bonusesCreditTotal", 0),
    ("status", "new"),
)


def offer_key(item: Any) -> str:
    """An item's offer identity, for matching items across an edit."""
    offer = (item.get("offer") or {}) if isinstance(item, dict) else {}
    return "|".join(str(offer.get(k, "")) for k in ("id", "externalId", "xmlId"))


def keep_item_ids(old: list[Json], new: list[Json]) -> None:
    """Decision: on edit an item without `id` is the old item with the same offer, if any,
    so re-sending the same items changes nothing (the reference is silent)."""
    free = {offer_key(i): i["id"] for i in old}
    for item in new:
        if isinstance(item, dict) and "id" not in item and offer_key(item) in free:
            item["id"] = free.pop(offer_key(item))


def line_sums(items: list[Json]) -> list[Decimal]:
    """What each item costs after its manual discount, before bonuses."""
    return [
        (money(i["initialPrice"], "initialPrice") - money(i["discountManualAmount"], "discount"))
        * money(i["quantity"], "quantity")
        for i in items
    ]


def spread(amount: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`amount` split over items in proportion to `weights`, in cents; the rest on the last."""
    total = sum(weights, ZERO)
    if total <= 0:
        return [ZERO for _ in weights]
    shares = [(amount * w / total).quantize(CENT, rounding=ROUND_DOWN) for w in weights]
    last = max(i for i, w in enumerate(weights) if w > 0)
    shares[last] += amount - sum(shares, ZERO)
    return shares


def normalize_order(order: Json, new_id: Callable[[str], int]) -> None:
    """Fill item defaults and recompute every derived amount; 400 naming a bad number."""
    order["customFields"] = order.get("customFields") or {}
    goods = charged = credited = ZERO
    for index, item in enumerate(order.setdefault("items", [])):
        item.setdefault("id", new_id("item"))
        for key, value in _ITEM_DEFAULTS:
            item.setdefault(key, value)
        number = {k: money(item[k], f"items[{index}].{k}") for k, _ in _ITEM_DEFAULTS[:5]}
        qty = number["quantity"]
        per_unit = number["discountManualAmount"] + (
            number["bonusesChargeTotal"] / qty if qty else ZERO
        )
        item["discountTotal"] = per_unit.quantize(CENT)
        price = (number["initialPrice"] - per_unit).quantize(CENT)
        item["prices"] = [{"price": price, "quantity": qty}]
        goods += (number["initialPrice"] - number["discountManualAmount"]) * qty
        charged += number["bonusesChargeTotal"]
        credited += number["bonusesCreditTotal"]
    for payment in order.setdefault("payments", []):
        payment.setdefault("id", new_id("payment"))
    delivery = money((order.get("delivery") or {}).get("cost", 0), "delivery.cost")
    discount = money(order.get("discountManualAmount", 0), "discountManualAmount")
    paid = [
        money(p.get("amount", 0), "amount") for p in order["payments"] if p.get("status") == "paid"
    ]
    order["summ"] = goods
    order["bonusesChargeTotal"] = charged
    order["bonusesCreditTotal"] = credited
    order["prepaySum"] = sum(paid, ZERO)
    order["totalSumm"] = goods - discount - charged + delivery
    order.setdefault("privilegeType", "none")


def render_payments(order: Json) -> Json | list[Any]:
    """§2.2: on read payments are an object keyed by payment id. Decision: none → `[]`, what
    PHP's json_encode writes for an empty id-keyed array (§1.4 quirk)."""
    return {str(p["id"]): p for p in order.get("payments", [])} or []
