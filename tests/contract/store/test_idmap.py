"""The id map: pairs between systems, looked up both ways, and aliases after merges."""

from __future__ import annotations

import pytest

from bridge.errors import StoreError
from bridge.store import Store


async def test_id_map_both_directions(store: Store) -> None:
    await store.map_ids("order", "onec", "17", "retailcrm", "A-17")
    assert await store.lookup_id("order", "onec", "17", "retailcrm") == "A-17"
    assert await store.lookup_id("order", "retailcrm", "A-17", "onec") == "17"
    assert await store.lookup_id("order", "onec", "18", "retailcrm") is None
    assert await store.lookup_id("customer", "onec", "17", "retailcrm") is None
    assert await store.lookup_id("order", "onec", "17", "bitrix") is None


async def test_a_new_pair_replaces_the_old_one_of_the_same_local_id(store: Store) -> None:
    await store.map_ids("order", "onec", "17", "retailcrm", "A-17")
    await store.map_ids("order", "onec", "17", "retailcrm", "B-17")
    assert await store.lookup_id("order", "onec", "17", "retailcrm") == "B-17"
    assert await store.lookup_id("order", "retailcrm", "A-17", "onec") is None
    await store.map_ids("order", "onec", "18", "retailcrm", "A-17")  # free again


async def test_a_peer_id_means_one_local_id(store: Store) -> None:
    await store.map_ids("order", "onec", "17", "retailcrm", "A-17")
    with pytest.raises(StoreError):
        await store.map_ids("order", "onec", "18", "retailcrm", "A-17")
    assert await store.lookup_id("order", "retailcrm", "A-17", "onec") == "17"


async def test_aliases_follow_merges_to_the_survivor(store: Store) -> None:
    assert await store.resolve_alias("customer", "retailcrm", "1") is None
    await store.alias_id("customer", "retailcrm", "1", "1")  # not a merge
    assert await store.resolve_alias("customer", "retailcrm", "1") is None
    await store.alias_id("customer", "retailcrm", "1", "2")
    await store.alias_id("customer", "retailcrm", "2", "3")  # the survivor merged again
    assert await store.resolve_alias("customer", "retailcrm", "1") == "3"
    assert await store.resolve_alias("customer", "retailcrm", "2") == "3"
    assert await store.resolve_alias("customer", "retailcrm", "3") is None
    assert await store.resolve_alias("customer", "onec", "1") is None
    assert await store.resolve_alias("order", "retailcrm", "1") is None
    await store.alias_id("customer", "retailcrm", "3", "1")  # a cycle ends, not loops
    assert await store.resolve_alias("customer", "retailcrm", "1") == "3"
    await store.alias_id("customer", "retailcrm", "1", "4")  # an alias can be moved
    assert await store.resolve_alias("customer", "retailcrm", "1") == "4"
