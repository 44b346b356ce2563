"""Proving who sent a webhook: bearer header, ``?token=``, or a Standard Webhooks signature.

Standard Webhooks (loyalty-and-reliability-anchors §2.3): headers ``webhook-id``,
``webhook-timestamp``, ``webhook-signature``; the signed content is
``{id}.{timestamp}.{body}``; signatures are ``v1,<base64 HMAC-SHA256>``, several separated
by spaces during key rotation; the secret is ``whsec_<base64>``; ±5 min tolerance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping

from bridge.errors import BridgeError
from bridge.settings import WebhookAuth, WebhookSettings


class WebhookUnauthorized(BridgeError):
    """The sender did not prove who it is; the message says what was missing."""


def _same(a: str, b: str) -> bool:
    # Header values may hold bytes that are not UTF-8; they must fail the match, not crash.
    return hmac.compare_digest(
        a.encode("utf-8", "backslashreplace"), b.encode("utf-8", "backslashreplace")
    )


def sign_standard_webhook(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of a message (used by tests and the sandbox)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def verify_webhook(
    cfg: WebhookSettings,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    body: bytes,
    now: float,
) -> None:
    """Raise :class:`WebhookUnauthorized` unless the request proves its sender."""
    if cfg.auth is WebhookAuth.CONNECTOR:
        return  # the connector's parser checks the token carried in the body
    if cfg.auth is WebhookAuth.HMAC:
        _verify_signature(cfg, headers, body, now)
        return
    assert cfg.token is not None  # guaranteed by WebhookSettings validation
    expected = cfg.token.get_secret_value()
    header = headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        if _same(given.strip(), expected):
            return
        raise WebhookUnauthorized("the bearer token is not valid")
    if cfg.auth is WebhookAuth.QUERY and "token" in query:
        if _same(query["token"], expected):
            return
        raise WebhookUnauthorized("the token parameter is not valid")
    wanted = "an Authorization: Bearer header" + (
        " or a ?token= parameter" if cfg.auth is WebhookAuth.QUERY else ""
    )
    raise WebhookUnauthorized(f"{wanted} is required")


def _verify_signature(
    cfg: WebhookSettings, headers: Mapping[str, str], body: bytes, now: float
) -> None:
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not (msg_id and stamp and signatures):
        raise WebhookUnauthorized(
            "webhook-id, webhook-timestamp and webhook-signature headers are required"
        )
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise WebhookUnauthorized("webhook-timestamp must be UNIX seconds")
    if abs(now - int(stamp)) > cfg.tolerance_seconds:
        raise WebhookUnauthorized("webhook-timestamp is outside the allowed tolerance")
    assert cfg.secret is not None  # guaranteed by WebhookSettings validation
    try:
        expected = sign_standard_webhook(cfg.secret.get_secret_value(), msg_id, int(stamp), body)
    except (binascii.Error, ValueError) as exc:
        raise WebhookUnauthorized("the configured secret is not valid base64") from exc
    for candidate in signatures.split():
        if candidate.startswith("v1,") and _same(candidate, expected):
            return
    raise WebhookUnauthorized("no webhook-signature matches")
