"""The sandbox Bitrix24 portal and the test double of a real one: ``BitrixEmulator``
(``server.py``) serves REST over HTTP (``wire.py``, ``dispatch.py``, ``calls.py``) with
webhooks and OAuth (``auth.py``, ``portal.py``), CRM items, legacy methods and shop orders
(``crm.py``, ``crm_items.py``, ``crm_legacy.py``, ``fields.py``, ``sale.py``), events and
the offline queue (``events.py``, ``offline.py``), and the cloud's limits and injected
faults (``limits.py``, over the shared ``connectors/_emulator/faults.py``)."""

from connectors.bitrix.emulator.server import (
    DEFAULT_APPLICATION_TOKEN,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    BitrixEmulator,
    sandbox_emulator,
)

__all__ = [
    "DEFAULT_APPLICATION_TOKEN",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "BitrixEmulator",
    "sandbox_emulator",
]
