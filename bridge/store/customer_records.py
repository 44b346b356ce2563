"""What the customer side of the bridge keeps (issue 17): phone verifications, card merges,
automatic registrations and programme notices, as keyed records of one table.

Each record is ``(kind, key)`` → a status and a small JSON body, about one ``subject``
(the customer's phone, E.164) so support sees a phone's whole story (``bridge customers
show``). ``add_record`` stores a key once (the first writer wins: one registration per
phone, one notice per phone); ``update_record`` is a compare-and-set on ``version``, so two
instances (or two owed calls of one merge) never overwrite each other's change.

A separate protocol beside :class:`bridge.store.protocol.Store`, like owed calls: each
engine grows it by a module of its own, found by :func:`customer_records_of`.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from bridge.errors import StoreError


class RecordKind:
    """The kinds kept (plain strings in the table)."""

    VERIFICATION = "verification"
    MERGE = "merge"
    MERGE_LOCK = "merge_lock"  # per phone: the merge running (one at a time)
    REGISTRATION = "registration"
    NOTICE = "notice"
    ADJUSTMENT = "adjustment"  # manual accruals and write-offs (issue 18)
    REPORT_FILE = "report_file"  # a sales report read by a files source (issue 18)


@dataclass(frozen=True)
class CustomerRecord:
    """One stored record; ``body`` is plain JSON."""

    kind: str
    key: str
    subject: str
    status: str
    body: Mapping[str, Any]
    version: int
    created_at: float
    updated_at: float


class CustomerRecords(Protocol):
    """Keyed records: add once, read, compare-and-set, list by subject or status."""

    async def add_record(
        self, kind: str, key: str, subject: str, status: str, body: Mapping[str, Any]
    ) -> tuple[CustomerRecord, bool]:
        """Store a new record; (the stored one, False) when ``(kind, key)`` is taken."""

    async def get_record(self, kind: str, key: str) -> CustomerRecord | None:
        """One record, or None."""

    async def update_record(
        self, record: CustomerRecord, status: str, body: Mapping[str, Any]
    ) -> CustomerRecord:
        """Replace status and body if the stored version is ``record.version``; raises
        ``VersionConflict`` when someone changed it meanwhile (read again and retry)."""

    async def list_records(
        self,
        kind: str | None = None,
        *,
        subject: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[CustomerRecord]:
        """Oldest first, filtered."""

    async def count_records(self, kind: str) -> dict[str, int]:
        """Records of ``kind`` per status."""


_MEMORY: weakref.WeakKeyDictionary[object, CustomerRecords] = weakref.WeakKeyDictionary()


def customer_records_of(store: object) -> CustomerRecords:
    """The customer records of an event store: in its SQLite file, its PostgreSQL database,
    or (the memory store) in memory, one per store."""
    # Imported here: the engines import this module's records, not the other way round.
    from bridge.store.memory import MemoryStore
    from bridge.store.memory.customer_records import MemoryCustomerRecords
    from bridge.store.sqlite.customer_records import SQLiteCustomerRecords
    from bridge.store.sqlite.store import SQLiteStore

    if isinstance(store, SQLiteStore):
        return SQLiteCustomerRecords(store)
    if isinstance(store, MemoryStore):
        found = _MEMORY.get(store)
        if found is None:
            found = _MEMORY[store] = MemoryCustomerRecords(clock=store._clock)
        return found
    from bridge.store.postgres.customer_records import PostgresCustomerRecords
    from bridge.store.postgres.store import PostgresStore

    if isinstance(store, PostgresStore):
        return PostgresCustomerRecords(store)
    raise StoreError(f"{type(store).__name__} keeps no customer records")
