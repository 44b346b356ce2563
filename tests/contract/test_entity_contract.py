"""What every mirroring connector must do as a target (and, where it reads and lists, as a
source), over the wire against its own emulator, whatever its protocol.

The core relies on these (bridge/connector.py): a delivery is applied once however often
it is tried; a later state of an entity updates the one copy; the id a target gives reads
that entity back; a batch answers per job and one bad document fails alone; a target that
is down is retried, one asking to slow down is waited for; a listing walks every entity
once. Variants (1C over SOAP and its HTTP service, RetailCRM, Bitrix24 by webhook and as
an OAuth app) live in entity_variants.py; a point a target cannot have is skipped by its
declared capability, and one it is known to break is a strict xfail naming why.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.connector import BatchSink, DeliveryJob, EntityLister, EntityReader, Sink
from bridge.errors import DeliveryError, ErrorClass, RateLimited, TransientError
from bridge.store.records import EventRecord, Status
from tests.contract.entity_variants import (
    BATCH,
    ENTITIES,
    LISTER,
    READER,
    RETURNS_ID,
    VARIANTS,
    Variant,
    shown,
)

SOURCE = "site"  # the system the mirrored entities come from; their key is site-<id>
by_entity = pytest.mark.parametrize("entity", ENTITIES)


@pytest.fixture(params=sorted(VARIANTS))
async def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Variant]:
    """Each mirroring connector in turn, started against its own fresh emulator."""
    variant = await VARIANTS[request.param](tmp_path)
    try:
        yield variant
    finally:
        await variant.connector.close()
        await variant.emulator.stop()


def job(
    mirror: Variant,
    entity: str,
    version: int = 1,
    *,
    n: int = 1,
    entity_id: str = "7",
    attempt: int = 1,
    document: dict[str, Any] | None = None,
    mapped_id: str | None = None,
) -> DeliveryJob:
    """Delivery ``n`` of ``entity_id`` to the variant, carrying version ``version`` of its
    document in the target's shape, as the dispatcher hands it to the sink."""
    event = EventRecord(
        f"evt_{n}", SOURCE, f"k{n}", entity, entity_id, "changed", Status.IN_FLIGHT, None, {},
        0.0, 0.0,
    )  # fmt: skip
    return DeliveryJob(
        delivery_id=f"dlv_{n}",
        operation_key=f"bridge-dlv_{n}",
        target=mirror.connector.name,
        source=SOURCE,
        entity=entity,
        entity_id=entity_id,
        attempt=attempt,
        events=(event,),
        document=mirror.sample(entity, version).document if document is None else document,
        mapped_id=mapped_id,
    )


async def assert_shows(mirror: Variant, entity: str, own: str | None, version: int) -> None:
    """``read_entity`` of the target's id gives the values of document ``version``."""
    if READER not in mirror.capabilities:
        return
    assert own is not None, f"{mirror.name} gave no id to read the {entity} by"
    state = await mirror.connector.read_entity(entity, own)
    assert state is not None, f"{mirror.name}: read_entity({entity!r}, {own!r}) is None"
    expected = mirror.sample(entity, version).shows
    assert {path: shown(state, path) for path in expected} == expected


async def failure(call: Any) -> DeliveryError:
    """The DeliveryError an awaitable raises (anything else fails the test)."""
    with pytest.raises(DeliveryError) as caught:
        await call
    return caught.value


# -- what each connector declares ------------------------------------------------------------


async def test_the_connector_is_what_it_declares(mirror: Variant) -> None:
    connector, declared = mirror.connector, mirror.capabilities
    assert isinstance(connector, Sink)
    assert isinstance(connector, EntityReader) == (READER in declared)
    assert isinstance(connector, EntityLister) == (LISTER in declared)
    assert isinstance(connector, BatchSink) == (BATCH in declared)
    if isinstance(connector, BatchSink):
        assert connector.batch_size >= 2


# -- 1. the same job twice --------------------------------------------------------------------


@by_entity
async def test_the_same_job_delivered_twice_leaves_one_entity(
    mirror: Variant, entity: str, request: pytest.FixtureRequest
) -> None:
    mirror.expect(request, f"same_job_twice:{entity}")
    before = mirror.count(entity)
    delivery = job(mirror, entity)
    first = await mirror.connector.deliver(delivery)
    again = await mirror.connector.deliver(delivery)
    assert mirror.count(entity) - before == 1, f"{entity}s written: ids {first}, {again}"
    assert again == first


# -- 2. a retry of a job that landed ----------------------------------------------------------


@by_entity
@pytest.mark.parametrize("version", [1, 2], ids=["same-state", "newer-state"])
async def test_a_retry_of_a_job_that_landed_makes_no_second_copy(
    mirror: Variant, entity: str, version: int
) -> None:
    # Attempt 1 landed but its answer was lost (a timeout); attempt 2 re-read the source,
    # which may have moved on meanwhile (DeliveryJob.state: read before every attempt).
    before = mirror.count(entity)
    first = job(mirror, entity)
    own = await mirror.connector.deliver(first)
    retry = dataclasses.replace(first, attempt=2, document=mirror.sample(entity, version).document)
    again = await mirror.connector.deliver(retry)
    assert mirror.count(entity) - before == 1, f"{entity}s written: ids {own}, {again}"
    assert again == own
    await assert_shows(mirror, entity, again, version)


# -- 3. a later job for the same entity -------------------------------------------------------


@by_entity
@pytest.mark.parametrize("via", ["external_id", "mapped_id"])
async def test_a_later_job_updates_the_same_entity(
    mirror: Variant, entity: str, via: str, request: pytest.FixtureRequest
) -> None:
    """A new delivery (new operation key) of a changed state: found by the bridge's key
    (``external_id``: a route without a mapping file, or an id map that lost the pair), or
    written to the id the target gave before (``mapped_id``, from the id map)."""
    if via == "mapped_id":
        mirror.requires(RETURNS_ID)
    else:
        mirror.expect(request, f"later_job_by_external_id:{entity}")
    before = mirror.count(entity)
    own = await mirror.connector.deliver(job(mirror, entity, 1, n=1))
    known = own if via == "mapped_id" else None
    later = await mirror.connector.deliver(job(mirror, entity, 2, n=2, mapped_id=known))
    assert mirror.count(entity) - before == 1, f"{entity}s written: ids {own}, {later}"
    if own is not None:
        assert later == own
    await assert_shows(mirror, entity, later, 2)


# -- 4. the id deliver gives, read back --------------------------------------------------------


@by_entity
async def test_deliver_gives_the_targets_id_and_it_reads_back_what_was_written(
    mirror: Variant, entity: str
) -> None:
    mirror.requires(RETURNS_ID)
    own = await mirror.connector.deliver(job(mirror, entity))
    assert isinstance(own, str)
    assert own
    mirror.requires(READER)
    await assert_shows(mirror, entity, own, 1)


@by_entity
async def test_reading_an_id_that_does_not_exist_is_none(mirror: Variant, entity: str) -> None:
    mirror.requires(READER)
    await mirror.connector.deliver(job(mirror, entity))  # the target holds one; not this one
    assert await mirror.connector.read_entity(entity, mirror.missing_id) is None


# -- 5. batches -------------------------------------------------------------------------------


async def test_a_batch_answers_each_job_in_order(mirror: Variant) -> None:
    mirror.requires(BATCH)
    jobs = [job(mirror, "order", v, n=v, entity_id=str(100 + v)) for v in (1, 2, 3, 4)]
    assert all(mirror.connector.batchable(j) for j in jobs)
    before = mirror.count("order")
    results = await mirror.connector.deliver_batch(jobs)
    assert len(results) == len(jobs), results
    assert not any(isinstance(r, DeliveryError) for r in results), results
    assert mirror.count("order") - before == len(jobs)
    for version, own in enumerate(results, start=1):
        if RETURNS_ID in mirror.capabilities:
            assert isinstance(own, str), results
        # Each answer is its own job's: the id reads back that job's document.
        await assert_shows(mirror, "order", own, version)


async def test_one_bad_document_fails_alone_in_its_batch(
    mirror: Variant, request: pytest.FixtureRequest
) -> None:
    mirror.requires(BATCH)
    mirror.expect(request, "batch_bad_document")
    good = [job(mirror, "order", v, n=v, entity_id=str(100 + v)) for v in (1, 2, 3)]
    bad = job(mirror, "order", n=9, entity_id="109", document=mirror.invalid)
    jobs = [good[0], bad, good[1], good[2]]
    assert all(mirror.connector.batchable(j) for j in jobs)
    before = mirror.count("order")
    results = await mirror.connector.deliver_batch(jobs)
    assert len(results) == len(jobs), results
    assert mirror.count("order") - before == len(good)
    for version, own in zip((1, 2, 3), (results[0], *results[2:]), strict=True):
        assert not isinstance(own, DeliveryError), results
        await assert_shows(mirror, "order", own, version)
    refused = results[1]
    assert isinstance(refused, DeliveryError), results
    if refused.error_class is not ErrorClass.PERMANENT:
        # A batch answer that does not say which field was wrong (RetailCRM's upload lists
        # only "field: message" strings, §2.4) may ask for the job alone, retryable; alone,
        # it is refused for good, naming the field.
        assert refused.error_class is ErrorClass.TRANSIENT, (type(refused).__name__, refused)
        again = job(mirror, "order", n=9, entity_id="109", document=mirror.invalid, attempt=2)
        assert not mirror.connector.batchable(again)
        alone = await failure(mirror.connector.deliver(again))
        assert alone.error_class is ErrorClass.PERMANENT, (type(alone).__name__, str(alone))
    assert mirror.count("order") - before == len(good)


# -- 6. a target that is down, or asks to slow down -------------------------------------------


@pytest.mark.parametrize("fault", ["outage", "http_500"])
async def test_a_target_that_is_down_is_retried_and_the_retry_lands_once(
    mirror: Variant, fault: str
) -> None:
    settings, expected, _meaning = mirror.faults[fault]
    assert expected is ErrorClass.TRANSIENT
    connector, entity = mirror.connector, "order"
    own = await connector.deliver(job(mirror, entity, 1, n=1))
    before = mirror.count(entity)
    later = job(mirror, entity, 2, n=2)
    mirror.emulator.faults.set(**settings)
    try:
        error = await failure(connector.deliver(later))
        assert isinstance(error, TransientError), (type(error).__name__, str(error))
        assert error.error_class is ErrorClass.TRANSIENT, str(error)
        if READER in mirror.capabilities and own is not None:
            # Never None (that means "deleted") while the target cannot be asked.
            read = await failure(connector.read_entity(entity, own))
            assert isinstance(read, TransientError), (type(read).__name__, str(read))
        if BATCH in mirror.capabilities:
            other = job(mirror, entity, 3, n=3, entity_id="8")
            try:
                results = await connector.deliver_batch([other])
            except DeliveryError as exc:
                results = [exc]
            assert [type(r) for r in results] == [TransientError], results
    finally:
        mirror.emulator.faults.clear()
    landed = await connector.deliver(dataclasses.replace(later, attempt=2))
    assert mirror.count(entity) == before, "a failed attempt left a copy behind"
    if own is not None:
        assert landed == own
    await assert_shows(mirror, entity, landed, 2)


@pytest.mark.parametrize("fault", ["http_503", "http_429"])
async def test_a_target_asking_to_slow_down_is_rate_limited(mirror: Variant, fault: str) -> None:
    settings, expected, meaning = mirror.faults[fault]
    mirror.emulator.faults.set(**settings)
    try:
        error = await failure(mirror.connector.deliver(job(mirror, "order")))
    finally:
        mirror.emulator.faults.clear()
    assert isinstance(error, TransientError), (type(error).__name__, str(error))  # retryable
    assert error.error_class is expected, f"{fault} ({meaning}): {type(error).__name__} {error}"
    if expected is ErrorClass.RATE_LIMITED:
        assert isinstance(error, RateLimited)
        assert error.retry_after is None or error.retry_after > 0


# -- 7. listings ------------------------------------------------------------------------------


@by_entity
async def test_a_listing_paged_to_the_end_lists_every_entity_once(
    mirror: Variant, entity: str
) -> None:
    mirror.requires(LISTER)
    connector = mirror.connector
    assert connector.lists(entity)
    mirror.seed(entity, mirror.list_page + mirror.list_page // 2 + 1)
    await connector.deliver(job(mirror, entity))  # and one the bridge wrote
    held = mirror.held_ids(entity)
    listed: dict[str, list[dict[str, Any]]] = {}
    pages, cursor = 0, None
    while pages <= len(held):  # a cursor that never ends must not hang the suite
        page = await connector.list_entities(entity, None, cursor)
        pages += 1
        for found in page.entities:
            listed.setdefault(found.entity_id, []).append(found.state)
        if page.total is not None:
            assert page.total == len(held)
        if page.cursor is None:
            break
        assert page.cursor != cursor, "the cursor did not move"
        cursor = page.cursor
    assert pages >= 2, "the listing never turned a page"
    twice = sorted(k for k, states in listed.items() if len(states) > 1)
    assert not twice, f"listed more than once: {twice}"
    assert set(listed) == held
    mirror.requires(READER)
    # The ids are the ones read_entity takes, and the state listed is what it reads.
    order = list(listed)
    for entity_id in (order[0], order[mirror.list_page], order[-1]):
        assert await connector.read_entity(entity, entity_id) == listed[entity_id][0], entity_id
