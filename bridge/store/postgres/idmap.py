"""The id map: which id an entity has in each system, and ids a system merged away."""

from __future__ import annotations

from bridge.store.postgres.engine import Conn, Engine, fetchone


async def resolve(conn: Conn, entity: str, system: str, local_id: str) -> str | None:
    """Follow ``local_id``'s aliases to the id it means now (None if it was not merged)."""
    found, seen = None, {local_id}
    while True:  # a merged survivor may be merged again later
        row = await fetchone(
            conn,
            "SELECT target_id FROM id_alias WHERE entity = %s AND system = %s AND alias_id = %s",
            (entity, system, found or local_id),
        )
        if row is None or row[0] in seen:
            return found
        found = str(row[0])
        seen.add(found)


async def lookup(
    conn: Conn, entity: str, system: str, local_id: str, peer_system: str
) -> str | None:
    """The id ``peer_system`` has for ``system``'s ``local_id``, in either direction."""
    row = await fetchone(
        conn,
        "SELECT peer_id FROM id_map WHERE entity = %s AND system = %s AND local_id = %s"
        " AND peer_system = %s"
        " UNION ALL SELECT local_id FROM id_map WHERE entity = %s AND peer_system = %s"
        " AND peer_id = %s AND system = %s LIMIT 1",
        (entity, system, local_id, peer_system, entity, system, local_id, peer_system),
    )
    return str(row[0]) if row else None


class PostgresIdMap(Engine):
    """Id pairs between systems, and aliases within one."""

    async def map_ids(
        self, entity: str, system: str, local_id: str, peer_system: str, peer_id: str
    ) -> None:
        """Record an id pair (replacing an older pair for the same local id)."""
        now = self._clock()
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO id_map VALUES (%s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (entity, system, local_id, peer_system)"
                " DO UPDATE SET peer_id = excluded.peer_id, updated_at = excluded.updated_at",
                (entity, system, local_id, peer_system, peer_id, now),
            )
        )

    async def lookup_id(
        self, entity: str, system: str, local_id: str, peer_system: str
    ) -> str | None:
        """The id ``peer_system`` has for ``system``'s ``local_id``, in either direction."""
        return await self._read(lambda conn: lookup(conn, entity, system, local_id, peer_system))

    async def alias_id(self, entity: str, system: str, alias_id: str, target_id: str) -> None:
        """Record that ``alias_id`` now means ``target_id`` in ``system`` (a merge)."""
        if alias_id == target_id:
            return
        now = self._clock()
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO id_alias VALUES (%s, %s, %s, %s, %s) ON CONFLICT"
                " (entity, system, alias_id) DO UPDATE SET target_id = excluded.target_id",
                (entity, system, alias_id, target_id, now),
            )
        )

    async def resolve_alias(self, entity: str, system: str, local_id: str) -> str | None:
        """The id ``local_id`` now means after every merge since, or None if not merged."""
        return await self._read(lambda conn: resolve(conn, entity, system, local_id))
