"""Confirmation codes: made from the OS's CSPRNG, kept only as an HMAC.

NIST SP 800-63B and OWASP (loyalty-and-reliability-anchors.md §5.1): a code of 6 digits
from an approved random generator, single use, short-lived, never stored or logged in
clear. The HMAC key is a random secret kept in the store (table ``secrets``): codes never
appear in dumps, logs or support views, a digest is bound to its reservation, and phones in
the SMS accounting table are pseudonyms.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable


class CodeBook:
    """Makes codes and checks them against their stored digests."""

    def __init__(
        self, key: bytes, length: int, randbelow: Callable[[int], int] = secrets.randbelow
    ) -> None:
        self._key = key
        self._length = length
        self._randbelow = randbelow

    def new_code(self) -> str:
        """``length`` decimal digits, leading zeros kept."""
        return str(self._randbelow(10**self._length)).zfill(self._length)

    def digest(self, reservation_id: str, code: str) -> str:
        """The stored form: bound to the reservation, so a digest is useless elsewhere."""
        return self._mac(f"code:{reservation_id}:{code}")

    def matches(self, reservation_id: str, code: str, digest: str) -> bool:
        """Constant-time comparison with the stored digest."""
        return hmac.compare_digest(self.digest(reservation_id, code), digest)

    def phone_key(self, phone: str) -> str:
        """A pseudonym of the phone for per-phone counting."""
        return self._mac(f"phone:{phone}")

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()
