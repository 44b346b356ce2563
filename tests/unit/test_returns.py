"""The arithmetic of returns after a commit (PRODUCT 3.4): shares, rounding, the cap."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.bonus.returns import (
    Basket,
    Line,
    NotComparable,
    clamp,
    dump_basket,
    load_basket,
    read_lines,
    refund_target,
    reverse_operation_id,
    who_reverses,
)
from bridge.errors import BridgeError

D = Decimal


def onec_order(*lines: tuple[str, int, str, str]) -> dict[str, Any]:
    """A 1C ``GetOrder`` state: the document's items with sku, quantity, price, bonus."""
    items = [
        {"sku": sku, "quantity": qty, "price": price, "bonuses_charged": bonus}
        for sku, qty, price, bonus in lines
    ]
    return {"id": "x", "status": "Выполнен", "document": {"items": items}}


# A: 3 × 300, B: 1 × 1400, C: 1 × 600 = 2900; the 300 points were charged 90 / 140 / 70.
AT_COMMIT = onec_order(("A", 3, "300", "90"), ("B", 1, "1400", "140"), ("C", 1, "600", "70"))


def basket(order: dict[str, Any], statuses: tuple[str, ...] = ()) -> Basket:
    found = read_lines(order, statuses)
    assert found is not None
    return found


@pytest.mark.parametrize(
    ("now", "mode", "expected"),
    [
        # C (600 of 2900) comes back: 300 × 600 / 2900 = 62.0689… by value, its own 70 by line
        ((("A", 3, "300", "90"), ("B", 1, "1400", "140")), "basket", "62.07"),
        ((("A", 3, "300", "90"), ("B", 1, "1400", "140")), "per_line", "70.00"),
        # one of three A: 300 × 300 / 2900 = 31.034…; a third of A's 90
        (
            (("A", 2, "300", "90"), ("B", 1, "1400", "140"), ("C", 1, "600", "70")),
            "basket",
            "31.03",
        ),
        (
            (("A", 2, "300", "90"), ("B", 1, "1400", "140"), ("C", 1, "600", "70")),
            "per_line",
            "30.00",
        ),
        # nothing left: exactly what was committed, in either mode
        ((), "basket", "300.00"),
        ((), "per_line", "300.00"),
        # more than at commit, and a line added: nothing comes back
        (
            (("A", 4, "300", "0"), ("B", 1, "1400", "0"), ("C", 1, "600", "0"), ("D", 1, "5", "0")),
            "basket",
            "0.00",
        ),
    ],
)
def test_refund_by_basket_ratio_and_per_line(
    now: tuple[tuple[str, int, str, str], ...], mode: Any, expected: str
) -> None:
    found = refund_target(D("300.00"), basket(AT_COMMIT), basket(onec_order(*now)), mode)
    assert found == D(expected)


def test_per_line_without_bonus_amounts_is_the_line_share_of_the_basket() -> None:
    plain = onec_order(("A", 3, "300", "0"), ("B", 1, "1400", "0"), ("C", 1, "600", "0"))
    now = basket(onec_order(("A", 3, "300", "0"), ("B", 1, "1400", "0")))
    assert refund_target(D(300), basket(plain), now, "per_line") == D("62.07")
    assert refund_target(D(300), basket(plain), now, "basket") == D("62.07")


def test_per_line_bonus_amounts_are_scaled_to_what_was_committed() -> None:
    # The order says 500 were charged, the bridge committed 300: never more than 300 back.
    said = onec_order(("A", 1, "100", "250"), ("B", 1, "100", "250"))
    now = basket(onec_order(("A", 1, "100", "250")))
    assert refund_target(D(300), basket(said), now, "per_line") == D("150.00")
    assert refund_target(D(300), basket(said), {}, "per_line") == D("300.00")


def test_cumulative_rounding_gives_back_exactly_the_committed_amount() -> None:
    at_commit = basket(onec_order(("A", 1, "100", "0"), ("B", 1, "100", "0"), ("C", 1, "100", "0")))
    steps = [("A", "B", "C"), ("B", "C"), ("C",), ()]
    given_back = D(0)
    deltas = []
    for left in steps[1:]:
        now = basket(onec_order(*[(k, 1, "100", "0") for k in left]))
        target = refund_target(D(100), at_commit, now, "basket")
        deltas.append(target - given_back)
        given_back = target
    assert deltas == [D("33.33"), D("33.34"), D("33.33")]
    assert given_back == D(100)


def test_a_copy_without_the_baskets_products_is_not_compared() -> None:
    elsewhere = read_lines({"items": [{"offer": {"externalId": "OTHER"}, "quantity": 1}]})
    assert elsewhere is not None
    with pytest.raises(NotComparable, match="share no product"):
        refund_target(D(300), basket(AT_COMMIT), elsewhere, "basket")


def test_retailcrm_items_are_read_by_offer_with_their_bonus_and_status() -> None:
    order = {
        "status": "complete",
        "items": [
            {
                "id": 11,
                "offer": {"externalId": "SKU-1"},
                "quantity": 2,
                "initialPrice": 1500,
                "bonusesChargeTotal": 120,
                "status": "new",
            },
            {
                "id": 12,
                "offer": {"externalId": "SKU-2"},
                "quantity": 1,
                "initialPrice": 990,
                "bonusesChargeTotal": 0,
                "status": "returned",
            },
            {"id": 13, "offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 1000},
        ],
    }
    assert read_lines(order, ("returned",)) == {
        "SKU-1": Line(D(3), D(4000), D(120)),  # both SKU-1 lines, added up
        "SKU-2": Line(D(0), D(0), D(0)),  # marked returned: nothing of it is left
    }
    assert basket(order)["SKU-2"] == Line(D(1), D(990), D(0))  # counted without the statuses


@pytest.mark.parametrize(
    "order",
    [
        {"status": "new"},  # no lines at all
        {"items": [{"sku": "A", "quantity": "two"}]},  # a quantity that is no number
        {"items": [{"sku": "A"}]},
        {"items": ["A"]},
        {"document": {"items": [{"sku": "A", "quantity": -1}]}},
    ],
)
def test_an_order_without_readable_lines_judges_no_return(order: dict[str, Any]) -> None:
    assert read_lines(order) is None


def test_the_basket_survives_the_store() -> None:
    kept = basket(AT_COMMIT)
    assert load_basket(dump_basket(kept, "onec")) == ("onec", kept)


def test_reverse_operation_ids_name_the_total_given_back() -> None:
    assert reverse_operation_id("rsv_1", D("62.1")) == "rsv_1:reverse:62.10"
    assert reverse_operation_id("rsv_1", D("62.10")) == reverse_operation_id("rsv_1", D("62.1"))
    assert len(reverse_operation_id("rsv_" + "f" * 20, D("99999999.99"))) <= 64  # CONTRACT.md


def test_clamp_rounds_half_up_and_never_above_committed() -> None:
    assert clamp(D("62.065"), D(300)) == D("62.07")
    assert clamp(D("300.004"), D(300)) == D("300.00")
    assert clamp(D("-1"), D(300)) == D("0.00")


class _ReversesItself:
    """RetailCRM-like: cancels an order's bonus operations itself (its connector says so)."""

    reverses_returns = True


class _SendsItsOwnCodes:
    async def confirm_code(self, verification_id: str, code: str) -> None:
        """Sends its own SMS codes, which says nothing about returns."""


def test_who_reverses_follows_the_master_unless_told() -> None:
    assert who_reverses("auto", "onec", object()) == "bridge"
    assert who_reverses("auto", "onec", _SendsItsOwnCodes()) == "bridge"
    assert who_reverses("auto", "retailcrm", _ReversesItself()) == "master"
    assert who_reverses("master", "onec", object()) == "master"
    with pytest.raises(BridgeError, match=r"bonus\.returns\.reversed_by is bridge"):
        who_reverses("bridge", "retailcrm", _ReversesItself())


_lines = st.lists(
    st.tuples(
        st.integers(1, 5),
        st.decimals("0.01", "5000", places=2),
        st.decimals("0", "300", places=2),
    ),
    min_size=1,
    max_size=6,
)


@given(
    _lines,
    st.decimals("0.01", "10000", places=2),
    st.sampled_from(["basket", "per_line"]),
)
def test_returns_never_give_back_more_than_committed_and_only_grow(
    lines: list[tuple[int, Decimal, Decimal]], committed: Decimal, mode: Any
) -> None:
    at_commit = basket(
        onec_order(
            *[(f"P{i}", q, str(price), str(bonus)) for i, (q, price, bonus) in enumerate(lines)]
        )
    )
    given_back = D(0)
    # Give the lines back one unit at a time, in the order drawn: the total never shrinks,
    # never passes what was committed, and all of it comes back with the last unit.
    left = {f"P{i}": qty for i, (qty, _price, _bonus) in enumerate(lines)}
    for key in list(left):
        while left[key]:
            left[key] -= 1
            now = basket(
                onec_order(*[(k, q, str(lines[int(k[1:])][1]), "0") for k, q in left.items() if q])
            )
            target = refund_target(committed, at_commit, now, mode)
            assert given_back <= target <= committed
            assert target == target.quantize(D("0.01"))
            given_back = target
    assert given_back == committed
