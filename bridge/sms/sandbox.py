"""The sandbox gateway: texts go to the store, where ``bridge sandbox messages`` and
``GET /sandbox/messages`` read them. Only for ``sandbox.enabled``; it holds codes in clear.
"""

from __future__ import annotations

from bridge.sms.gateway import SmsSent
from bridge.store.reservations import ReservationStore


class SandboxGateway:
    """Implements :class:`bridge.sms.gateway.SmsGateway` on the store's outbox table."""

    name = "sandbox"

    def __init__(self, store: ReservationStore) -> None:
        self._store = store

    async def send(self, phone: str, text: str, reference: str) -> SmsSent:
        """Keep the text; the message id is the outbox row."""
        number = await self._store.add_sandbox_message(phone, text, reference)
        return SmsSent(self.name, f"sandbox-{number}")

    async def close(self) -> None:
        """Nothing to release."""
