"""The id map: which id an entity has in each system, and where merges moved it.

A delivery learns the target's id of its entity here before it is written (its own pair
with the target, or the pair of the system it first came from), follows a merge in the
source (RetailCRM's ``combinedTo``) to the survivor before the source is read, and keeps
the pair of ids a target gave after the write (PRODUCT 3.3: "id map updated").
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping
from typing import Any

from bridge.connector import DeliveryJob
from bridge.errors import StoreError
from bridge.logs import get_logger
from bridge.store.protocol import Store

log = get_logger("bridge.idmap")


class IdMap:
    """Id-map look-ups and records of the dispatcher, on the store's ``id_map``."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def follow_merges(self, jobs: list[DeliveryJob]) -> list[DeliveryJob]:
        """A job of an entity its source merged into another is the survivor's job: the
        survivor is read and written (under its own key), not a copy of the absorbed one.
        The jobs are looked up together."""

        async def follow(job: DeliveryJob) -> DeliveryJob:
            try:
                survivor = await self._store.resolve_alias(job.entity, job.source, job.entity_id)
            except StoreError:
                survivor = None  # not known now: the absorbed id is read (and followed there)
            return job if survivor is None else dataclasses.replace(job, entity_id=survivor)

        return list(await asyncio.gather(*(follow(job) for job in jobs)))

    async def mapped_id(self, job: DeliveryJob, source: Mapping[str, Any]) -> str | None:
        """The target's id of the entity from the id map: its own pair with the target, or,
        for an entity that came from a third system (1C reports ``bitrix-7``, Bitrix's deal
        7, on its way to RetailCRM), the pair of the system it came from, so each system
        keeps one copy however many routes it is reached by."""
        try:
            found = await self._store.lookup_id(job.entity, job.source, job.entity_id, job.target)
            for system, own in _origins(job, source):
                if found is not None:
                    break
                found = await self._store.lookup_id(job.entity, system, own, job.target)
            # The target may have merged that one into another since (RetailCRM's combinedTo).
            merged = None
            if found is not None:
                merged = await self._store.resolve_alias(job.entity, job.target, found)
            return merged or found
        except StoreError:
            return None  # the sink falls back to its upsert by external id

    async def map_ids(self, jobs: list[DeliveryJob], refs: dict[str, str]) -> None:
        """Keep the pairs of ids the targets gave (PRODUCT 3.3: "id map updated"): balance
        look-ups by another system's customer id and write-backs find the entity by them.
        The pairs of a batch are written together (SQLite's writer commits them at once, not
        one commit after another)."""

        async def keep(job: DeliveryJob, peer: str) -> None:
            try:
                await self._store.map_ids(job.entity, job.source, job.entity_id, job.target, peer)
            except StoreError as exc:  # the write landed; the pair is only a convenience
                log.warning("id_map_not_recorded", delivery_id=job.delivery_id, error=str(exc))

        pairs = [(job, refs[job.delivery_id]) for job in jobs if job.delivery_id in refs]
        await asyncio.gather(*(keep(job, peer) for job, peer in pairs))


def target_ref(job: DeliveryJob, source: Mapping[str, Any]) -> str | None:
    """The target's own id of an entity that started in the target.

    Every sink keys what the bridge writes by ``<source>-<id>`` (``DeliveryJob.external_id``),
    so an entity known by such a key (as its id, or as the external id its source keeps)
    names the target it came from and its id there: 1C reports an order the bridge saved
    as ``retailcrm-77``; RetailCRM shows an order the bridge created from 1C with
    ``externalId: onec-12``. Writing back then goes to RetailCRM's 77 or 1C's 12, never to
    a second copy.
    """
    prefix = f"{job.target}-"
    if job.entity_id.startswith(prefix) and len(job.entity_id) > len(prefix):
        return job.entity_id[len(prefix) :]
    for key in ("externalId", "external_id"):
        value = source.get(key)
        if isinstance(value, str) and value.startswith(prefix) and len(value) > len(prefix):
            return value[len(prefix) :]
    return None


def _origins(job: DeliveryJob, source: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(system, id) pairs the bridge's ``<system>-<id>`` keys on the entity name: its id,
    or the external id its source keeps (see :func:`target_ref`)."""
    found: list[tuple[str, str]] = []
    for value in (job.entity_id, source.get("externalId"), source.get("external_id")):
        if not isinstance(value, str):
            continue
        system, dash, own = value.partition("-")
        named = dash and own and system.isidentifier()
        if named and system not in (job.source, job.target) and (system, own) not in found:
            found.append((system, own))
    return found
