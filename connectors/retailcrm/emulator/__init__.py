"""The sandbox RetailCRM and the test double of a real account: ``RetailcrmEmulator``
(``server.py``) serves API v5 over one in-memory account — orders and customers
(``state.py``, ``orders.py``, ``history.py``, ``search.py``, ``seed.py``), loyalty
(``loyalty.py``, ``bonuses.py``, ``checkout.py``), statuses, merges and corporate customers
(``routes.py``, ``statuses.py``, ``merges.py``, ``corporate.py``), the catalogue, and the
API's wire conventions (``wire.py``)."""

from connectors.retailcrm.emulator.server import DEFAULT_KEYS, RetailcrmEmulator

__all__ = ["DEFAULT_KEYS", "RetailcrmEmulator"]
