"""Webhook intake of the 1C, RetailCRM and Bitrix connectors: good bodies and bad ones."""

from __future__ import annotations

import importlib
import json
import random
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr, ValidationError

from bridge.connector import ConnectorType, WebhookParser, WebhookRejected, WebhookRequest
from bridge.errors import AuthError
from bridge.settings import SystemSettings, WebhookAuth, WebhookSettings
from bridge.store.records import InboundEvent
from connectors.bitrix.connector import BITRIX
from connectors.files.connector import FILES
from connectors.onec.connector import ONEC
from connectors.retailcrm.connector import RETAILCRM

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bitrix-app-token-0123456789"
QUERY_TOKEN = "query-token-0123456789"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def build(
    ctype: Any, type_name: str, auth: WebhookAuth, token: str, **options: str
) -> WebhookParser:
    """A connector as the core builds it, checked to be a webhook parser."""
    webhook = WebhookSettings(auth=auth, token=SecretStr(token))
    system = SystemSettings(type=type_name, webhook=webhook)
    connector = ctype.create(type_name, system, ctype.options_model.model_validate(options))
    assert isinstance(connector, WebhookParser)
    return connector


def onec() -> WebhookParser:
    address = "http://127.0.0.1:9/base/ws/BridgeLoyalty.1cws"
    return build(ONEC, "onec", WebhookAuth.BEARER, QUERY_TOKEN, address=address)


def retailcrm() -> WebhookParser:
    return build(
        RETAILCRM,
        "retailcrm",
        WebhookAuth.QUERY,
        QUERY_TOKEN,
        url="http://127.0.0.1:9",
        api_key="test-api-key-0001",
    )


def bitrix(auth: WebhookAuth = WebhookAuth.CONNECTOR) -> WebhookParser:
    return build(BITRIX, "bitrix", auth, TOKEN)


def request(
    body: bytes | str,
    content_type: str = JSON,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> WebhookRequest:
    raw = body.encode() if isinstance(body, str) else body
    return WebhookRequest("test", headers or {}, query or {}, content_type, raw)


def bitrix_form(**overrides: str | None) -> str:
    """A Bitrix24 outbound event as in bitrix.md §3.2; ``None`` drops a key."""
    fields: dict[str, str | None] = {
        "event": "ONCRMDEALUPDATE",
        "event_handler_id": "975",
        "data[FIELDS][ID]": "7405",
        "ts": "1766047124",
        "auth[domain]": "some.bitrix24.com",
        "auth[member_id]": "0123456789abcdef0123456789abcdef",
        "auth[application_token]": TOKEN,
        "auth[access_token]": "short-lived-access-token",
    }
    fields.update(overrides)
    return urlencode({k: v for k, v in fields.items() if v is not None})


# -- wiring ---------------------------------------------------------------------------------


def test_entry_points_declared_in_pyproject_name_the_four_connectors() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = pyproject["project"]["entry-points"]["bridge.connectors"]
    found = {}
    for name, target in declared.items():
        module, _, attr = target.partition(":")
        found[name] = getattr(importlib.import_module(module), attr)
    assert found == {"onec": ONEC, "retailcrm": RETAILCRM, "bitrix": BITRIX, "files": FILES}


@pytest.mark.parametrize("ctype", [ONEC, RETAILCRM, BITRIX])
def test_options_reject_unknown_keys(ctype: ConnectorType) -> None:
    with pytest.raises(ValidationError, match="extra"):
        ctype.options_model.model_validate({"colour": "blue"})


# -- 1C ---------------------------------------------------------------------------------------


def test_onec_single_change() -> None:
    body = {"event_id": "1c-doc-77-v3", "entity": "order", "id": "77", "data": {"sum": "10.00"}}
    assert onec().parse_webhook(request(json.dumps(body))) == [
        InboundEvent("1c-doc-77-v3", "order", "77", "changed", {"sum": "10.00"})
    ]


def test_onec_batch_of_receipt_sale_and_customer() -> None:
    events = [
        {"event_id": "r1", "entity": "receipt", "id": "ЧК-1"},
        {"event_id": "s1", "entity": "sale", "id": "Реализация-9", "action": "posted"},
        {"event_id": "c1", "entity": "customer", "id": "guid-1"},
    ]
    parsed = onec().parse_webhook(request(json.dumps({"events": events})))
    assert [(e.entity, e.entity_id, e.action) for e in parsed] == [
        ("receipt", "ЧК-1", "changed"),
        ("sale", "Реализация-9", "posted"),
        ("customer", "guid-1", "changed"),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"entity": "product", "id": "1"}', r"^entity: 'product' is not one of the 1C"),
        (
            b'{"events": [{"entity": "order", "id": "1"}, {"entity": "stock", "id": "2"}]}',
            r"^events\[1\]\.entity: 'stock'",
        ),
        (b'{"entity": "order"}', r"^id: is required"),
        (b"entity=order&id=1", r"^body is not JSON"),
        (b'{"entity": "order", "id": "\xff\xfe"}', r"^body is not JSON"),
        (b"[" * 100_000, r"^body is not JSON: nested too deeply"),
        (b'{"entity": "order", "id": "1", "data": {"n": ' + b"9" * 5000 + b"}}", r"^body is not"),
        (b'{"entity": "order", "id": "1", "data": {"n": NaN}}', r"^body is not JSON: NaN"),
    ],
)
def test_onec_rejects(body: bytes, message: str) -> None:
    with pytest.raises(WebhookRejected, match=message):
        onec().parse_webhook(request(body))


# -- RetailCRM --------------------------------------------------------------------------------


def test_retailcrm_json_with_history_id() -> None:
    body = {"entity": "order", "id": 5, "externalId": "1c-000123", "historyId": "2691"}
    assert retailcrm().parse_webhook(request(json.dumps(body))) == [
        InboundEvent(
            "order-history:2691",
            "trigger",
            "order/5",
            "changed",
            {"entity": "order", "id": "5", "externalId": "1c-000123", "historyId": "2691"},
        )
    ]


def test_retailcrm_form_without_change_id_uses_a_digest_of_the_content() -> None:
    connector = retailcrm()
    first = connector.parse_webhook(request("entity=customer&id=12&externalId=", FORM))[0]
    again = connector.parse_webhook(request("externalId=&id=12&entity=customer", FORM))[0]
    later = connector.parse_webhook(
        request("entity=customer&id=12&changedAt=2025-01-10+12%3A00%3A01", FORM)
    )[0]
    assert (first.entity, first.entity_id, first.payload) == (
        "trigger",
        "customer/12",
        {"entity": "customer", "id": "12"},  # an empty template value counts as absent
    )
    assert first.source_key.startswith("sha256:")
    assert again.source_key == first.source_key
    assert later.source_key != first.source_key  # a timestamp makes a new change count


def test_retailcrm_parameters_in_the_url_and_a_delivery_id_header() -> None:
    query = {"token": QUERY_TOKEN, "entity": "order", "id": "8"}
    headers = {"webhook-id": "msg_1"}
    [event] = retailcrm().parse_webhook(request(b"", FORM, headers=headers, query=query))
    assert event == InboundEvent(
        "msg_1", "trigger", "order/8", "changed", {"entity": "order", "id": "8"}
    )


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (b"{oops", JSON, r"^body is not JSON"),
        (b"[1, 2]", JSON, r"^body: must be a JSON object"),
        (b'{"entity": "order", "id": "5"\xff}', JSON, r"^body is not JSON"),
        (b"[" * 100_000, JSON, r"^body is not JSON: nested too deeply"),
        (b'{"entity": "order", "id": 1, "n": NaN}', JSON, r"^body is not JSON: NaN"),
        (b"entity=order&id=%FF", FORM, r"^body: is not UTF-8"),
        (b"entity=order&id=\xff", FORM, r"^body: is not UTF-8"),
        (b"entity=order", FORM, r"^id: is required"),
        (b"id=5", FORM, r"^entity: is required"),
        (b"entity=product&id=5", FORM, r"^entity: 'product' is not one of"),
        (b"entity=order&id=abc", FORM, r"^id: must be the RetailCRM internal id"),
        (b"entity=order&id=5&historyId=x", FORM, r"^historyId: must be"),
        (b"entity=order&id=5&id=6", FORM, r"^id: given more than once"),
        (b"entity=order&id=5&%3Cscript%3E=1", FORM, r"^'<script>': is not a parameter name"),
        (b'{"entity": "order", "id": true}', JSON, r"^id: must be a string or an integer"),
        (b'{"entity": "order", "id": {"a": [[{}]]}}', JSON, r"^id: must be a string"),
        (b'{"entity": "order", "id": "' + b"1" * 600 + b'"}', JSON, r"^id: at most 500"),
        ("&".join(f"f{i}=1" for i in range(60)).encode(), FORM, r"^body: at most 50"),
        (json.dumps({f"f{i}": 1 for i in range(60)}).encode(), JSON, r"^body: at most 50"),
    ],
)
def test_retailcrm_rejects(body: bytes, content_type: str, message: str) -> None:
    with pytest.raises(WebhookRejected, match=message):
        retailcrm().parse_webhook(request(body, content_type))


# -- Bitrix -----------------------------------------------------------------------------------


def test_bitrix_deal_update() -> None:
    [event] = bitrix().parse_webhook(request(bitrix_form(), FORM))
    assert event == InboundEvent(
        "ONCRMDEALUPDATE:7405:1766047124",
        "order",  # orders are kept as deals by default (options.orders)
        "7405",
        "changed",
        {
            "event": "ONCRMDEALUPDATE",
            "ts": 1766047124,
            "fields": {"ID": "7405"},
            "domain": "some.bitrix24.com",
            "member_id": "0123456789abcdef0123456789abcdef",
        },
    )
    assert TOKEN not in json.dumps(event.payload)
    assert "short-lived" not in json.dumps(event.payload)


@pytest.mark.parametrize(
    ("name", "entity", "action"),
    [
        ("ONCRMDEALADD", "order", "created"),
        ("ONCRMDEALDELETE", "order", "deleted"),
        ("ONCRMCONTACTADD", "customer", "created"),
        ("ONCRMCONTACTUPDATE", "customer", "changed"),
        ("OnSaleOrderSaved", "shop_order", "changed"),  # sale docs spell names in mixed case
        ("ONSALEBEFOREORDERDELETE", "shop_order", "deleted"),
    ],
)
def test_bitrix_event_names(name: str, entity: str, action: str) -> None:
    form = bitrix_form(
        event=name, **{"data[FIELDS][XML_ID]": "bx-1", "data[FIELDS][ACTION]": "save"}
    )
    [event] = bitrix().parse_webhook(request(form, FORM))
    assert (event.entity, event.action) == (entity, action)
    # With orders kept as shop orders, the shop's events are the orders and deals are not.
    shop = build(BITRIX, "bitrix", WebhookAuth.CONNECTOR, TOKEN, orders="shop")
    [event] = shop.parse_webhook(request(form, FORM))
    swapped = {"order": "deal", "shop_order": "order"}.get(entity, entity)
    assert (event.entity, event.action) == (swapped, action)
    assert event.source_key == f"{name.upper()}:7405:1766047124"
    assert event.payload["fields"] == {"ID": "7405", "XML_ID": "bx-1", "ACTION": "save"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (bitrix_form(**{"auth[application_token]": None}), r"^auth\[application_token\]: is req"),
        (bitrix_form(**{"auth[application_token]": ""}), r"^auth\[application_token\]: is req"),
        (bitrix_form(**{"auth[application_token]": TOKEN + "x"}), r"does not match"),
        (bitrix_form() + "&auth%5Bapplication_token%5D=x", r"given more than once"),
        ('{"event": "ONCRMDEALUPDATE", "auth": {"application_token": "x"}}', r"is required"),
        (b"\xff\xfe\x00garbage", r"is required"),
    ],
)
def test_bitrix_refuses_a_missing_or_wrong_token(body: str | bytes, message: str) -> None:
    with pytest.raises(AuthError, match=message):
        bitrix().parse_webhook(request(body, FORM))


def test_bitrix_leaves_the_token_to_the_core_when_auth_is_query() -> None:
    form = bitrix_form(**{"auth[application_token]": None})
    [event] = bitrix(WebhookAuth.QUERY).parse_webhook(request(form, FORM))
    assert event.entity_id == "7405"


NESTED_JUNK = "&".join(f"data[FIELDS][ID]{'[x]' * (i % 50)}[{i}]=1" for i in range(5000))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (bitrix_form(event="ONCRMLEADADD"), r"^event: 'ONCRMLEADADD' is not an event"),
        (bitrix_form(event=None), r"^event: is required"),
        (bitrix_form(event="ONCRM DEAL"), r"^event: must be a Bitrix event name"),
        (bitrix_form() + "&event=%FF%FE", r"^event: given more than once"),
        (bitrix_form(event=None) + "&event=%FF%FE", r"^event: must be a Bitrix event name"),
        (bitrix_form(**{"data[FIELDS][ID]": None}), r"^data\[FIELDS\]\[ID\]: is required"),
        (bitrix_form(**{"data[FIELDS][ID]": "7e3"}), r"^data\[FIELDS\]\[ID\]: must be an int"),
        (bitrix_form(ts=None), r"^ts: is required"),
        (bitrix_form(ts="yesterday"), r"^ts: must be UNIX seconds"),
        (
            bitrix_form(**{"data[FIELDS][ID]": None}) + "&" + NESTED_JUNK,
            r"^data\[FIELDS\]\[ID\]: is required",
        ),
        (
            bitrix_form() + "&" + "&".join(f"data[FIELDS][F{i}]=1" for i in range(200)),
            r"^data\[FIELDS\]: at most 100",
        ),
    ],
)
def test_bitrix_rejects(body: str, message: str) -> None:
    with pytest.raises(WebhookRejected, match=message):
        bitrix().parse_webhook(request(body, FORM))


def test_bitrix_non_utf8_value_outside_the_keys_we_read_is_kept_replaced() -> None:
    body = bitrix_form().encode() + b"&data%5BFIELDS%5D%5BXML_ID%5D=%FF%FE"
    [event] = bitrix().parse_webhook(request(body, FORM))
    assert event.payload["fields"]["XML_ID"] == "\ufffd\ufffd"


# -- nothing but the two documented errors escapes -----------------------------------------


def junk_bodies() -> list[bytes]:
    rng = random.Random(7)  # seeded: the same junk every run
    bodies = [rng.randbytes(rng.randint(0, 300)) for _ in range(200)]
    bodies += [b"", b"\x00", b"{}", b"[]", b"null", b'"x"', b"1e999", b"&&&==&", b"%", b"%zz=%"]
    bodies += [b'{"events": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", b"a=" + b"%" * 10_000]
    form = bitrix_form().encode()
    bodies += [form[:cut] for cut in range(0, len(form), 7)]
    return bodies


@pytest.mark.parametrize("make", [onec, retailcrm, bitrix], ids=["onec", "retailcrm", "bitrix"])
def test_junk_raises_only_rejected_or_auth(make: object) -> None:
    assert callable(make)
    connector = make()
    reasons = []
    for body in junk_bodies():
        for content_type in (JSON, FORM, "text/plain"):
            try:
                connector.parse_webhook(request(body, content_type))
            except (WebhookRejected, AuthError) as exc:
                reasons.append(str(exc))
    assert reasons
    assert all(reasons)
