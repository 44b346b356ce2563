"""Merging customers and orders in the emulator (retailcrm-api.md §10.2, §10.3).

``POST /customers/combine`` takes ``customers`` = ``[{"id": 2}, …]`` (absorbed) and
``resultCustomer`` = ``{"id": 1}`` (survivor); ``POST /orders/combine`` takes ``order`` and
``resultOrder`` and a ``technique`` (``ours``, ``summ``, ``theirs``, ``merge``). Both answer
``{"success": true}``. The absorbed entities are deleted: each leaves one history record
in the §10.3 shape of a delete (``deleted: true``, ``field: "id"``, ``oldValue`` its id,
``newValue: null``, the entity's last snapshot) carrying the survivor as ``combinedTo``
(§2.5, §3.1 "A merge shows up as `deleted` records for the absorbed customers with
`combinedTo`"). A read of an absorbed customer then answers 404 with ``combinedTo`` (§1.4).

Decisions where the reference is silent ([unconfirmed] there, §10.8 item 13): the absorbed
customer's orders move to the survivor (history records ``customer`` on each order), and
so does its loyalty account, deactivated if the survivor has one already (a customer takes
part in a programme once, §4.3) with its balance kept; the survivor gets no record of its
own; an absorbed order's lines join the survivor as the technique
says (``ours``: none, ``summ``: all, ``theirs``: the survivor takes the absorbed lines
instead, ``merge``: those whose offer the survivor lacks).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.retailcrm.emulator.bonuses import LoyaltyAccount
from connectors.retailcrm.emulator.history import CUSTOMER, ORDER, EntityKind, HistoryChange
from connectors.retailcrm.emulator.orders import offer_key
from connectors.retailcrm.emulator.state import RetailcrmState
from connectors.retailcrm.emulator.wire import INPUT_PARAMS, ApiError, Json, json_field

TECHNIQUES = ("ours", "summ", "theirs", "merge")  # PHP src/Enum/CombineTechnique.php


def combine_customers(
    state: RetailcrmState,
    params: Mapping[str, Any],
    change: HistoryChange,
    accounts: Iterable[LoyaltyAccount] = (),
) -> Json:
    """``POST /customers/combine``; ``accounts`` are the loyalty accounts of the account."""
    absorbed = json_field(params, "customers", list)
    result = json_field(params, "resultCustomer")
    survivor = _by_id(state, CUSTOMER, result, "resultCustomer")
    victims = [_by_id(state, CUSTOMER, ref, "customers") for ref in absorbed]
    if not victims or any(v["id"] == survivor["id"] for v in victims):
        raise ApiError(400, INPUT_PARAMS, {"customers": "Choose other customers to combine."})
    accounts = list(accounts)
    for victim in victims:
        for order in state.orders_of(victim["id"]):
            state.patch(ORDER, order, {"customer": {"id": survivor["id"]}}, change)
        for account in accounts:
            if account.customer_id == victim["id"]:
                if any(a.customer_id == survivor["id"] for a in accounts):
                    account.status = "deactivated"
                account.customer_id = survivor["id"]
        _delete(state, CUSTOMER, victim, survivor, change)
    return {"success": True}


def combine_orders(state: RetailcrmState, params: Mapping[str, Any], change: HistoryChange) -> Json:
    """``POST /orders/combine``."""
    technique = params.get("technique") or "ours"
    if technique not in TECHNIQUES:
        raise ApiError(400, INPUT_PARAMS, {"technique": "The value is not a valid choice."})
    victim = _by_id(state, ORDER, json_field(params, "order"), "order")
    survivor = _by_id(state, ORDER, json_field(params, "resultOrder"), "resultOrder")
    if victim["id"] == survivor["id"]:
        raise ApiError(400, INPUT_PARAMS, {"order": "An order cannot be combined with itself."})
    theirs = [_new_line(i) for i in victim.get("items", [])]
    ours = copy.deepcopy(survivor.get("items", []))
    have = {offer_key(i) for i in ours}
    items = {
        "ours": ours,
        "summ": ours + theirs,
        "theirs": theirs,
        "merge": ours + [i for i in theirs if offer_key(i) not in have],
    }[technique]
    if items != survivor.get("items", []):
        state.patch(ORDER, survivor, {"items": items}, change)
    _delete(state, ORDER, victim, survivor, change)
    return {"success": True, "errors": []}  # PHP OrdersTest::testCombine


def read_customer(state: RetailcrmState, ref: str, params: Mapping[str, Any]) -> Json:
    """``GET /customers/{externalId}``; a customer merged away answers 404 with the survivor
    as ``combinedTo`` (§1.4; for orders that answer is modelled nowhere, §10.2)."""
    by = params.get("by") or "externalId"
    try:
        return state.get(CUSTOMER, ref, params)
    except ApiError as exc:
        survivor = survivor_of(state, CUSTOMER, ref, by) if exc.status == 404 else None
        if survivor is None:
            raise
        raise ApiError(404, "Not found", combinedTo=state.render(CUSTOMER, survivor)) from None


def survivor_of(state: RetailcrmState, kind: EntityKind, ref: Any, by: str = "id") -> Json | None:
    """The entity a merged-away one now lives on (following later merges too)."""
    merged = state.combined[kind.name]
    found = [to for (own, ext, _), to in merged.items() if str(own if by == "id" else ext) == ref]
    for _ in range(100):
        if not found:
            break
        survivor = state.entities[kind.name].get(found[0])
        if survivor is not None:
            return survivor
        found = [to for (own, _e, _s), to in merged.items() if own == found[0]]
    return None


def _by_id(state: RetailcrmState, kind: EntityKind, ref: Any, field: str) -> Json:
    """The entity a ``{"id": N}`` reference names (only ``id`` is modelled, §10.2)."""
    if not isinstance(ref, dict) or ref.get("id") in (None, ""):
        raise ApiError(400, INPUT_PARAMS, {field: "Specify the id."})
    return state.find(kind, ref["id"], "id")


def _new_line(item: Json) -> Json:
    """A line copied onto another order: a line of its own there (new id)."""
    line = copy.deepcopy(item)
    line.pop("id", None)
    return line


def _delete(
    state: RetailcrmState, kind: EntityKind, victim: Json, survivor: Json, change: HistoryChange
) -> None:
    """Delete ``victim``, leaving the §10.3 record with ``combinedTo``."""
    state.combined[kind.name][(victim["id"], victim.get("externalId"), victim["site"])] = survivor[
        "id"
    ]
    shown = state.render(kind, victim)
    extra = {"deleted": True, "combinedTo": state.render(kind, survivor)}
    rows = [("id", victim["id"], None, extra)]
    state.remove(kind, victim)
    state.feeds[kind.name].append(victim, shown, rows, change, at=state.now())
