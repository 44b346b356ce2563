"""Calls the bridge owes a system: stored first, made under an operation id, retried by
the shared policy, recovered after ``kill -9``, shown by ``bridge status`` and replayed
by ``bridge replay own_…``.

``calls`` (the record), ``handlers`` (operation kind → handler), ``sweeper`` (claims and
runs due calls); the store side is ``bridge.store.owed``. The package's root imports
only the records, so a store can import them without importing the sweeper.
"""

from __future__ import annotations

from bridge.owed.calls import NewOwedCall, OwedCall, OwedOutcome, OwedStatus

__all__ = ["NewOwedCall", "OwedCall", "OwedOutcome", "OwedStatus"]
