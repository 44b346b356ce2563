"""Returns after a commit: how much of the spent points an order's return gives back.

PRODUCT 3.4: "partial returns reverse proportionally (per line or by basket ratio,
configurable)". A return is seen in the order itself, as the source re-reads it for every
change: a line's quantity went down, a line is gone, or a line carries one of
``bonus.returns.line_statuses``. What it is compared with is the order's *basket*: its
lines as they were when the reservation was committed, kept with the reservation.

Lines are matched by product (1C's ``sku``, RetailCRM's ``offer.externalId``), so the
basket taken from one system's copy of an order compares with another's (a RetailCRM order
mirrored into 1C). Lines of one product are added up. A copy that shares no product with
the basket cannot be compared and gives nothing back.

The result is the *cumulative* refund — what the whole return so far is worth — rounded to
kopecks once and never above what was committed; the caller gives back the difference to
what it already gave. So rounding never adds up across partial returns, and a return seen
twice (a retried delivery, both systems reporting it) is worth the same both times.

- basket: committed × returned value / the basket's value (Open Loyalty's "in proportion to
  the returned amount of the whole transaction", loyalty anchors [OL5]);
- per_line: each line's own share of the spend × returned quantity / quantity (Talon.One's
  per-item rollback, [TO3]); a line's share is the bonus amount the order carries for it
  (RetailCRM ``items[].bonusesChargeTotal``, ``bonuses_charged`` in a 1C document), scaled
  to the committed amount, else its share of the basket's value.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Literal

from bridge.errors import BridgeError
from bridge.ledger import ReturnsAtMaster

ReturnMode = Literal["basket", "per_line"]
Reverser = Literal["bridge", "master"]

ZERO = Decimal(0)
CENT = Decimal("0.01")
# Where an order line names its product, its unit price and the bonus charged on it, as
# the shipped mappings and RetailCRM's order carry them (retailcrm-api.md §2.2).
_PRODUCT = (("sku",), ("offer", "externalId"), ("offer", "xmlId"), ("offer", "id"), ("article",))
_PRICE = ("price", "initialPrice")
_BONUS = ("bonuses_charged", "bonusesChargeTotal")


@dataclass(frozen=True)
class Line:
    """One product of an order: all its lines added up."""

    quantity: Decimal
    value: Decimal  # quantity × unit price
    bonus: Decimal  # points charged on it, as the order says (0 when it does not)


Basket = dict[str, Line]


class NotComparable(BridgeError, ValueError):
    """The order's lines cannot be told apart from the basket's (another product key)."""


def read_lines(order: Mapping[str, Any], returned_statuses: Collection[str] = ()) -> Basket | None:
    """The order's lines by product; None when it has no readable lines (no ``items``, or a
    line without a number for its quantity: then no return can be judged from it)."""
    items = order.get("items")
    document = order.get("document")
    if items is None and isinstance(document, Mapping):  # 1C's GetOrder: the document
        items = document.get("items")
    if not isinstance(items, list):
        return None
    basket: Basket = {}
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            return None
        quantity = _number(item.get("quantity"))
        if quantity is None or quantity < 0:
            return None
        if isinstance(item.get("status"), str) and item["status"] in returned_statuses:
            quantity = ZERO  # marked returned: the whole line came back
        price = next((p for k in _PRICE if (p := _number(item.get(k))) is not None), ZERO)
        bonus = next((b for k in _BONUS if (b := _number(item.get(k))) is not None), ZERO)
        key = _product(item) or f"#{index}"
        seen = basket.get(key, Line(ZERO, ZERO, ZERO))
        value = seen.value + quantity * price
        basket[key] = Line(seen.quantity + quantity, value, seen.bonus + bonus)
    return basket


def refund_target(
    committed: Decimal, baseline: Basket, current: Basket, mode: ReturnMode
) -> Decimal:
    """What the return so far gives back in all: 0.00 … ``committed``, in kopecks.

    Raises NotComparable when ``current`` has lines but none of the basket's products.
    """
    lines = {k: line for k, line in baseline.items() if line.quantity > 0}
    if not lines or committed <= 0:
        return ZERO
    if current and not lines.keys() & current.keys():
        raise NotComparable(
            f"the order's lines ({', '.join(sorted(current))}) share no product with the"
            f" lines at commit ({', '.join(sorted(lines))})"
        )
    weights = _weights(lines, mode)
    total = sum(weights.values(), ZERO)
    if total <= 0:
        return ZERO
    share = ZERO
    for key, line in lines.items():
        now = current[key].quantity if key in current else ZERO
        back = min(max(line.quantity - now, ZERO), line.quantity)
        share += weights[key] * back / line.quantity
    return clamp(committed * share / total, committed)


def clamp(amount: Decimal, committed: Decimal) -> Decimal:
    """``amount`` rounded to kopecks (half up), within 0 … ``committed``."""
    return min(max(amount.quantize(CENT, rounding=ROUND_HALF_UP), ZERO), committed)


def who_reverses(setting: str, master: str, ledger: object) -> Reverser:
    """Who gives spent points back on a return: ``bonus.returns.reversed_by`` resolved for
    this master; BridgeError when it asks the bridge of a master that takes no reverse.

    The master gives them back itself when its connector says so (``ReturnsAtMaster``):
    RetailCRM applies a charge to the order (``/orders/loyalty/apply``) and cancels the
    order's bonus operations when the order is cancelled (retailcrm-api.md §4.3 steps 3, 5,
    6), and its connector offers no reverse.
    """
    itself = isinstance(ledger, ReturnsAtMaster) and ledger.reverses_returns
    if setting == "auto":
        return "master" if itself else "bridge"
    if setting == "bridge" and itself:
        raise BridgeError(
            f"bonus.returns.reversed_by is bridge, but {master!r} gives points back itself when"
            " an order is cancelled and takes no reverse call; use master (or auto)"
        )
    return "bridge" if setting == "bridge" else "master"


def reverse_operation_id(reservation_id: str, returned_after: Decimal) -> str:
    """The master's operation id of the reverse that brings the total given back to
    ``returned_after``: the same for every retry of that reverse, new for the next one
    (the total only grows), so a repeat never gives back twice."""
    return f"{reservation_id}:reverse:{returned_after.quantize(CENT)}"


def dump_basket(basket: Basket, system: str) -> str:
    """The basket as kept with the reservation (decimals as strings), with the system whose
    copy of the order it is: a return is judged only against that system's later copies
    (another system's copy may carry the lines differently, e.g. 1C's leaves out a line with
    no catalogue product)."""
    rows = {k: [str(v.quantity), str(v.value), str(v.bonus)] for k, v in sorted(basket.items())}
    return json.dumps({"system": system, "lines": rows}, ensure_ascii=False, separators=(",", ":"))


def load_basket(text: str) -> tuple[str | None, Basket]:
    """The system and the basket ``dump_basket`` wrote (None: kept before systems were)."""
    kept = json.loads(text)
    system, rows = (kept.get("system"), kept.get("lines")) if "lines" in kept else (None, kept)
    basket = {k: Line(Decimal(q), Decimal(v), Decimal(b)) for k, (q, v, b) in rows.items()}
    return (str(system) if system else None), basket


def _weights(lines: Basket, mode: ReturnMode) -> dict[str, Decimal]:
    """Each line's part of the spend: its bonus (per_line, when the order says), else its
    value, else (nothing priced) its quantity."""
    for field in ("bonus", "value", "quantity") if mode == "per_line" else ("value", "quantity"):
        weights = {k: getattr(line, field) for k, line in lines.items()}
        if sum(weights.values(), ZERO) > 0:
            return weights
    return dict.fromkeys(lines, ZERO)


def _product(item: Mapping[str, Any]) -> str | None:
    for path in _PRODUCT:
        value: Any = item
        for key in path:
            value = value.get(key) if isinstance(value, Mapping) else None
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value)
    return None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None
