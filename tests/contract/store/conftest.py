"""The store contract suite: every store, the same behaviour.

Each entry of ``STORES`` builds one store (not yet opened) on a test's folder and clock;
every test in this folder runs against each of them. A new store (PostgreSQL) joins by
adding an entry (PostgreSQL's runs on the machine's server and fails, not skips, when
that server is not reachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from bridge.store import SQLiteStore, Store
from bridge.store.memory import MemoryStore
from bridge.store.postgres import PostgresStore
from bridge.store.records import InboundEvent, NewEvent
from tests.support.clock import Clock

LEASE = 30.0


StoreFactory = Callable[[pytest.FixtureRequest, Path, Clock], Store]

STORES: dict[str, StoreFactory] = {
    "memory": lambda _request, _folder, clock: MemoryStore(lease_seconds=LEASE, clock=clock),
    "sqlite": lambda _request, folder, clock: SQLiteStore(
        folder / "store.db", lease_seconds=LEASE, clock=clock
    ),
    # The run's own database, emptied for each test (tests/support/postgres.py).
    "postgresql": lambda request, _folder, clock: PostgresStore(
        request.getfixturevalue("postgres_url"), lease_seconds=LEASE, clock=clock
    ),
}
# Stores several instances share: a lease another holds is not proof that it is gone.
SHARED = frozenset({"postgresql"})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=sorted(STORES))
def unopened(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Store:
    """A store of each kind, not yet opened."""
    factory: StoreFactory = STORES[request.param]
    return factory(request, tmp_path, clock)


@pytest.fixture
def shared(request: pytest.FixtureRequest) -> bool:
    """Whether the store under test may be served by several instances at once."""
    return request.node.callspec.params.get("unopened") in SHARED


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
