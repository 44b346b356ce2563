"""The 1C emulator's in-memory infobase: ledger rules, idempotency, orders and change feed."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from connectors.onec.emulator.ledger import (
    ERROR_CODES,
    InfobaseOperation,
    LedgerError,
    OnecLedger,
    normalize_phone,
)
from connectors.onec.emulator.orders import FeedChange, SavedOrder

IVAN_PHONE = "+79000000001"
IVAN_CARD = "2000000000015"
T0 = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
D = Decimal


class Clock:
    """A settable clock, the one thing tests fake."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(clock: Clock) -> OnecLedger:
    ledger = OnecLedger(clock=clock)
    ledger.seed_sandbox()
    return ledger


@pytest.fixture
def ivan(ledger: OnecLedger) -> str:
    return ledger.find_customer(phone=IVAN_PHONE).customer_id


@pytest.fixture
def maria(ledger: OnecLedger) -> str:
    return ledger.find_customer(phone="+79000000002").customer_id


def fails(code: str, call: Callable[[], object]) -> LedgerError:
    with pytest.raises(LedgerError) as caught:
        call()
    assert caught.value.code == code, caught.value
    return caught.value


def points(ledger: OnecLedger, customer_id: str) -> tuple[Decimal, Decimal, Decimal]:
    b = ledger.balance(customer_id)
    return b.balance, b.reserved, b.available


# -- sandbox and customer directory ---------------------------------------------------------


def test_sandbox_has_the_required_customer_and_no_changes(ledger: OnecLedger) -> None:
    ivan = ledger.find_customer(phone=IVAN_PHONE)
    assert (ivan.phone, ivan.card, ivan.name) == (IVAN_PHONE, IVAN_CARD, "Иван Петров")
    assert ledger.balance(ivan.customer_id).balance == D("1000.00")
    assert ledger.find_customer(card=IVAN_CARD) == ivan
    assert ledger.find_customer(customer_id=ivan.customer_id) == ivan
    assert ledger.find_customer(phone="+79000000003").card is None
    assert ledger.get_changes(0).items == ()


@pytest.mark.parametrize(
    "spelling",
    [
        "+79000000001",
        "+7 900 000-00-01",
        "89000000001",
        "8 (900) 000-00-01",
        "79000000001",
        "9000000001",
        " +7(900)0000001 ",
    ],
)
def test_find_customer_reads_every_spelling_of_a_russian_phone(
    ledger: OnecLedger, spelling: str
) -> None:
    assert ledger.find_customer(phone=spelling).phone == IVAN_PHONE


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("8 900 000 00 01", "+79000000001"),
        ("+81 3 1234 5678", "+81312345678"),  # a "+" country code is trusted, 8… kept
        ("+44 20 7946 0958", "+442079460958"),
        ("", None),
        ("+", None),
        ("12345", None),
        ("8900000000", None),  # 10 digits starting with 8
        ("+7900000000a", None),
        ("7+9000000001", None),
        ("+7 900 000-00-01 доб. 5", None),
    ],
)
def test_normalize_phone(raw: str, e164: str | None) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    "keys",
    [
        {},
        {"phone": IVAN_PHONE, "card": IVAN_CARD},
        {"phone": "", "card": "  "},
        {"phone": IVAN_PHONE, "customer_id": "x"},
    ],
)
def test_find_customer_needs_exactly_one_key(ledger: OnecLedger, keys: dict[str, str]) -> None:
    error = fails("invalid_request", lambda: ledger.find_customer(**keys))
    assert "phone" in error.message


def test_find_customer_treats_a_blank_key_as_absent(ledger: OnecLedger) -> None:
    assert ledger.find_customer(phone=IVAN_PHONE, card="").phone == IVAN_PHONE


@pytest.mark.parametrize(
    "keys", [{"phone": "+79009999999"}, {"card": "2000000000999"}, {"customer_id": "nobody"}]
)
def test_find_customer_unknown(ledger: OnecLedger, keys: dict[str, str]) -> None:
    fails("unknown_customer", lambda: ledger.find_customer(**keys))


def test_find_customer_rejects_a_malformed_phone(ledger: OnecLedger) -> None:
    assert "phone" in fails("invalid_request", lambda: ledger.find_customer(phone="abc")).message


# -- balance ----------------------------------------------------------------------------------


def test_balance_reports_reserved_available_level_and_clock(
    ledger: OnecLedger, ivan: str, clock: Clock
) -> None:
    ledger.reserve("r1", ivan, "300", "order-1")
    clock.now = T0 + timedelta(hours=1)
    b = ledger.balance(ivan)
    assert (b.balance, b.reserved, b.available) == (D("1000.00"), D("300.00"), D("700.00"))
    assert (b.max_redeemable, b.level, b.as_of) == (None, "Базовый", T0 + timedelta(hours=1))


@pytest.mark.parametrize(
    ("cart_total", "expected"),
    [("1000", "500.00"), ("5000.00", "700.00"), ("0", "0.00"), ("0.03", "0.01")],
)
def test_max_redeemable_is_half_the_cart_at_most_available(
    ledger: OnecLedger, ivan: str, cart_total: str, expected: str
) -> None:
    ledger.reserve("r1", ivan, "300", "order-1")
    assert ledger.balance(ivan, cart_total=cart_total).max_redeemable == D(expected)


def test_max_share_is_configurable(clock: Clock) -> None:
    ledger = OnecLedger(clock=clock, max_share="0.3")
    ledger.seed_sandbox()
    ivan = ledger.find_customer(card=IVAN_CARD).customer_id
    assert ledger.balance(ivan, D("1000")).max_redeemable == D("300.00")


def test_a_naive_clock_is_refused(ivan: str, ledger: OnecLedger, clock: Clock) -> None:
    clock.now = datetime(2026, 11, 22, 13, 0)  # naive on purpose
    with pytest.raises(ValueError, match="aware"):
        ledger.balance(ivan)


@pytest.mark.parametrize("share", ["0", "1.01", "-0.5"])
def test_max_share_out_of_range_is_refused(share: str) -> None:
    with pytest.raises(ValueError, match="max_share"):
        OnecLedger(max_share=share)


# -- amounts and other parameters -----------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "held"),
    [("150", "150.00"), ("150.5", "150.50"), (D("1.500"), "1.50"), (7, "7.00"), (" 2.25 ", "2.25")],
)
def test_amounts_are_quantised_to_cents(
    ledger: OnecLedger, ivan: str, amount: object, held: str
) -> None:
    result = ledger.reserve("r1", ivan, amount, "order-1")  # type: ignore[arg-type]
    assert result.amount == D(held)
    assert str(result.amount) == held


@pytest.mark.parametrize(
    "amount", [1.5, "1.005", "-1", "0", "0.00", "abc", "NaN", "Infinity", "1e400", True, None, ""]
)
def test_malformed_amounts_are_invalid_requests_naming_amount(
    ledger: OnecLedger, ivan: str, amount: object
) -> None:
    error = fails("invalid_request", lambda: ledger.reserve("r1", ivan, amount, "o"))  # type: ignore[arg-type]
    assert error.message.startswith("amount:")
    assert ledger.snapshot()["operations"] == 0


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda lg, c: lg.reserve("x" * 65, c, "1", "o"), "operation_id"),
        (lambda lg, c: lg.reserve("", c, "1", "o"), "operation_id"),
        (lambda lg, c: lg.reserve("r", None, "1", "o"), "customer_id"),
        (lambda lg, c: lg.reserve("r", c, "1", ""), "order_id"),
        (lambda lg, c: lg.reserve("r", c, "1", "o", "tomorrow"), "expires_at"),
        (lambda lg, c: lg.reserve("r", c, "1", "o", "2026-11-23T10:00:00"), "expires_at"),
        (lambda lg, c: lg.commit("c", "", "1"), "reservation_id"),
        (lambda lg, c: lg.reverse("v", None, "1"), "original_operation_id"),
        (lambda lg, c: lg.balance(c, cart_total="-1"), "cart_total"),
        (lambda lg, c: lg.save_order("s", "", "{}"), "external_id"),
        (lambda lg, c: lg.save_order("s", "e", "[1, 2]"), "order"),
        (lambda lg, c: lg.save_order("s", "e", "{not json"), "order"),
        (lambda lg, c: lg.save_order("s", "e", '{"total": NaN}'), "order"),
        (lambda lg, c: lg.save_order("s", "e", {"total": 1}), "order"),
        (lambda lg, c: lg.save_order("s", "e", None), "order"),
        (lambda lg, c: lg.get_changes(-1), "since_message_no"),
        (lambda lg, c: lg.get_changes(0, 0), "limit"),
        (lambda lg, c: lg.get_changes(0, 1001), "limit"),
        (lambda lg, c: lg.get_changes(0, True), "limit"),
        (lambda lg, c: lg.push_change("stock", "1"), "entity"),
        (lambda lg, c: lg.push_change("receipt", "1", "posted"), "action"),
        (lambda lg, c: lg.push_change("receipt", ""), "id"),
    ],
)
def test_invalid_request_names_the_parameter(
    ledger: OnecLedger, ivan: str, call: Callable[[OnecLedger, str], object], field: str
) -> None:
    error = fails("invalid_request", lambda: call(ledger, ivan))
    assert error.message.startswith(f"{field}:")


def test_operation_id_of_64_characters_is_accepted(ledger: OnecLedger, ivan: str) -> None:
    assert ledger.accrue("x" * 64, ivan, "1", "o").status == "accrued"


def test_expires_at_is_normalised_to_utc(ledger: OnecLedger, ivan: str) -> None:
    first = ledger.reserve("r1", ivan, "10", "o", "2026-11-23T13:00:00+03:00")
    again = ledger.reserve("r1", ivan, "10", "o", datetime(2026, 11, 23, 10, tzinfo=UTC))
    assert again is first


# -- errors -----------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, Callable[[OnecLedger, str], object]]] = [
    ("unknown_customer", lambda lg, c: lg.balance("nobody")),
    ("unknown_customer", lambda lg, c: lg.reserve("r9", "nobody", "1", "o")),
    ("unknown_customer", lambda lg, c: lg.accrue("a9", "nobody", "1", "o")),
    ("insufficient_balance", lambda lg, c: lg.reserve("r9", c, "700.01", "o")),
    ("reservation_not_found", lambda lg, c: lg.commit("c9", "nope")),
    ("reservation_not_found", lambda lg, c: lg.release("l9", "nope")),
    ("reservation_closed", lambda lg, c: lg.release("l9", "closed")),
    ("reservation_closed", lambda lg, c: lg.commit("c9", "closed")),
    ("amount_exceeds_reservation", lambda lg, c: lg.commit("c9", "open", "300.01")),
    ("amount_exceeds_original", lambda lg, c: lg.reverse("v9", "acc", "50.01")),
    ("operation_conflict", lambda lg, c: lg.accrue("acc", c, "50.01", "o")),
    ("invalid_request", lambda lg, c: lg.find_customer()),
    ("unknown_order", lambda lg, c: lg.get_order("nope")),
    ("unknown_order", lambda lg, c: lg.change_order("nope", status="closed")),
    ("unknown_customer", lambda lg, c: lg.get_customer("nope")),
    ("invalid_request", lambda lg, c: lg.save_customer("s9", "crm-9", '{"name": "no phone"}')),
    ("unknown_card", lambda lg, c: lg.get_card("0000000000000")),
    ("card_taken", lambda lg, c: lg.attach_card("t9", "2000000000015", "+79000000005")),
    ("card_blocked", lambda lg, c: lg.move_points("m9", "2000000000060", "2000000000077", "1")),
]


@pytest.mark.parametrize(("code", "call"), ERROR_CASES)
def test_each_error_code(
    ledger: OnecLedger, ivan: str, code: str, call: Callable[[OnecLedger, str], object]
) -> None:
    ledger.reserve("open", ivan, "300", "o")  # available 700 + 50 accrued - 50 held below
    ledger.reserve("closed", ivan, "50", "o")
    ledger.release("closed-release", "closed")
    ledger.accrue("acc", ivan, "50", "o")
    ledger.reserve("eat", ivan, "50", "o")
    ledger.set_card_status("blocked", "2000000000077", "blocked")  # the ownerless sandbox card
    before = ledger.snapshot()
    error = fails(code, lambda: call(ledger, ivan))
    assert str(error) == f"{code}: {error.message}"
    assert ledger.snapshot() == before


def test_the_table_covers_every_contract_code() -> None:
    assert {code for code, _ in ERROR_CASES} == ERROR_CODES


def test_ledger_error_refuses_unknown_codes() -> None:
    with pytest.raises(ValueError, match="timeout"):
        LedgerError("timeout", "x")


# -- idempotency ------------------------------------------------------------------------------

Call = Callable[[OnecLedger, str], object]
# (what runs first, the repeated call, the same call with one parameter changed)
MUTATIONS: dict[str, tuple[Call, Call, Call]] = {
    "reserve": (
        lambda lg, c: None,
        lambda lg, c: lg.reserve("op", c, "100", "o-1", "2026-11-23T10:00:00Z"),
        lambda lg, c: lg.reserve("op", c, "100", "o-2", "2026-11-23T10:00:00Z"),
    ),
    "commit": (
        lambda lg, c: lg.reserve("res", c, "100", "o-1"),
        lambda lg, c: lg.commit("op", "res", "60"),
        lambda lg, c: lg.commit("op", "res"),
    ),
    "release": (
        lambda lg, c: lg.reserve("res", c, "100", "o-1"),
        lambda lg, c: lg.release("op", "res"),
        lambda lg, c: lg.release("op", "other"),
    ),
    "accrue": (
        lambda lg, c: None,
        lambda lg, c: lg.accrue("op", c, "100", "o-1"),
        lambda lg, c: lg.accrue("op", c, "100.01", "o-1"),
    ),
    "reverse": (
        lambda lg, c: lg.accrue("acc", c, "100", "o-1"),
        lambda lg, c: lg.reverse("op", "acc", "30"),
        lambda lg, c: lg.reverse("op", "acc", "31"),
    ),
    "save_order": (
        lambda lg, c: None,
        lambda lg, c: lg.save_order("op", "crm-1", '{"total": "10.00", "items": []}'),
        lambda lg, c: lg.save_order("op", "crm-1", '{"total": "11.00", "items": []}'),
    ),
    "save_customer": (
        lambda lg, c: None,
        lambda lg, c: lg.save_customer("op", "crm-c1", '{"phone": "+79005550000", "name": "А"}'),
        lambda lg, c: lg.save_customer("op", "crm-c1", '{"phone": "+79005550000", "name": "Б"}'),
    ),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_repeat_returns_the_remembered_result_and_changes_nothing(
    ledger: OnecLedger, ivan: str, name: str
) -> None:
    setup, call, _ = MUTATIONS[name]
    setup(ledger, ivan)
    first = call(ledger, ivan)
    after_first = ledger.snapshot()
    assert call(ledger, ivan) == first
    assert call(ledger, ivan) == first
    assert ledger.snapshot() == after_first


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_changed_repeat_is_an_operation_conflict(
    ledger: OnecLedger, ivan: str, name: str
) -> None:
    setup, call, changed = MUTATIONS[name]
    setup(ledger, ivan)
    call(ledger, ivan)
    before = ledger.snapshot()
    fails("operation_conflict", lambda: changed(ledger, ivan))
    assert ledger.snapshot() == before


@pytest.mark.parametrize("name", [n for n in MUTATIONS if n != "accrue"])
def test_an_operation_id_is_one_namespace_across_operations(
    ledger: OnecLedger, ivan: str, name: str
) -> None:
    setup, call, _ = MUTATIONS[name]
    setup(ledger, ivan)
    call(ledger, ivan)
    fails("operation_conflict", lambda: ledger.accrue("op", ivan, "100", "o-1"))


def test_a_repeat_sees_the_state_of_its_first_call(ledger: OnecLedger, ivan: str) -> None:
    reserved = ledger.reserve("r1", ivan, "100", "o")
    ledger.commit("c1", "r1")
    assert ledger.reserve("r1", ivan, "100", "o") == reserved
    assert reserved.status == "reserved"
    assert reserved.available == D("900.00")


def test_a_repeated_commit_is_not_reservation_closed(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "100", "o")
    first = ledger.commit("c1", "r1")
    assert ledger.commit("c1", "r1") == first
    fails("reservation_closed", lambda: ledger.commit("c2", "r1"))


def test_failures_are_not_remembered(ledger: OnecLedger, ivan: str) -> None:
    fails("insufficient_balance", lambda: ledger.reserve("r1", ivan, "1500", "o"))
    ledger.accrue("a1", ivan, "500", "o")
    assert ledger.reserve("r1", ivan, "1500", "o").status == "reserved"


def test_failed_first_call_does_not_fix_the_parameters(ledger: OnecLedger, ivan: str) -> None:
    fails("insufficient_balance", lambda: ledger.reserve("r1", ivan, "1500", "o"))
    assert ledger.reserve("r1", ivan, "15", "o").amount == D("15.00")


def test_same_parameters_in_another_spelling_are_a_repeat(ledger: OnecLedger, ivan: str) -> None:
    first = ledger.accrue("a1", ivan, "100", "o")
    assert ledger.accrue("a1", ivan, D("100.00"), "o") is first
    saved = ledger.save_order("s1", "crm-1", '{"a": 1, "b": [2.50]}')
    assert ledger.save_order("s1", "crm-1", '{ "b": [2.5], "a": 1 }') is saved


def test_commit_without_amount_and_with_the_full_amount_are_different_requests(
    ledger: OnecLedger, ivan: str
) -> None:
    ledger.reserve("r1", ivan, "100", "o")
    ledger.commit("c1", "r1")
    fails("operation_conflict", lambda: ledger.commit("c1", "r1", "100"))


# -- ledger rules -----------------------------------------------------------------------------


def test_reserve_holds_points_out_of_available(ledger: OnecLedger, ivan: str) -> None:
    result = ledger.reserve("r1", ivan, "1000", "o")
    assert result == InfobaseOperation(
        "r1", "reserve", "reserved", "r1", D("1000.00"), D("1000.00"), D("0.00")
    )
    fails("insufficient_balance", lambda: ledger.reserve("r2", ivan, "0.01", "o"))


def test_full_commit_writes_off_the_reservation(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    result = ledger.commit("c1", "r1")
    assert (result.kind, result.status, result.reservation_id) == ("commit", "committed", "r1")
    assert (result.amount, result.balance, result.available) == (D("300"), D("700"), D("700"))
    assert points(ledger, ivan) == (D("700.00"), D("0.00"), D("700.00"))


def test_partial_commit_releases_the_rest(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    ledger.reserve("r2", ivan, "100", "o")
    result = ledger.commit("c1", "r1", "120.50")
    assert result.amount == D("120.50")
    assert points(ledger, ivan) == (D("879.50"), D("100.00"), D("779.50"))
    assert ledger.snapshot()["open"] == {"r2": D("100.00")}
    fails("reservation_closed", lambda: ledger.commit("c2", "r1", "1"))


def test_commit_over_the_reservation_keeps_it_open(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    fails("amount_exceeds_reservation", lambda: ledger.commit("c1", "r1", "300.01"))
    assert ledger.commit("c1", "r1", "300").amount == D("300.00")


def test_release_gives_available_back_without_a_write_off(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    result = ledger.release("l1", "r1")
    assert (result.kind, result.status, result.amount) == ("release", "released", D("300.00"))
    assert points(ledger, ivan) == (D("1000.00"), D("0.00"), D("1000.00"))
    fails("reservation_closed", lambda: ledger.release("l2", "r1"))
    fails("reservation_closed", lambda: ledger.commit("c1", "r1"))


def test_commit_id_is_not_a_reservation(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    ledger.commit("c1", "r1")
    fails("reservation_not_found", lambda: ledger.release("l1", "c1"))


def test_accrue_adds_points(ledger: OnecLedger, ivan: str) -> None:
    result = ledger.accrue("a1", ivan, "55.55", "o")
    assert (result.kind, result.status, result.reservation_id) == ("accrue", "accrued", None)
    assert points(ledger, ivan) == (D("1055.55"), D("0.00"), D("1055.55"))


def test_reverse_of_an_accrue_removes_points_up_to_what_is_left(
    ledger: OnecLedger, ivan: str
) -> None:
    ledger.accrue("a1", ivan, "100", "o")
    assert ledger.reverse("v1", "a1", "60").balance == D("1040.00")
    fails("amount_exceeds_original", lambda: ledger.reverse("v2", "a1", "40.01"))
    result = ledger.reverse("v2", "a1", "40")
    assert (result.kind, result.status, result.balance) == ("reverse", "reversed", D("1000.00"))
    assert ledger.snapshot()["left_to_reverse"] == {"a1": D("0.00")}
    fails("amount_exceeds_original", lambda: ledger.reverse("v3", "a1", "0.01"))


def test_reverse_of_a_commit_gives_points_back(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    ledger.commit("c1", "r1", "200")
    ledger.reverse("v1", "c1", "150")
    assert points(ledger, ivan) == (D("950.00"), D("0.00"), D("950.00"))
    fails("amount_exceeds_original", lambda: ledger.reverse("v2", "c1", "50.01"))
    assert ledger.reverse("v2", "c1", "50").balance == D("1000.00")


@pytest.mark.parametrize("original", ["r1", "l1", "v1", "s1", "never"])
def test_only_accrue_and_commit_can_be_reversed(
    ledger: OnecLedger, ivan: str, original: str
) -> None:
    ledger.reserve("r1", ivan, "300", "o")
    ledger.release("l1", "r1")
    ledger.accrue("a1", ivan, "10", "o")
    ledger.reverse("v1", "a1", "1")
    ledger.save_order("s1", "crm-1", "{}")
    error = fails("invalid_request", lambda: ledger.reverse("v9", original, "1"))
    assert error.message.startswith("original_operation_id:")


def test_reversing_spent_accrued_points_leaves_a_debt(ledger: OnecLedger, maria: str) -> None:
    ledger.accrue("a1", maria, "100", "o")
    ledger.reserve("r1", maria, "350", "o")
    ledger.commit("c1", "r1")
    assert ledger.reverse("v1", "a1", "100").balance == D("-100.00")
    balance = ledger.balance(maria, cart_total="1000")
    assert (balance.available, balance.max_redeemable) == (D("-100.00"), D("0.00"))
    fails("insufficient_balance", lambda: ledger.reserve("r2", maria, "0.01", "o"))


# -- orders -----------------------------------------------------------------------------------


def test_save_order_upserts_by_external_id_with_1c_numbers(ledger: OnecLedger) -> None:
    assert ledger.save_order("s1", "crm-1", '{"total": "10.00"}') == SavedOrder(
        "crm-1", "00-000001", created=True
    )
    assert ledger.save_order("s2", "crm-2", "{}") == SavedOrder("crm-2", "00-000002", True)
    assert ledger.save_order("s3", "crm-1", '{"total": 12.5}') == SavedOrder(
        "crm-1", "00-000001", created=False
    )
    assert ledger.snapshot()["orders"] == {
        "crm-1": ("00-000001", 2, {"total": D("12.5")}),
        "crm-2": ("00-000002", 1, {}),
    }
    assert [(c.entity, c.id, c.action, c.version) for c in ledger.get_changes(0).items] == [
        ("order", "crm-1", "created", "1"),
        ("order", "crm-2", "created", "1"),
        ("order", "crm-1", "changed", "2"),
    ]


def test_the_bridges_saves_are_marked_as_its_own_changes(ledger: OnecLedger) -> None:
    ledger.save_order("s1", "crm-1", "{}")
    cid = ledger.save_customer("s2", "crm-c1", '{"phone": "+79005550000"}').customer_id
    assert [(c.entity, c.id, c.origin) for c in ledger.get_changes(0).items] == [
        ("order", "crm-1", "bridge"),
        ("customer", cid, "bridge"),
    ]
    ledger.change_order("crm-1", status="shipped")
    ledger.change_customer(cid, name="Анна")
    assert [(c.entity, c.id, c.action, c.origin) for c in ledger.get_changes(2).items] == [
        ("order", "crm-1", "changed", None),
        ("customer", cid, "changed", None),
    ]


def test_get_order_answers_the_document_with_1c_fields(ledger: OnecLedger, clock: Clock) -> None:
    ledger.save_order("s1", "crm-1", '{"total": 10.50, "status": "paid", "n": 3}')
    read = ledger.get_order("crm-1")
    assert (read.external_id, read.number, read.status, read.version) == (
        "crm-1",
        "00-000001",
        "paid",
        "1",
    )
    assert read.date == clock.now
    # Numbers come back as numbers, as 1C's ЗаписатьJSON writes an Число.
    assert json.loads(read.order) == {"total": 10.5, "status": "paid", "n": 3}
    assert ledger.get_order(read.id) == read  # 1C's own id finds it too


def test_status_follows_the_document_and_changes_in_1c(ledger: OnecLedger) -> None:
    ledger.save_order("s1", "crm-1", "{}")
    assert ledger.get_order("crm-1").status == "new"  # Decision: the default
    ledger.change_order("crm-1", status="shipped")
    read = ledger.get_order("crm-1")
    # A document without a status keeps that shape; Status says what 1C holds.
    assert (read.status, json.loads(read.order)) == ("shipped", {})
    ledger.save_order("s2", "crm-1", '{"total": "5.00"}')
    assert ledger.get_order("crm-1").status == "shipped"  # the bridge sent none: kept
    ledger.save_order("s3", "crm-1", '{"status": "paid"}')
    ledger.change_order("crm-1", status="closed", fields={"comment": "в 1С"})
    read = ledger.get_order("crm-1")
    assert (read.status, read.version) == ("closed", "5")
    assert json.loads(read.order) == {"status": "closed", "comment": "в 1С"}


def test_an_order_entered_in_1c_is_written_back_by_its_1c_id(ledger: OnecLedger) -> None:
    entered = ledger.enter_order({"total": "99.00"}, status="sold")
    assert (entered.external_id, entered.number, entered.status) == (None, "00-000001", "sold")
    saved = ledger.save_order("s1", entered.id, '{"total": "99.00", "status": "complete"}')
    assert (saved.number, saved.created) == ("00-000001", False)
    assert ledger.get_order(entered.id).status == "complete"
    assert [(c.id, c.action, c.origin) for c in ledger.get_changes(0).items] == [
        (entered.id, "created", None),
        (entered.id, "changed", "bridge"),
    ]


def test_save_customer_upserts_and_matches_by_phone(ledger: OnecLedger, ivan: str) -> None:
    new = ledger.save_customer("s1", "crm-c1", '{"phone": "89005550000", "card": "777"}')
    assert new.created is True
    assert ledger.find_customer(card="777").phone == "+79005550000"
    edited = ledger.save_customer("s2", "crm-c1", '{"phone": "+79005550000", "name": "Анна"}')
    assert (edited.customer_id, edited.created) == (new.customer_id, False)
    read = ledger.get_customer("crm-c1")
    assert (read.name, read.card, read.version) == ("Анна", "777", "2")  # card left out: kept
    # Another system's id for a phone on file is the same person, with one bonus account.
    linked = ledger.save_customer("s3", "bitrix-9", '{"phone": "+7 900 000-00-01"}')
    assert (linked.customer_id, linked.created) == (ivan, False)
    assert ledger.get_customer("bitrix-9").customer_id == ivan
    assert ledger.get_customer(ivan).external_id == "bitrix-9"
    cleared = ledger.save_customer("s4", "bitrix-9", '{"card": ""}')
    assert cleared.customer_id == ivan
    assert ledger.get_customer(ivan).card is None


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ('{"name": "без телефона"}', "customer.phone"),
        ('{"phone": "not a phone"}', "customer.phone"),
        ('{"phone": "+79005550000", "card": "2000000000022"}', "customer.card"),
        ('{"phone": "+79005550000", "name": 5}', "customer.name"),
        ("[1]", "customer"),
    ],
)
def test_save_customer_refusals_name_the_field(
    ledger: OnecLedger, document: str, field: str
) -> None:
    before = ledger.snapshot()
    error = fails("invalid_request", lambda: ledger.save_customer("s1", "crm-1", document))
    assert error.message.startswith(f"{field}:")
    assert ledger.snapshot() == before


def test_a_phone_of_another_customer_is_refused(ledger: OnecLedger, ivan: str) -> None:
    ledger.save_customer("s1", "crm-c1", '{"phone": "+79005550000"}')
    error = fails(
        "invalid_request", lambda: ledger.save_customer("s2", "crm-c1", '{"phone": "89000000002"}')
    )
    assert error.message == "customer.phone: already on file for another customer"
    fails("invalid_request", lambda: ledger.change_customer(ivan, phone="+79000000002"))


# -- change feed ------------------------------------------------------------------------------


def test_balance_changes_are_customer_changes_holds_are_not(ledger: OnecLedger, ivan: str) -> None:
    ledger.reserve("r1", ivan, "100", "o")
    ledger.release("l1", "r1")
    assert ledger.get_changes(0).items == ()
    ledger.reserve("r2", ivan, "100", "o")
    ledger.commit("c1", "r2")
    ledger.accrue("a1", ivan, "10", "o")
    ledger.reverse("v1", "a1", "10")
    assert ledger.get_changes(0).items == (
        FeedChange(1, "customer", ivan, "changed", "2"),
        FeedChange(2, "customer", ivan, "changed", "3"),
        FeedChange(3, "customer", ivan, "changed", "4"),
    )


def test_push_change_simulates_changes_made_in_1c(ledger: OnecLedger) -> None:
    assert ledger.push_change("receipt", "chk-1", "created") == FeedChange(
        1, "receipt", "chk-1", "created"
    )
    assert ledger.push_change("customer", "new-1", "created", "v1").message_no == 2
    assert ledger.get_changes(1).items == (FeedChange(2, "customer", "new-1", "created", "v1"),)


def test_changes_page_through_the_feed(ledger: OnecLedger) -> None:
    for n in range(1, 6):
        ledger.push_change("receipt", f"chk-{n}")
    pages = []
    since, more = 0, True
    while more:
        page = ledger.get_changes(since, limit=2)
        pages.append([c.message_no for c in page.items])
        since, more = page.last_message_no, page.more
    assert pages == [[1, 2], [3, 4], [5]]
    assert since == 5
    empty = ledger.get_changes(5, limit=2)
    assert (empty.items, empty.last_message_no, empty.more) == ((), 5, False)
    ahead = ledger.get_changes(9)
    assert (ahead.items, ahead.last_message_no, ahead.more) == ((), 9, False)


def test_changes_default_limit_is_100_and_max_1000(ledger: OnecLedger) -> None:
    for n in range(1, 1101):
        ledger.push_change("sale", str(n))
    page = ledger.get_changes(0)
    assert (len(page.items), page.last_message_no, page.more) == (100, 100, True)
    page = ledger.get_changes("100", limit=1000)  # type: ignore[arg-type]
    assert (len(page.items), page.last_message_no, page.more) == (1000, 1100, False)


def test_an_idempotent_repeat_adds_no_change(ledger: OnecLedger, ivan: str) -> None:
    ledger.accrue("a1", ivan, "10", "o")
    ledger.save_order("s1", "crm-1", "{}")
    ledger.accrue("a1", ivan, "10", "o")
    ledger.save_order("s1", "crm-1", "{}")
    assert ledger.get_changes(0).last_message_no == 2


# -- concurrency ------------------------------------------------------------------------------


def run_at_once(count: int, work: Callable[[int], object]) -> list[object]:
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def worker(n: int) -> None:
        barrier.wait()
        try:
            results[n] = work(n)
        except LedgerError as error:
            results[n] = error.code

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    return results


def test_concurrent_reserves_never_overdraw(ledger: OnecLedger, ivan: str) -> None:
    results = run_at_once(40, lambda n: ledger.reserve(f"r{n}", ivan, "100", f"o{n}"))
    held = [r for r in results if isinstance(r, InfobaseOperation)]
    assert len(held) == 10
    assert results.count("insufficient_balance") == 30
    assert points(ledger, ivan) == (D("1000.00"), D("1000.00"), D("0.00"))
    assert min(r.available for r in held) == D("0.00")


def test_concurrent_repeats_reserve_once(ledger: OnecLedger, ivan: str) -> None:
    results = run_at_once(20, lambda n: ledger.reserve("same", ivan, "100", "o"))
    assert all(r == results[0] for r in results)
    assert points(ledger, ivan) == (D("1000.00"), D("100.00"), D("900.00"))
