"""The id map in memory: id pairs between systems, and ids a system merged away."""

from __future__ import annotations

from bridge.errors import StoreError
from bridge.store.memory.log import Log


class MemoryIdMap(Log):
    """Id pairs between systems, and aliases within one (``bridge.store.sqlite.idmap``)."""

    async def map_ids(
        self, entity: str, system: str, local_id: str, peer_system: str, peer_id: str
    ) -> None:
        """Record an id pair (replacing an older pair for the same local id)."""
        state = await self._turn()
        key = (entity, system, local_id, peer_system)
        for (e, s, local, peer), mapped in state.id_map.items():
            if (e, s, peer, mapped) == (entity, system, peer_system, peer_id) and local != local_id:
                # The SQLite schema keeps a peer id unique too (id_map_peer).
                raise StoreError(
                    f"store write failed: {peer_system} {entity} {peer_id} is mapped to"
                    f" {system} {local} already"
                )
        state.id_map[key] = peer_id

    async def lookup_id(
        self, entity: str, system: str, local_id: str, peer_system: str
    ) -> str | None:
        """The id ``peer_system`` has for ``system``'s ``local_id``, in either direction."""
        state = await self._turn()
        found = state.id_map.get((entity, system, local_id, peer_system))
        if found is not None:
            return found
        for (e, s, local, peer), mapped in state.id_map.items():
            if (e, s, peer, mapped) == (entity, peer_system, system, local_id):
                return local
        return None

    async def alias_id(self, entity: str, system: str, alias_id: str, target_id: str) -> None:
        """Record that ``alias_id`` now means ``target_id`` in ``system`` (a merge)."""
        state = await self._turn()
        if alias_id != target_id:
            state.id_alias[(entity, system, alias_id)] = target_id

    async def resolve_alias(self, entity: str, system: str, local_id: str) -> str | None:
        """The id ``local_id`` now means after every merge since, or None if not merged."""
        state = await self._turn()
        found, seen = None, {local_id}
        while True:  # a merged survivor may be merged again later
            target = state.id_alias.get((entity, system, found or local_id))
            if target is None or target in seen:
                return found
            found = target
            seen.add(found)
