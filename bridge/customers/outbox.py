"""Whether a text went out, for a send cut short between "about to send" and "sent".

A registration's welcome SMS and a programme notice mark a phone ``sending`` before the
gateway is called and ``sent`` after it answers; a process killed in between leaves
``sending``, and only the gateway can say whether the text left. The sandbox gateway keeps
each text with its ``reference`` in the store, so it can tell; an HTTP provider's API, as
the bridge uses it, cannot be asked by our reference, so there the answer is "cannot tell"
(``None``) and the caller does not resend (one SMS at most, rather than two).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bridge.sms.gateway import SmsGateway
from bridge.sms.sandbox import SandboxGateway
from bridge.store.reservations import ReservationStore

# How many of a phone's newest sandbox texts are searched for a reference: far more than
# a phone gets while one send is cut short.
_SEARCHED = 1000

SentCheck = Callable[[str, str], Awaitable[bool]]


def sent_check(gateway: SmsGateway, store: ReservationStore) -> SentCheck | None:
    """``check(phone, reference)`` → whether the gateway sent that text; None when the
    gateway cannot tell."""
    if not isinstance(gateway, SandboxGateway):
        return None

    async def check(phone: str, reference: str) -> bool:
        messages = await store.list_sandbox_messages(phone, _SEARCHED)
        return any(message.reference == reference for message in messages)

    return check
