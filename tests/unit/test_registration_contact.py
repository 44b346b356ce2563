"""Where automatic registration finds an order's phone, name and channel, per source type."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.customers.registration import CONTACT_PATHS, Contact, operation_for, read_contact

RETAILCRM, ONEC = CONTACT_PATHS["retailcrm"], CONTACT_PATHS["onec"]
CASES: list[tuple[str, Any, dict[str, Any], Contact | None]] = [
    (
        "the contact copy on the order",
        RETAILCRM,
        {"phone": "8 (900) 555-01-01", "firstName": "Анна", "lastName": " Новикова ",
         "orderMethod": "phone"},
        Contact("+79005550101", "Анна Новикова", "phone"),
    ),
    (
        "no copy: the customer's first phone",
        RETAILCRM,
        {"customer": {"phones": [{"number": "+7 900 555 01 02"}, {"number": "x"}]},
         "orderMethod": "shopping-cart"},
        Contact("+79005550102", None, "shopping-cart"),
    ),
    (
        "a typo in the copy: the customer's phone",
        RETAILCRM,
        {"phone": "12", "customer": {"phones": [{"number": "89005550103"}]}},
        Contact("+79005550103", None, None),
    ),
    (
        "a history change spells the channel as a dictionary",
        RETAILCRM,
        {"phone": "+79005550104", "orderMethod": {"code": "phone"}},
        Contact("+79005550104", None, "phone"),
    ),
    ("no phone anywhere", RETAILCRM, {"customer": {"phones": []}, "orderMethod": "phone"}, None),
    (
        "a 1C order: its customer's phone and name, no channel",
        ONEC,
        {"customer": {"phone": "+7 (900) 555-01-05", "name": "Иван Петров"}},
        Contact("+79005550105", "Иван Петров", None),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("paths", "order", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_contact_of_an_order(paths: Any, order: dict[str, Any], expected: Contact | None) -> None:
    assert read_contact(paths, order) == expected


def test_one_operation_per_phone_and_no_phone_in_it() -> None:
    first = operation_for("+79005550101")
    assert first == operation_for("+79005550101") != operation_for("+79005550102")
    assert "79005550101" not in first and len(first) <= 64  # 1C: at most 64 characters
