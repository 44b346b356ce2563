"""The list filters of the emulator's `GET /orders` and `GET /customers` (retailcrm-api.md
§2.1 order filters, §3.2 finding a customer by phone through `filter[name]`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from connectors.retailcrm.emulator.wire import Json, as_list, digits, phone_matches


def matches(entity: Json, wanted: Json, customers: Mapping[int, Json]) -> bool:
    """Whether an order or customer passes every filter in ``wanted``."""

    def one_of(key: str) -> Callable[[Any], bool]:
        return lambda v: str(entity.get(key)) in {str(x) for x in as_list(v)}

    customer = customers.get(entity.get("customer", {}).get("id", 0))
    tests: dict[str, Callable[[Any], bool]] = {
        "ids": one_of("id"),
        "externalIds": one_of("externalId"),
        "numbers": one_of("number"),
        "sites": one_of("site"),
        "email": lambda v: str(v).casefold() == str(entity.get("email", "")).casefold(),
        "discountCardNumber": lambda v: str(v) == str(entity.get("discountCardNumber")),
        "name": lambda v: name_matches(entity, str(v)),
        "customerId": lambda v: customer is not None and str(customer["id"]) == str(v),
        "customerExternalId": lambda v: (
            customer is not None and customer.get("externalId") == str(v)
        ),
        # §2.1 list filters `createdAtFrom/To`: a date (`Y-m-d`) or a time (`Y-m-d H:i:s`);
        # a date bound covers its whole day. Times compare as text in the one format.
        "createdAtFrom": lambda v: str(entity.get("createdAt", "")) >= str(v),
        "createdAtTo": lambda v: str(entity.get("createdAt", "")) <= _day_end(str(v)),
    }
    return all(test(wanted[key]) for key, test in tests.items() if key in wanted)


def name_matches(customer: Json, query: str) -> bool:
    """§3.2 `filter[name]`: free text over names and email, or digits over the phones."""
    names = " ".join(str(customer.get(k) or "") for k in ("firstName", "lastName", "patronymic"))
    text = query.strip().casefold()
    if text and (text in names.casefold() or text in str(customer.get("email", "")).casefold()):
        return True
    wanted = digits(query)
    return any(phone_matches(wanted, p.get("number")) for p in customer.get("phones", []))


def _day_end(bound: str) -> str:
    """A date-only upper bound as the last second of that day."""
    return f"{bound} 23:59:59" if len(bound) == 10 else bound
