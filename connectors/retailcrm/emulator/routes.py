"""The emulator's routes beyond orders, customers and loyalty: statuses, external ids,
payments, merges and corporate customers (retailcrm-api.md §10.2, §10.4, §10.7).

Listed before the entity routes, whose ``orders/{externalId}`` would swallow
``orders/statuses``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.retailcrm.emulator.corporate import CORPORATE, CorporateBook
from connectors.retailcrm.emulator.history import CUSTOMER, ORDER
from connectors.retailcrm.emulator.loyalty import LoyaltyState
from connectors.retailcrm.emulator.merges import combine_customers, combine_orders, read_customer
from connectors.retailcrm.emulator.state import RetailcrmState
from connectors.retailcrm.emulator.statuses import (
    create_payment,
    fix_external_ids,
    order_statuses,
    reference_statuses,
)

Route = tuple[str, str, Callable[[Any], Any]]  # (method, path pattern, handler of a Call)


def more_routes(
    state: RetailcrmState, corporate: CorporateBook, loyalty: LoyaltyState
) -> list[Route]:
    """The routes, each handler taking the emulator's ``Call``."""
    base, ref = "v5/customers-corporate", "(?P<ref>[^/]+)"
    return [
        ("GET", "v5/reference/statuses", lambda c: reference_statuses()),
        ("GET", "v5/orders/statuses", lambda c: order_statuses(state, c.params)),
        (
            "POST",
            "v5/orders/fix-external-ids",
            lambda c: fix_external_ids(state, ORDER, "orders", c.params, c.change),
        ),
        (
            "POST",
            "v5/customers/fix-external-ids",
            lambda c: fix_external_ids(state, CUSTOMER, "customers", c.params, c.change),
        ),
        ("POST", "v5/orders/payments/create", lambda c: create_payment(state, c.params, c.change)),
        ("POST", "v5/orders/combine", lambda c: combine_orders(state, c.params, c.change)),
        (
            "POST",
            "v5/customers/combine",
            lambda c: combine_customers(state, c.params, c.change, loyalty.accounts.values()),
        ),
        # Not `history`, which the entity routes answer.
        (
            "GET",
            "v5/customers/(?P<ref>(?!history$)[^/]+)",
            lambda c: read_customer(state, c.ref, c.params),
        ),
        ("GET", base, lambda c: corporate.search(c.params)),
        ("GET", f"{base}/history", lambda c: corporate.history(c.params, c.key)),
        ("POST", f"{base}/create", lambda c: corporate.create(c.params, c.change)),
        (
            "POST",
            f"{base}/fix-external-ids",
            lambda c: fix_external_ids(
                state, CORPORATE, "customersCorporate", c.params, c.change, corporate.book
            ),
        ),
        ("POST", f"{base}/{ref}/edit", lambda c: corporate.edit(c.ref, c.params, c.change)),
        ("GET", f"{base}/{ref}", lambda c: corporate.get(c.ref, c.params)),
    ]
