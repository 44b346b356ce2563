"""The memory store: the whole :class:`bridge.store.protocol.Store` in dicts, the fake
for fast tests (one process, nothing durable).

It follows the SQLite store concept by concept (``intake``, ``claims``, ``support`` with
replay, ``idmap``, ``backfills``, ``reservations``, ``retention``) on one
:class:`~.log.Log`, and passes the same contract suite (``tests/contract/store/``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.store.memory.backfills import MemoryBackfills
from bridge.store.memory.claims import MemoryClaims
from bridge.store.memory.idmap import MemoryIdMap
from bridge.store.memory.intake import MemoryIntake
from bridge.store.memory.reservations import MemoryReservations
from bridge.store.memory.retention import MemoryRetention
from bridge.store.memory.support import MemorySupport
from bridge.store.protocol import Store


class MemoryStore(
    MemoryIntake,
    MemoryClaims,
    MemorySupport,
    MemoryIdMap,
    MemoryBackfills,
    MemoryReservations,
    MemoryRetention,
):
    """Implements :class:`bridge.store.protocol.Store` in memory."""


__all__ = ["MemoryStore"]

if TYPE_CHECKING:  # mypy holds the fake to the whole protocol
    _checked: Store = MemoryStore()
