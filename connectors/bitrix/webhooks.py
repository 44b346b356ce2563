"""Bitrix24 outbound events as changes: online events POSTed to ``/hooks/<system>``, and the
records of the offline queue (bitrix.md §3.2, §3.5).

An event is a form-urlencoded POST with PHP bracket keys (``event``, ``data[FIELDS][ID]``,
``ts``, ``auth[application_token]``, ...) that only says "ID X changed", so the bridge
re-reads the entity. Online events are never retried (§3.4); the offline queue is the
reliable path, and with it configured an online event only wakes its poller.
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.errors import AuthError
from bridge.store.records import InboundEvent
from connectors.bitrix.options import BitrixOptions

TOKEN_FIELD = "auth[application_token]"  # noqa: S105 (a form key, not a secret)
MAX_DATA_FIELDS = 100

# Event name → (kind, action). Names arrive upper-cased (bitrix.md §3.2
# `event=ONCRMDEALUPDATE`) and are matched case-insensitively, since the sale docs spell
# them `OnSaleOrderSaved`. Deals (§2.2) and shop orders (§2.5) live in one portal under
# their own id sequences: the one the system keeps orders in (`orders: deals | shop`) is
# the bridge's "order", the other keeps its own name so deal 7 never meets order 7.
# Contacts are the only people mirrored (companies are not): "customer".
EVENTS: dict[str, tuple[str, str]] = {
    # bitrix.md §2.2: deal and contact events.
    "ONCRMDEALADD": ("deal", "created"),
    "ONCRMDEALUPDATE": ("deal", "changed"),
    "ONCRMDEALDELETE": ("deal", "deleted"),
    "ONCRMDEALMOVETOCATEGORY": ("deal", "changed"),
    "ONCRMCONTACTADD": ("contact", "created"),
    "ONCRMCONTACTUPDATE": ("contact", "changed"),
    "ONCRMCONTACTDELETE": ("contact", "deleted"),
    # bitrix.md §2.5: shop order events whose data[FIELDS][ID] is the order's id. Payment,
    # shipment and property events carry only their own id, so they cannot name the order.
    "ONSALEORDERSAVED": ("sale", "changed"),
    "ONORDERENTITYSAVED": ("sale", "changed"),
    "ONSALEBEFOREORDERDELETE": ("sale", "deleted"),
    "ONORDERDELETED": ("sale", "deleted"),
}
# §3.5: the push that says the offline queue has records; only wakes the poller.
OFFLINE_NUDGE = "ONOFFLINEEVENT"


def entity_names(orders: str) -> dict[str, str]:
    """Kind of event → the bridge's entity name, with orders kept as deals or shop orders."""
    return {
        "deal": "order" if orders == "deals" else "deal",
        "contact": "customer",
        "sale": "order" if orders == "shop" else "shop_order",
    }


def parse_event(form: RawForm, names: dict[str, str]) -> InboundEvent:
    """One online event (the token already checked) as one change."""
    name = _single(form, "event", _EVENT, "must be a Bitrix event name").upper()
    if name not in EVENTS:
        raise WebhookRejected(f"event: {name!r} is not an event the bridge subscribes to")
    kind, action = EVENTS[name]
    entity_id = _single(form, "data[FIELDS][ID]", _NUMBER, "must be an integer id")
    ts = _single(form, "ts", _NUMBER, "must be UNIX seconds")
    return InboundEvent(
        # One change of one object. Two same-named events for one object within a second
        # collapse into one; online events are best-effort anyway (§3.4).
        source_key=f"{name}:{entity_id}:{ts}",
        entity=names[kind],
        entity_id=entity_id,
        action=action,
        payload=_payload(form, name, ts),
    )


def offline_event(row: Any, names: dict[str, str]) -> InboundEvent | None:
    """A record of the offline queue (§3.5 ``event.offline.get``: ``ID``, ``EVENT_NAME``,
    ``EVENT_DATA``, ``TIMESTAMP_X``, ``MESSAGE_ID``) as a change; None for an event the
    bridge does not take. The record's ``ID`` is unique: later changes of the object after
    a clear come as new records."""
    if not isinstance(row, dict):
        return None
    name = str(row.get("EVENT_NAME") or "").upper()
    data = row.get("EVENT_DATA")
    fields = data.get("FIELDS") if isinstance(data, dict) else None
    entity_id = str(fields.get("ID", "")) if isinstance(fields, dict) else ""
    if name not in EVENTS or not _NUMBER.fullmatch(entity_id):
        return None
    kind, action = EVENTS[name]
    return InboundEvent(
        source_key=f"offline:{row.get('ID')}",
        entity=names[kind],
        entity_id=entity_id,
        action=action,
        payload={"event": name, "at": row.get("TIMESTAMP_X"), "message_id": row.get("MESSAGE_ID")},
    )


_EVENT = re.compile(r"[A-Za-z0-9_]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,20}")
_DATA_FIELD = re.compile(r"data\[FIELDS\]\[([A-Za-z0-9_]{1,64})\]")
# Identifiers of the portal, not credentials (bitrix.md §3.3 suggests checking them too).
_PORTAL_FIELDS = {"domain": "auth[domain]", "member_id": "auth[member_id]"}

RawForm = dict[str, list[bytes]]


def read_form(body: bytes) -> RawForm:
    """Split a form-urlencoded body into raw byte values per key; never fails.

    Values stay bytes so that a token can be checked before anything is decoded, and a
    body that is not a form at all simply lacks the token.
    """
    form: RawForm = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        raw_key, _, raw_value = pair.partition(b"=")
        key = unquote_to_bytes(raw_key.replace(b"+", b" ")).decode("utf-8", "replace")
        form.setdefault(key, []).append(unquote_to_bytes(raw_value.replace(b"+", b" ")))
    return form


def check_application_token(form: RawForm, expected: bytes) -> None:
    """Raise AuthError unless ``auth[application_token]`` is the configured token."""
    # bitrix.md §3.3: compare auth[application_token] with the token the portal issued
    # (shown in the UI for an outgoing webhook, sent in ONAPPINSTALL for an app).
    given = form.get(TOKEN_FIELD, [])
    if not given or not given[0]:
        raise AuthError(f"{TOKEN_FIELD}: is required")
    if len(given) > 1:
        raise AuthError(f"{TOKEN_FIELD}: given more than once")
    if not hmac.compare_digest(given[0], expected):
        raise AuthError(f"{TOKEN_FIELD}: does not match the configured webhook token")


def _single(form: RawForm, key: str, pattern: re.Pattern[str], what: str) -> str:
    values = form.get(key)
    if not values:
        raise WebhookRejected(f"{key}: is required")
    if len(values) > 1:
        raise WebhookRejected(f"{key}: given more than once")
    text = values[0].decode("ascii", "replace")
    if not pattern.fullmatch(text):
        raise WebhookRejected(f"{key}: {what}")
    return text


def _payload(form: RawForm, event: str, ts: str) -> dict[str, Any]:
    """What the event said, without the ``auth[...]`` tokens (never stored)."""
    fields: dict[str, str] = {}
    for key, values in form.items():
        match = _DATA_FIELD.fullmatch(key)
        if match:
            fields[match.group(1)] = values[-1].decode("utf-8", "replace")
    if len(fields) > MAX_DATA_FIELDS:
        raise WebhookRejected(f"data[FIELDS]: at most {MAX_DATA_FIELDS} fields")
    payload: dict[str, Any] = {"event": event, "ts": int(ts), "fields": fields}
    for name, key in _PORTAL_FIELDS.items():
        if form.get(key):
            payload[name] = form[key][0].decode("utf-8", "replace")
    return payload


NUDGE = "trigger"  # the entity of an online event that only wakes the poller (no route)


class BitrixWebhooks:
    """The portal's online events at ``/hooks/<system>``, the application token checked.

    Alone (no ``options.url``) it is the whole system: the bridge only hears from the
    portal, and cannot read, list or write it (a route into it is refused). Inside a
    connector whose offline queue is ``queued``, an event only wakes the queue's poller.
    """

    authenticates_body = True

    def __init__(
        self, name: str, options: BitrixOptions, token: bytes | None, *, queued: bool = False
    ) -> None:
        self.name = name
        self._token = token
        self._names = entity_names(options.orders)
        self._queued = queued

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
        """Check the application token, then turn the event into one change (or, with the
        offline queue on, into a wake-up of its poller)."""
        form = read_form(request.body)
        if self._token is not None:
            check_application_token(form, self._token)
        names = form.get("event") or [b""]
        if self._queued and names[0].decode("ascii", "replace").upper() == OFFLINE_NUDGE:
            return [_nudge(form)]
        event = parse_event(form, self._names)
        if self._queued:  # the queue holds this change too; poll it now
            return [_nudge(form)]
        return [event]


def _nudge(form: RawForm) -> InboundEvent:
    ts = (form.get("ts") or [b"0"])[0].decode("ascii", "replace")
    name = (form.get("event") or [b""])[0].decode("ascii", "replace").upper()
    return InboundEvent(f"nudge:{name}:{ts}", NUDGE, name or "event", "wake", {"event": name})
