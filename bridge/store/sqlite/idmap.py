"""The id map: which id an entity has in each system, and ids a system merged away."""

from __future__ import annotations

import sqlite3

from bridge.store.sqlite.engine import Engine


def resolve(conn: sqlite3.Connection, entity: str, system: str, local_id: str) -> str | None:
    """Follow ``local_id``'s aliases to the id it means now (None if it was not merged)."""
    found, seen = None, {local_id}
    while True:  # a merged survivor may be merged again later
        row = conn.execute(
            "SELECT target_id FROM id_alias WHERE entity = ? AND system = ? AND alias_id = ?",
            (entity, system, found or local_id),
        ).fetchone()
        if row is None or row[0] in seen:
            return found
        found = str(row[0])
        seen.add(found)


class SQLiteIdMap(Engine):
    """Id pairs between systems, and aliases within one."""

    async def map_ids(
        self, entity: str, system: str, local_id: str, peer_system: str, peer_id: str
    ) -> None:
        """Record an id pair (replacing an older pair for the same local id)."""
        now = self._clock()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO id_map VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (entity, system, local_id, peer_system)"
                " DO UPDATE SET peer_id = excluded.peer_id, updated_at = excluded.updated_at",
                (entity, system, local_id, peer_system, peer_id, now),
            )

        await self._write(job)

    async def lookup_id(
        self, entity: str, system: str, local_id: str, peer_system: str
    ) -> str | None:
        """The id ``peer_system`` has for ``system``'s ``local_id``, in either direction."""

        def job(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT peer_id FROM id_map WHERE entity = ? AND system = ? AND local_id = ?"
                " AND peer_system = ?"
                " UNION ALL SELECT local_id FROM id_map WHERE entity = ? AND peer_system = ?"
                " AND peer_id = ? AND system = ? LIMIT 1",
                (entity, system, local_id, peer_system, entity, system, local_id, peer_system),
            ).fetchone()
            return str(row[0]) if row else None

        return await self._read(job)

    async def alias_id(self, entity: str, system: str, alias_id: str, target_id: str) -> None:
        """Record that ``alias_id`` now means ``target_id`` in ``system`` (a merge)."""
        if alias_id == target_id:
            return
        now = self._clock()

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO id_alias VALUES (?, ?, ?, ?, ?) ON CONFLICT"
                " (entity, system, alias_id) DO UPDATE SET target_id = excluded.target_id",
                (entity, system, alias_id, target_id, now),
            )

        await self._write(job)

    async def resolve_alias(self, entity: str, system: str, local_id: str) -> str | None:
        """The id ``local_id`` now means after every merge since, or None if not merged."""
        return await self._read(lambda conn: resolve(conn, entity, system, local_id))
