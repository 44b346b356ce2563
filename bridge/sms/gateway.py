"""What the bonus service asks of an SMS gateway, and the errors a gateway raises.

A gateway sends one text to one phone. It never logs the text (it carries a code); it
logs the masked phone and the provider's message id. ``SmsRejected`` means the provider
refused this message for good (bad number, banned text, no money on the account) and a
resend will not help; ``SmsUnavailable`` means it could not be reached or answered 5xx.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.errors import PermanentError, TransientError


class SmsRejected(PermanentError):
    """The provider refused the message (its reason, never the text, is the message)."""


class SmsUnavailable(TransientError):
    """The provider could not be reached, timed out, or failed on its side."""


@dataclass(frozen=True)
class SmsSent:
    """The provider's receipt."""

    gateway: str
    message_id: str | None  # the provider's id, when it gives one


@runtime_checkable
class SmsGateway(Protocol):
    """Sends texts; one instance per process, safe to call concurrently."""

    name: str

    async def send(self, phone: str, text: str, reference: str) -> SmsSent:
        """Send ``text`` to ``phone`` (E.164 digits with ``+``); ``reference`` is the
        bridge's id for the message (the reservation), for the provider's logs."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...
