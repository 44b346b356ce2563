"""The memory store: the whole :class:`bridge.store.protocol.Store` in dicts, the fake
for fast tests (one process, nothing durable).

It follows the SQLite store concept by concept (``intake``, ``claims``, ``support`` with
replay, ``idmap``, ``backfills``, ``reservations``) on one :class:`~.log.Log`, and passes
the same contract suite (``tests/contract/store/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.store.memory.backfills import Backfills
from bridge.store.memory.claims import Claims
from bridge.store.memory.idmap import IdMap
from bridge.store.memory.intake import Intake
from bridge.store.memory.reservations import Reservations
from bridge.store.memory.support import Support
from bridge.store.protocol import Store


class MemoryStore(Intake, Claims, Support, IdMap, Backfills, Reservations):
    """Implements :class:`bridge.store.protocol.Store` in memory."""


__all__ = ["MemoryStore"]

if TYPE_CHECKING:  # mypy holds the fake to the whole protocol
    _checked: Store = MemoryStore()
