"""What a declaration may say: the bridge's capabilities, what each one's request holds (the
``from`` of an argument rule) and what its answer must give (the ``to`` of an answer rule).

A capability is something the bridge asks of 1C (``balance``, ``reserve``, ``get_changes``);
a declaration names the 1C operation that serves it. The request and answer fields are the
reference contract's logical names (``contract.py``), plus the keys an existing service is
reached by (``phone``, ``card``) and, for calls on a hold, what the bridge kept from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from connectors.onec.contract import OPERATIONS

# What a look-up or a hold knows of the customer, whichever key the service wants.
_WHO = ("customer_id", "phone", "card")
# What the bridge keeps with a hold and hands to the calls on it (commit, release).
_HOLD = ("reservation_id", "operation_id", "customer_id", "phone", "card", "order_id", "held")
# What an answer to a ledger operation may say (the contract's Operation record).
_DONE = ("operation_id", "kind", "status", "reservation_id", "amount", "balance", "available")


@dataclass(frozen=True)
class Capability:
    """One capability: its request fields, answer fields, what its answer must give
    (``needs``; ``a|b``: one of them) and the bridge feature it serves."""

    name: str
    feature: str
    request: tuple[str, ...]
    answer: tuple[str, ...]
    needs: tuple[str, ...] = ()
    changes_state: bool = False


def _contract(name: str, feature: str) -> Capability:
    """A mirroring, listing or card capability: the contract's parameters and result
    record."""
    op = OPERATIONS[name]
    fields = tuple(f.name for f in op.result.fields)
    return Capability(
        name,
        feature,
        tuple(p.name for p in op.params),
        fields,
        changes_state=op.idempotent,
    )


# fmt: off
CAPABILITIES: Mapping[str, Capability] = MappingProxyType({c.name: c for c in (
    Capability("find_customer", "look-ups", _WHO, ("customer_id", "phone", "card", "name"),
               needs=("customer_id",)),
    Capability("balance", "look-ups", (*_WHO, "cart_total"),
               ("customer_id", "balance", "reserved", "available", "max_redeemable", "level",
                "as_of"), needs=("balance|available",)),
    Capability("max_redeemable", "look-ups", (*_WHO, "cart_total"), ("max_redeemable",),
               needs=("max_redeemable",)),
    Capability("reserve", "reservations",
               ("operation_id", *_WHO, "amount", "order_id", "expires_at"),
               _DONE, changes_state=True),
    Capability("commit", "reservations", (*_HOLD, "amount"),
               _DONE, changes_state=True),
    Capability("release", "reservations", _HOLD,
               _DONE, changes_state=True),
    Capability("accrue", "accruals", ("operation_id", *_WHO, "amount", "order_id"),
               _DONE, changes_state=True),
    Capability("reverse", "returns", ("operation_id", "original_operation_id", "amount"),
               _DONE, changes_state=True),
    _contract("save_order", "mirroring orders into 1C"),
    _contract("get_order", "mirroring orders from 1C"),
    _contract("save_customer", "mirroring customers into 1C"),
    _contract("get_customer", "mirroring customers from 1C"),
    _contract("get_changes", "changes from 1C (polling)"),
    _contract("list_orders", "backfill of orders"),
    _contract("list_customers", "backfill of customers"),
    _contract("find_cards", "customers' cards"),
    _contract("get_card", "customers' cards"),
    _contract("attach_card", "customers' cards"),
    _contract("set_card_status", "customers' cards"),
    _contract("set_main_card", "customers' cards"),
    _contract("move_points", "merging cards"),
    _contract("get_profile", "the customer's questionnaire"),
    _contract("save_profile", "the customer's questionnaire"),
    _contract("register_customer", "registering customers"),
)})
# fmt: on

# Capabilities 1C may do itself instead of being called: the bridge then only records them.
DONE_BY_1C: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {"commit": ("at_sale",), "release": ("on_expiry",)}
)
# What keys a customer when no find_customer is declared.
CUSTOMER_KEYS = ("phone", "card")
# The request fields of a capability that the bridge fills only when it has them.
HOLD_CONTEXT = frozenset(_HOLD) - {"reservation_id", "operation_id"}


def known_capabilities() -> str:
    """The capability names, for messages."""
    return ", ".join(CAPABILITIES)
