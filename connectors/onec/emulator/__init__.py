"""The sandbox 1C and the test double of a real infobase: ``OnecEmulator`` serves one
``OnecLedger`` over SOAP and the HTTP service (``server.py``, ``soap.py``), with faults
injected through ``faults.py``. The infobase itself is plain state: the bonus ledger
(``ledger.py``, ``operations.py``) over customers' cards, questionnaires and registration
(``cards.py``, ``profiles.py``) over the documents (``documents.py``: customers, orders,
the change feed and listings, kept in ``customers.py``, ``orders.py``, ``listing.py``), and
the module's parameter checks (``checks.py``)."""

from connectors.onec.emulator.ledger import LedgerError, OnecLedger
from connectors.onec.emulator.server import OnecEmulator, naming_from_yaml

__all__ = ["LedgerError", "OnecEmulator", "OnecLedger", "naming_from_yaml"]
