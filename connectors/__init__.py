"""Connectors joining the bridge to 1C, RetailCRM and Bitrix, found through entry points.

Every ``<system>/`` has the same rooms: ``client.py`` (the wire protocol, nothing from the
core), ``connector.py`` (the adapter to ``bridge.connector``'s protocols and the entry
point), ``master.py`` (the bonus ledger, where the system can be a master), ``webhooks.py``,
``options.py``, ``errors.py``, ``README.md`` and ``emulator/``; ``_emulator/`` is what the
emulators share.
"""
