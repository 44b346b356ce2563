"""Bitrix24 as a webhook source: outbound (online) events, authenticated by their token.

bitrix.md §3.2: an event is a form-urlencoded POST with PHP bracket keys (``event``,
``data[FIELDS][ID]``, ``ts``, ``auth[application_token]``, ...) that only says "ID X
changed", so the bridge re-reads the entity. §3.4: online events are never retried, so the
reliable path is the offline-event queue, which lands with the client in issue 7.
"""

from __future__ import annotations

import hmac
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from pydantic import BaseModel, ConfigDict

from bridge.connector import WebhookRejected, WebhookRequest
from bridge.errors import AuthError
from bridge.settings import SystemSettings, WebhookAuth
from bridge.store.records import InboundEvent

TOKEN_FIELD = "auth[application_token]"  # noqa: S105 (a form key, not a secret)
MAX_DATA_FIELDS = 100

# Event name → (entity, action). Names arrive upper-cased (bitrix.md §3.2 `event=ONCRMDEALUPDATE`)
# and are matched case-insensitively, since the sale docs spell them `OnSaleOrderSaved`.
# A CRM deal is "deal", not "order": bitrix.md §2.2 calls deals the order *mirror* in the CRM,
# while §2.5 shop orders (`sale.order.*`) live in the same portal under their own id sequence,
# so one name for both would merge deal 7 with order 7. Contacts are the only people we
# subscribe to (companies are not mirrored), hence "customer", the bridge-wide name.
EVENTS: dict[str, tuple[str, str]] = {
    # bitrix.md §2.2: deal and contact events.
    "ONCRMDEALADD": ("deal", "created"),
    "ONCRMDEALUPDATE": ("deal", "changed"),
    "ONCRMDEALDELETE": ("deal", "deleted"),
    "ONCRMDEALMOVETOCATEGORY": ("deal", "changed"),
    "ONCRMCONTACTADD": ("customer", "created"),
    "ONCRMCONTACTUPDATE": ("customer", "changed"),
    "ONCRMCONTACTDELETE": ("customer", "deleted"),
    # bitrix.md §2.5: shop order events whose data[FIELDS][ID] is the order's id. Payment,
    # shipment and property events carry only their own id, so they cannot name the order.
    "ONSALEORDERSAVED": ("order", "changed"),
    "ONORDERENTITYSAVED": ("order", "changed"),
    "ONSALEBEFOREORDERDELETE": ("order", "deleted"),
    "ONORDERDELETED": ("order", "deleted"),
}

_EVENT = re.compile(r"[A-Za-z0-9_]{1,64}")
_NUMBER = re.compile(r"[0-9]{1,20}")
_DATA_FIELD = re.compile(r"data\[FIELDS\]\[([A-Za-z0-9_]{1,64})\]")
# Identifiers of the portal, not credentials (bitrix.md §3.3 suggests checking them too).
_PORTAL_FIELDS = {"domain": "auth[domain]", "member_id": "auth[member_id]"}

RawForm = dict[str, list[bytes]]


class BitrixOptions(BaseModel):
    """Options of a Bitrix system; none yet (the REST client lands in issue 7)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BitrixConnector:
    """Parses Bitrix24 outbound events; cannot write yet."""

    # bitrix.md §3.3: every outbound event carries auth[application_token]; we check it.
    authenticates_body = True

    def __init__(self, name: str, token: bytes | None) -> None:
        self.name = name
        self._token = token

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
        """Check the application token, then turn the event into one change."""
        form = read_form(request.body)
        if self._token is not None:
            check_application_token(form, self._token)
        name = _single(form, "event", _EVENT, "must be a Bitrix event name").upper()
        if name not in EVENTS:
            raise WebhookRejected(f"event: {name!r} is not an event the bridge subscribes to")
        entity, action = EVENTS[name]
        entity_id = _single(form, "data[FIELDS][ID]", _NUMBER, "must be an integer id")
        ts = _single(form, "ts", _NUMBER, "must be UNIX seconds")
        return [
            InboundEvent(
                # One change of one object. Two same-named events for one object within a
                # second collapse into one; online events are best-effort anyway (§3.4).
                source_key=f"{name}:{entity_id}:{ts}",
                entity=entity,
                entity_id=entity_id,
                action=action,
                payload=_payload(form, name, ts),
            )
        ]


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


class BitrixType:
    """Entry-point object for ``type: bitrix``."""

    options_model: type[BaseModel] = BitrixOptions

    def create(self, name: str, system: SystemSettings, options: BitrixOptions) -> BitrixConnector:
        """A Bitrix connector for system ``name``; checks the token when auth is ``connector``."""
        webhook = system.webhook
        token = None
        if webhook is not None and webhook.auth is WebhookAuth.CONNECTOR and webhook.token:
            token = webhook.token.get_secret_value().encode()
        return BitrixConnector(name, token)


BITRIX = BitrixType()
