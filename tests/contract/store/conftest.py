"""The store contract suite: every store, the same behaviour.

Each entry of ``STORES`` builds one store (not yet opened) on a test's folder and clock;
every test in this folder runs against each of them. A new store (PostgreSQL) joins by
adding an entry, skipping itself where its server is not available.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge.store import SQLiteStore, Store
from bridge.store.memory import MemoryStore
from bridge.store.records import InboundEvent, NewEvent
from tests.support.clock import Clock

LEASE = 30.0


StoreFactory = Callable[[Path, Clock], Store]

STORES: dict[str, StoreFactory] = {
    "memory": lambda _folder, clock: MemoryStore(lease_seconds=LEASE, clock=clock),
    "sqlite": lambda folder, clock: SQLiteStore(
        folder / "store.db", lease_seconds=LEASE, clock=clock
    ),
}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(STORES))
def unopened(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Store:
    """A store of each kind, not yet opened."""
    factory: StoreFactory = STORES[request.param]
    return factory(tmp_path, clock)


@pytest.fixture
async def store(unopened: Store) -> AsyncIterator[Store]:
    """A store of each kind, opened as a CLI command opens it (not serving)."""
    await unopened.open()
    yield unopened
    await unopened.close()


def change(
    key: str, entity_id: str = "1", entity: str = "order", *, source: str = "shop", **data: object
) -> NewEvent:
    """A change of ``entity`` ``entity_id`` from ``source``, routed to ``crm``."""
    return NewEvent(source, InboundEvent(key, entity, entity_id, "changed", dict(data)), ("crm",))
