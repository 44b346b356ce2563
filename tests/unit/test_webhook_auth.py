"""Sender authentication: bearer, ?token=, Standard Webhooks signatures."""

from __future__ import annotations

import base64

import pytest
from pydantic import SecretStr

from bridge.settings import WebhookAuth, WebhookSettings
from bridge.webhook_auth import WebhookUnauthorized, sign_standard_webhook, verify_webhook

TOKEN = "hook-token-1234567890"
SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(b"another-key-another-key-another!").decode()
BODY = b'{"entity":"order","id":"1"}'
NOW = 1_800_000_000


def settings(auth: WebhookAuth, **kw: str) -> WebhookSettings:
    return WebhookSettings.model_validate({"auth": auth} | {k: SecretStr(v) for k, v in kw.items()})


def test_bearer() -> None:
    cfg = settings(WebhookAuth.BEARER, token=TOKEN)
    verify_webhook(cfg, {"Authorization": f"Bearer {TOKEN}"}, {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized, match="not valid"):
        verify_webhook(cfg, {"Authorization": "Bearer nope"}, {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized, match="required"):
        verify_webhook(cfg, {}, {"token": TOKEN}, BODY, NOW)  # query not allowed here


def test_query_token_for_senders_without_headers() -> None:
    cfg = settings(WebhookAuth.QUERY, token=TOKEN)
    verify_webhook(cfg, {}, {"token": TOKEN}, BODY, NOW)
    verify_webhook(cfg, {"Authorization": f"Bearer {TOKEN}"}, {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized):
        verify_webhook(cfg, {}, {"token": TOKEN + "x"}, BODY, NOW)


def signed(secret: str, stamp: int = NOW, msg_id: str = "msg_1") -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_standard_webhook(secret, msg_id, stamp, BODY),
    }


def test_standard_webhooks_signature() -> None:
    cfg = settings(WebhookAuth.HMAC, secret=SECRET)
    verify_webhook(cfg, signed(SECRET), {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized, match="no webhook-signature matches"):
        verify_webhook(cfg, signed(OTHER), {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized, match="no webhook-signature matches"):
        verify_webhook(cfg, signed(SECRET), {}, BODY + b" ", NOW)
    with pytest.raises(WebhookUnauthorized, match="headers are required"):
        verify_webhook(cfg, {}, {}, BODY, NOW)


def test_signature_rotation_accepts_any_listed_signature() -> None:
    cfg = settings(WebhookAuth.HMAC, secret=SECRET)
    headers = signed(SECRET)
    headers["webhook-signature"] = (
        signed(OTHER)["webhook-signature"] + " " + (headers["webhook-signature"])
    )
    verify_webhook(cfg, headers, {}, BODY, NOW)


def test_timestamp_tolerance_is_five_minutes() -> None:
    cfg = settings(WebhookAuth.HMAC, secret=SECRET)
    verify_webhook(cfg, signed(SECRET, NOW - 300), {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized, match="tolerance"):
        verify_webhook(cfg, signed(SECRET, NOW - 301), {}, BODY, NOW)
    with pytest.raises(WebhookUnauthorized, match="tolerance"):
        verify_webhook(cfg, signed(SECRET, NOW + 301), {}, BODY, NOW)
