"""Customer records in PostgreSQL (``bridge.store.customer_records``), in the store's
jobs; any number of instances share them. Each statement says what it does to a record."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from bridge.store.customer_records import CustomerRecord
from bridge.store.postgres.engine import Conn, fetchall, fetchone
from bridge.store.postgres.store import PostgresStore
from bridge.store.reservations import VersionConflict

_SELECT = (
    "SELECT kind, key, subject, status, body, version, created_at, updated_at FROM customer_records"
)


def _record(row: Sequence[Any]) -> CustomerRecord:
    return CustomerRecord(
        row[0], row[1], row[2], row[3], json.loads(row[4]), int(row[5]), row[6], row[7]
    )


async def _get(conn: Conn, kind: str, key: str) -> CustomerRecord | None:
    row = await fetchone(conn, f"{_SELECT} WHERE kind = %s AND key = %s", (kind, key))
    return None if row is None else _record(row)


class PostgresCustomerRecords:
    """Implements :class:`bridge.store.customer_records.CustomerRecords` beside a
    :class:`PostgresStore`."""

    def __init__(self, store: PostgresStore) -> None:
        self.store = store

    def _now(self) -> float:
        return float(self.store._clock())

    async def add_record(
        self, kind: str, key: str, subject: str, status: str, body: Mapping[str, Any]
    ) -> tuple[CustomerRecord, bool]:
        """Store a new record; (the stored one, False) when the key is taken (by this
        instance or another: the primary key decides)."""
        now, text = self._now(), json.dumps(dict(body), sort_keys=True)

        async def job(conn: Conn) -> tuple[CustomerRecord, bool]:
            # (new) -> status, version 1; a key already stored stays as it is.
            added = await fetchone(
                conn,
                "INSERT INTO customer_records VALUES (%s, %s, %s, %s, %s, 1, %s, %s)"
                " ON CONFLICT (kind, key) DO NOTHING RETURNING version",
                (kind, key, subject, status, text, now, now),
            )
            found = await _get(conn, kind, key)
            assert found is not None
            return found, added is not None

        return await self.store._write(job)

    async def get_record(self, kind: str, key: str) -> CustomerRecord | None:
        """One record, or None."""
        return await self.store._read(lambda conn: _get(conn, kind, key))

    async def update_record(
        self, record: CustomerRecord, status: str, body: Mapping[str, Any]
    ) -> CustomerRecord:
        """Compare-and-set on the version."""
        now, text = self._now(), json.dumps(dict(body), sort_keys=True)

        async def job(conn: Conn) -> CustomerRecord:
            # status, body -> the new ones, version + 1, only from the version read.
            changed = await fetchone(
                conn,
                "UPDATE customer_records SET status = %s, body = %s, version = version + 1,"
                " updated_at = %s WHERE kind = %s AND key = %s AND version = %s"
                " RETURNING version",
                (status, text, now, record.kind, record.key, record.version),
            )
            if changed is None:
                raise VersionConflict(f"{record.kind} {record.key} changed meanwhile")
            found = await _get(conn, record.kind, record.key)
            assert found is not None
            return found

        return await self.store._write(job)

    async def list_records(
        self,
        kind: str | None = None,
        *,
        subject: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[CustomerRecord]:
        """Oldest first, filtered."""
        where, args = [], list[Any]()
        for column, value in (("kind", kind), ("subject", subject), ("status", status)):
            if value is not None:
                where.append(f"{column} = %s")
                args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        sql = f"{_SELECT}{clause} ORDER BY created_at, kind, key LIMIT %s"

        async def job(conn: Conn) -> list[CustomerRecord]:
            return [_record(r) for r in await fetchall(conn, sql, (*args, limit))]

        return await self.store._read(job)

    async def count_records(self, kind: str) -> dict[str, int]:
        """Records of ``kind`` per status."""
        sql = "SELECT status, count(*) FROM customer_records WHERE kind = %s GROUP BY status"

        async def job(conn: Conn) -> dict[str, int]:
            return {str(r[0]): int(r[1]) for r in await fetchall(conn, sql, (kind,))}

        return await self.store._read(job)
