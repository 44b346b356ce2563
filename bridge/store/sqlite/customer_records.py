"""Customer records in SQLite (``bridge.store.customer_records``), on the store's writer
and readers. Each statement is commented with what it does to a record."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.store.customer_records import CustomerRecord
from bridge.store.reservations import VersionConflict
from bridge.store.sqlite.store import SQLiteStore

_SELECT = (
    "SELECT kind, key, subject, status, body, version, created_at, updated_at FROM customer_records"
)


def _record(row: Sequence[Any]) -> CustomerRecord:
    return CustomerRecord(
        row[0], row[1], row[2], row[3], json.loads(row[4]), int(row[5]), row[6], row[7]
    )


def add(
    conn: sqlite3.Connection,
    kind: str,
    key: str,
    subject: str,
    status: str,
    body: Mapping[str, Any],
    now: float,
) -> tuple[CustomerRecord, bool]:
    """(new) -> status, version 1; a key already stored stays as it is."""
    cursor = conn.execute(
        "INSERT INTO customer_records VALUES (?, ?, ?, ?, ?, 1, ?, ?)"
        " ON CONFLICT (kind, key) DO NOTHING",
        (kind, key, subject, status, json.dumps(dict(body), sort_keys=True), now, now),
    )
    row = conn.execute(f"{_SELECT} WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    return _record(row), cursor.rowcount == 1


def get(conn: sqlite3.Connection, kind: str, key: str) -> CustomerRecord | None:
    """One record."""
    row = conn.execute(f"{_SELECT} WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    return None if row is None else _record(row)


def update(
    conn: sqlite3.Connection,
    record: CustomerRecord,
    status: str,
    body: Mapping[str, Any],
    now: float,
) -> CustomerRecord:
    """status, body -> the new ones, version + 1, only from the version the caller read."""
    cursor = conn.execute(
        "UPDATE customer_records SET status = ?, body = ?, version = version + 1,"
        " updated_at = ? WHERE kind = ? AND key = ? AND version = ?",
        (
            status,
            json.dumps(dict(body), sort_keys=True),
            now,
            record.kind,
            record.key,
            record.version,
        ),
    )
    if cursor.rowcount != 1:
        raise VersionConflict(f"{record.kind} {record.key} changed meanwhile")
    found = get(conn, record.kind, record.key)
    assert found is not None
    return found


def listing(
    conn: sqlite3.Connection,
    kind: str | None,
    subject: str | None,
    status: str | None,
    limit: int,
) -> list[CustomerRecord]:
    """Oldest first, by the filters given."""
    where, args = [], list[Any]()
    for column, value in (("kind", kind), ("subject", subject), ("status", status)):
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    rows = conn.execute(
        f"{_SELECT}{clause} ORDER BY created_at, kind, key LIMIT ?", (*args, limit)
    ).fetchall()
    return [_record(r) for r in rows]


def counts(conn: sqlite3.Connection, kind: str) -> dict[str, int]:
    """Per status."""
    rows = conn.execute(
        "SELECT status, count(*) FROM customer_records WHERE kind = ? GROUP BY status", (kind,)
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


class SQLiteCustomerRecords:
    """Implements :class:`bridge.store.customer_records.CustomerRecords` beside a
    :class:`SQLiteStore`, on its writer and readers."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store

    def _now(self) -> float:
        return float(self.store._clock())

    async def add_record(
        self, kind: str, key: str, subject: str, status: str, body: Mapping[str, Any]
    ) -> tuple[CustomerRecord, bool]:
        """Store a new record; (the stored one, False) when the key is taken."""
        now = self._now()
        return await self.store._write(lambda c: add(c, kind, key, subject, status, body, now))

    async def get_record(self, kind: str, key: str) -> CustomerRecord | None:
        """One record, or None."""
        return await self.store._read(lambda c: get(c, kind, key))

    async def update_record(
        self, record: CustomerRecord, status: str, body: Mapping[str, Any]
    ) -> CustomerRecord:
        """Compare-and-set on the version."""
        now = self._now()
        return await self.store._write(lambda c: update(c, record, status, body, now))

    async def list_records(
        self,
        kind: str | None = None,
        *,
        subject: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[CustomerRecord]:
        """Oldest first, filtered."""
        return await self.store._read(lambda c: listing(c, kind, subject, status, limit))

    async def count_records(self, kind: str) -> dict[str, int]:
        """Records of ``kind`` per status."""
        return await self.store._read(lambda c: counts(c, kind))
