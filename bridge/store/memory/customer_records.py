"""Customer records in memory (``bridge.store.customer_records``): the fake for fast tests.
One event loop and no awaits inside a step stand in for the databases' transactions."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from bridge.store.customer_records import CustomerRecord
from bridge.store.reservations import VersionConflict


class MemoryCustomerRecords:
    """Implements :class:`bridge.store.customer_records.CustomerRecords` in a dict."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._records: dict[tuple[str, str], CustomerRecord] = {}

    async def add_record(
        self, kind: str, key: str, subject: str, status: str, body: Mapping[str, Any]
    ) -> tuple[CustomerRecord, bool]:
        """Store a new record; (the stored one, False) when the key is taken."""
        found = self._records.get((kind, key))
        if found is not None:
            return found, False
        now = float(self._clock())
        record = CustomerRecord(kind, key, subject, status, _plain(body), 1, now, now)
        self._records[(kind, key)] = record
        return record, True

    async def get_record(self, kind: str, key: str) -> CustomerRecord | None:
        """One record, or None."""
        return self._records.get((kind, key))

    async def update_record(
        self, record: CustomerRecord, status: str, body: Mapping[str, Any]
    ) -> CustomerRecord:
        """Compare-and-set on the version."""
        stored = self._records.get((record.kind, record.key))
        if stored is None or stored.version != record.version:
            raise VersionConflict(f"{record.kind} {record.key} changed meanwhile")
        updated = replace(
            stored,
            status=status,
            body=_plain(body),
            version=stored.version + 1,
            updated_at=float(self._clock()),
        )
        self._records[(record.kind, record.key)] = updated
        return updated

    async def list_records(
        self,
        kind: str | None = None,
        *,
        subject: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[CustomerRecord]:
        """Oldest first, filtered."""
        found = [
            r
            for r in self._records.values()
            if (kind is None or r.kind == kind)
            and (subject is None or r.subject == subject)
            and (status is None or r.status == status)
        ]
        return sorted(found, key=lambda r: (r.created_at, r.kind, r.key))[:limit]

    async def count_records(self, kind: str) -> dict[str, int]:
        """Records of ``kind`` per status."""
        counts: dict[str, int] = {}
        for record in self._records.values():
            if record.kind == kind:
                counts[record.status] = counts.get(record.status, 0) + 1
        return counts


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A copy, as a database would keep it (a caller's later change does not leak in)."""
    return copy.deepcopy(dict(body))
