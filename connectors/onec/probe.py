"""``bridge check --probe`` for 1C: every capability of the declaration tried harmlessly.

A look-up asks for a customer no one has (``+7 900 000-00-00``); a call on a hold names a
hold that does not exist; a refusal is an answer, so the operation is there and works. The
two writes of documents (SaveOrder, SaveCustomer) are not called: for SOAP the WSDL must
have them with the declared arguments, for HTTP only a real write could tell.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bridge.errors import BridgeError, ConfigError, TransientError
from bridge.ledger import LedgerRefused
from connectors.onec.client import OnecFault, SoapClient
from connectors.onec.declared.calls import DeclaredService
from connectors.onec.declared.vocabulary import CAPABILITIES
from connectors.onec.errors import is_unpublished

AVAILABLE = "available"
NOT_DECLARED = "not declared"
FAILING = "declared but failing"
NOT_TRIED = "declared, not tried (it writes)"
DONE_BY_1C = "done by 1C"
UNPUBLISHED = "not published"
SUSPECT = "it accepted a probe for no one: is its refusal declared?"

# A valid mobile number in a block no one is given out of (+7 900 000-00-00), a card no one
# has: a look-up or a hold for them is refused, never made.
_WHO = {"customer_id": "bridge-probe", "phone": "+79000000000", "card": "0000000000000"}
_HOLD = {"reservation_id": "bridge-probe", "order_id": "bridge-probe", "held": Decimal("0.01")}
_FAR = datetime(2999, 1, 1, tzinfo=UTC)  # listings: a moment no document has reached
PROBES: dict[str, dict[str, Any]] = {
    "find_customer": _WHO,
    "balance": {**_WHO, "cart_total": Decimal("100.00")},
    "max_redeemable": {**_WHO, "cart_total": Decimal("100.00")},
    "reserve": {**_WHO, "operation_id": "bridge-probe", "amount": Decimal("0.01"),
                "order_id": "bridge-probe"},
    "commit": {**_WHO, **_HOLD, "operation_id": "bridge-probe-commit", "amount": Decimal("0.01")},
    "release": {**_WHO, **_HOLD, "operation_id": "bridge-probe-release"},
    "accrue": {**_WHO, "operation_id": "bridge-probe", "amount": Decimal("0.01"),
               "order_id": "bridge-probe"},
    "reverse": {"operation_id": "bridge-probe-reverse", "original_operation_id": "bridge-probe",
                "amount": Decimal("0.01")},
    "get_order": {"id": "bridge-probe"},
    "get_customer": {"id": "bridge-probe"},
    "get_changes": {"since_message_no": 0, "limit": 1},
    "list_orders": {"created_from": _FAR, "limit": 1},
    "list_customers": {"created_from": _FAR, "limit": 1},
    # The card reads: no one has the phone (an empty list), the card or the customer.
    "find_cards": {"phone": _WHO["phone"]},
    "get_card": {"card": _WHO["card"]},
    "get_profile": {"customer_id": _WHO["customer_id"]},
}  # fmt: skip
Call = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


class ProbeFailed(ConfigError):
    """A declared capability failed its probe; the message is the whole table."""


@dataclass(frozen=True)
class Row:
    """One capability's line of the table."""

    capability: str
    state: str
    served_by: str = ""
    detail: str = ""


async def probe_capabilities(service: DeclaredService, call: Call) -> list[Row]:
    """Each capability's state, in the vocabulary's order."""
    rows = await asyncio.gather(*(_probe(service, name, call) for name in CAPABILITIES))
    return list(rows)


async def _probe(service: DeclaredService, capability: str, call: Call) -> Row:
    declaration = service.declaration
    done = declaration.done_by_1c(capability)
    if done is not None:
        return Row(capability, DONE_BY_1C, done)
    declared = declaration.calls(capability)
    if declared is None:
        return Row(capability, NOT_DECLARED)
    label = declared.label
    client = service.client
    if isinstance(client, SoapClient):
        if capability in declaration.optional and not client.publishes(declared.operation or ""):
            return Row(capability, UNPUBLISHED, label, "optional: the service may lack it")
        wrong = _against_wsdl(client, declared.operation or "", declared.args)
        if wrong:
            return Row(capability, FAILING, label, wrong)
    request = PROBES.get(capability)
    if capability == "find_customer":
        # One key, the first the service reads: a look-up by two at once may be refused.
        key = next((k for k in ("phone", "card", "customer_id") if k in declared.reads), "phone")
        request = {key: _WHO[key]}
    if request is None:
        return Row(capability, NOT_TRIED, label)
    optional = capability in declaration.optional
    state, detail = await _tried(capability, request, call, optional)
    return Row(capability, state, label, detail)


async def _tried(
    capability: str, request: dict[str, Any], call: Call, optional: bool = False
) -> tuple[str, str]:
    """(state, detail) of one harmless call."""
    try:
        await call(capability, request)
    except LedgerRefused as exc:
        return AVAILABLE, f"refused the probe: {exc.code}"
    except TransientError as exc:
        return FAILING, str(exc)
    except BridgeError as exc:
        cause = exc.__cause__
        if isinstance(cause, OnecFault) and cause.code is not None:
            return AVAILABLE, f"refused the probe: {cause.code}"
        if optional and is_unpublished(cause):
            # An HTTP service without the template (a bare 404), as a WSDL without the
            # operation above: one published before the optional calls existed.
            return UNPUBLISHED, "optional: the service may lack it"
        return FAILING, str(exc)
    if CAPABILITIES[capability].changes_state:
        # The probe's customer, hold and operation exist nowhere: a service that says "done"
        # to them says it to anything, or refuses in a way the declaration does not name.
        return AVAILABLE, SUSPECT
    return AVAILABLE, ""


def _against_wsdl(client: SoapClient, operation: str, args: Any) -> str:
    """What the WSDL says against the declaration: a missing operation or argument."""
    inputs = client.inputs(operation)
    if inputs is None:
        return f"the WSDL has no operation {operation}"
    for rule in args:
        element = rule.target[0] if rule.target else None
        if isinstance(element, str) and element not in inputs:
            return f"{operation} has no argument {element} (it has {', '.join(inputs) or 'none'})"
    return ""


def render_table(rows: list[Row]) -> list[str]:
    """The table as lines, aligned."""
    width = max(len(row.capability) for row in rows)
    states = max(len(row.state) for row in rows)
    lines = []
    for row in rows:
        text = f"  {row.capability:<{width}}  {row.state:<{states}}  {row.served_by}"
        if row.detail:
            text += f"  ({row.detail})"
        lines.append(text.rstrip())
    return lines
