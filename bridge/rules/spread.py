"""Kopeck arithmetic of a write-off: each line's cap, and a total spread over lines exactly.

A line may pay in points at most ``max_share`` of its amount, and must keep at least
``min_unit_price`` per unit: its cap is the lesser, floored to kopecks (a cap rounded up
would let a line pass its share by a kopeck). A write-off is spread over the lines in
proportion to their caps by the largest remainder method: every line first gets the
floor of its exact share in kopecks, then the kopecks left go one each to the lines with
the largest remainders, ties to the earlier line. The lines then sum to the total exactly,
none passes its cap (its exact share is at most its cap whenever the total is at most the
caps' sum), and the same cart always gets the same split.

Proportional to caps rather than amounts: asked for the largest write-off, every line gets
exactly its cap (the seed's "20 % on every line"), and an excluded line (cap 0) gets
nothing without a special case.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal

CENT = Decimal("0.01")


class SpendTooLarge(ValueError):
    """More points asked than the lines may take together."""

    def __init__(self, requested: Decimal, largest: Decimal) -> None:
        super().__init__(f"{requested} is more than this cart can take in points ({largest})")
        self.requested = requested
        self.largest = largest


def kopecks(amount: Decimal) -> int:
    """A money amount of at most 2 places as whole kopecks."""
    return int(amount.scaleb(2).to_integral_value(ROUND_FLOOR))


def roubles(count: int) -> Decimal:
    """Whole kopecks as a money amount with 2 places."""
    return Decimal(count).scaleb(-2).quantize(CENT)


def line_cap(
    amount: Decimal, quantity: Decimal, max_share: Decimal, min_unit_price: Decimal
) -> Decimal:
    """The most points a line may take: min(share × amount, amount − least price ×
    quantity), floored to kopecks, never below 0."""
    cap = min(max_share * amount, amount - min_unit_price * quantity).quantize(CENT, ROUND_FLOOR)
    return cap if cap > 0 else Decimal("0.00")  # never "-0.00"


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (all ≥ 0); the parts sum to ``total``.

    With ``total`` ≤ ``sum(weights)`` no part exceeds its weight. Zero weights get zero.
    """
    whole = sum(weights)
    if total == 0 or whole == 0:
        if total:
            raise ValueError("cannot spread a total over weights that sum to 0")
        return [0] * len(weights)
    parts = []
    remainders = []
    for index, weight in enumerate(weights):
        part, remainder = divmod(total * weight, whole)
        parts.append(part)
        remainders.append((-remainder, index))
    left = total - sum(parts)
    # left < the count of non-zero remainders (they sum to left × whole, each < whole), so
    # no line with an exact share, nor one at its weight, gets one more.
    for _, index in sorted(remainders)[:left]:
        parts[index] += 1
    return parts


def spread_spend(caps: Sequence[Decimal], requested: Decimal | None) -> list[Decimal]:
    """Each line's part of ``requested`` (None: the largest possible), in line order.

    Raises :class:`SpendTooLarge` when ``requested`` passes the caps' sum.
    """
    weights = [kopecks(cap) for cap in caps]
    largest = sum(weights)
    total = largest if requested is None else kopecks(requested)
    if total > largest:
        raise SpendTooLarge(requested or Decimal(0), roubles(largest))
    return [roubles(part) for part in largest_remainder(total, weights)]


def cap_total(parts: Sequence[Decimal], cap: Decimal | None) -> list[Decimal]:
    """``parts`` cut down to sum to ``cap`` by largest remainder when they pass it."""
    if cap is None or sum(parts, Decimal(0)) <= cap:
        return list(parts)
    shares = largest_remainder(kopecks(cap), [kopecks(part) for part in parts])
    return [roubles(share) for share in shares]
