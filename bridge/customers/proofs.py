"""Proofs that a caller controls a phone: short-lived tokens signed with an HMAC key.

A proof is ``v1.<payload>.<signature>``: the payload (base64url JSON) names the phone and
when the proof ends, the signature is HMAC-SHA256 over ``v1.<payload>`` with a key the
bridge alone holds (``customers.proof_key`` from the environment, or a random one kept in
the store). Nothing is stored per proof: any instance checks any proof; a proof cannot be
taken back before it ends, so it lives minutes (``customers.proof_ttl_seconds``), and it is
never logged (it is a bearer credential, like the codes it comes from).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from bridge.errors import BridgeError

_VERSION = "v1"
MAX_PROOF_CHARACTERS = 512


class ProofRefused(BridgeError):
    """The proof cannot be taken: ``code`` is ``proof_required``, ``proof_invalid`` or
    ``proof_expired`` (all answered 401)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Proof:
    """A checked proof: the phone it is for, and until when."""

    phone: str
    expires_at: float


class ProofBook:
    """Signs and checks proofs with one key."""

    def __init__(self, key: bytes, ttl_seconds: float, clock: Callable[[], float]) -> None:
        self._key = key
        self._ttl = ttl_seconds
        self._clock = clock

    def issue(self, phone: str, ttl_seconds: float | None = None) -> tuple[str, float]:
        """A new proof for ``phone`` and when it ends."""
        expires = self._clock() + (self._ttl if ttl_seconds is None else ttl_seconds)
        # The nonce makes two proofs of one phone and second differ (nothing else needs it).
        payload = {"p": phone, "e": round(expires, 3), "n": secrets.token_hex(6)}
        body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
        signed = f"{_VERSION}.{body}"
        return f"{signed}.{self._sign(signed)}", expires

    def check(self, token: str | None) -> Proof:
        """The phone ``token`` proves; ProofRefused when it is missing, not one of the
        bridge's, altered, or past its end."""
        if not token or not token.strip():
            raise ProofRefused("proof_required", "X-Customer-Proof is required: verify the phone")
        token = token.strip()
        parts = token.split(".")
        # Only ASCII can be one of ours (compare_digest refuses other text with a TypeError).
        bad_shape = len(token) > MAX_PROOF_CHARACTERS or not token.isascii()
        if bad_shape or len(parts) != 3 or parts[0] != _VERSION:
            raise ProofRefused("proof_invalid", "X-Customer-Proof is not a proof of this bridge")
        signed = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._sign(signed), parts[2]):
            raise ProofRefused("proof_invalid", "X-Customer-Proof is not a proof of this bridge")
        try:
            payload = json.loads(_unb64(parts[1]))
            phone, expires = str(payload["p"]), float(payload["e"])
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            # Signed by this key but unreadable: only a key leak or a bug makes one.
            raise ProofRefused("proof_invalid", "X-Customer-Proof cannot be read") from exc
        if expires <= self._clock():
            raise ProofRefused("proof_expired", "the proof has expired: verify the phone again")
        return Proof(phone, expires)

    def _sign(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
