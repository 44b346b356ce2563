"""Delivery through the dispatcher to a recording target: retry, dead-letter, replay,
per-entity order and coalescing."""

from __future__ import annotations

import asyncio
import itertools
import json

from tests.conftest import Bridge, StartBridge, Target
from tests.integration.test_intake import AUTH, order, post
from tests.support.configs import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def wait_for_status(bridge: Bridge, event_id: str, status: str, seconds: float = 10) -> None:
    """Poll the store until the event reaches ``status``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        detail = await bridge.runtime.store.get_event(event_id)
        if detail.event.status == status:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{event_id} is {detail.event.status}, expected {status}")
        await asyncio.sleep(0.02)


async def set_fault(bridge: Bridge, target: Target, **fault: object) -> None:
    async with bridge.http.post(target.url + "/fault", json=fault) as resp:
        assert resp.status == 200


async def test_delivery_lands_with_the_latest_state(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(target_url=target.url)
    _, body, _ = await post(bridge, order("d1", "9", total="100.00"), AUTH)
    await wait_for_status(bridge, body["event_id"], "done")
    assert target.state.state == {"9": {"total": "100.00"}}
    detail = await bridge.runtime.store.get_event(body["event_id"])
    assert [(h.kind, h.outcome) for h in detail.history] == [("attempt", "done")]


async def test_transient_failures_retry_with_growing_delays_then_land(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(
        target_url=target.url,
        retry={"base_seconds": 0.1, "cap_seconds": 2, "max_attempts": 10, "jitter": 0},
    )
    await set_fault(bridge, target, status=503, count=4)
    _, body, _ = await post(bridge, order("t1", "5"), AUTH)
    await wait_for_status(bridge, body["event_id"], "done")
    times = target.state.request_times
    assert len(times) == 5
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.1, 0.2, 0.4, 0.8 s: each wait at least the policy's delay and longer than the last.
    for gap, floor in zip(gaps, (0.1, 0.2, 0.4, 0.8), strict=True):
        assert gap >= floor * 0.95
    assert gaps == sorted(gaps)
    detail = await bridge.runtime.store.get_event(body["event_id"])
    outcomes = [(h.attempt, h.outcome, h.error_class) for h in detail.history]
    assert outcomes == [
        (1, "retry", "transient"),
        (2, "retry", "transient"),
        (3, "retry", "transient"),
        (4, "retry", "transient"),
        (5, "done", None),
    ]


async def test_retry_after_is_honoured(start_bridge: StartBridge, target: Target) -> None:
    bridge = await start_bridge(
        target_url=target.url,
        retry={"base_seconds": 0.01, "cap_seconds": 5, "max_attempts": 5, "jitter": 0},
    )
    await set_fault(bridge, target, status=429, count=1, retry_after="1")
    _, body, _ = await post(bridge, order("r1", "6"), AUTH)
    await wait_for_status(bridge, body["event_id"], "done")
    first, second = target.state.request_times
    assert second - first >= 0.95


async def test_permanent_error_dead_letters_then_replay_delivers(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(target_url=target.url)
    await set_fault(bridge, target, status=422, count=1)
    _, body, _ = await post(bridge, order("p1", "8", total="1.00"), AUTH)
    await wait_for_status(bridge, body["event_id"], "dead")
    detail = await bridge.runtime.store.get_event(body["event_id"])
    (delivery,) = detail.deliveries
    assert delivery.last_error_class == "permanent"
    assert "HTTP 422" in (delivery.last_error or "")
    assert len(target.state.requests) == 1  # a 4xx is not retried

    async with bridge.http.post(
        bridge.url + "/api/v1/events/replay", json={"ids": [body["event_id"]]}, headers=ADMIN
    ) as resp:
        result = await resp.json()
    assert result["requeued"] == 1
    await wait_for_status(bridge, body["event_id"], "done")
    detail = await bridge.runtime.store.get_event(body["event_id"])
    kinds = [(h.kind, h.outcome) for h in detail.history]
    assert kinds == [("attempt", "dead"), ("replayed", "pending"), ("attempt", "done")]
    replayed = detail.history[1]
    assert replayed.actor == "api:support"


async def test_auth_error_is_not_retried(start_bridge: StartBridge, target: Target) -> None:
    bridge = await start_bridge(target_url=target.url)
    await set_fault(bridge, target, status=401)
    _, body, _ = await post(bridge, order("u1"), AUTH)
    await wait_for_status(bridge, body["event_id"], "dead")
    detail = await bridge.runtime.store.get_event(body["event_id"])
    assert detail.deliveries[0].last_error_class == "auth"
    assert len(target.state.requests) == 1


async def test_exhausted_retries_dead_letter_with_the_reason(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(
        target_url=target.url,
        retry={"base_seconds": 0.01, "cap_seconds": 0.02, "max_attempts": 3},
    )
    await set_fault(bridge, target, status=500)
    _, body, _ = await post(bridge, order("x1"), AUTH)
    await wait_for_status(bridge, body["event_id"], "dead")
    detail = await bridge.runtime.store.get_event(body["event_id"])
    assert "gave up after 3 attempts" in (detail.deliveries[0].last_error or "")
    assert len(target.state.requests) == 3


async def test_changes_of_one_entity_coalesce_and_stay_in_order(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(target_url=target.url, concurrency=8)
    # Hold the target so the first delivery of order 1 stays in flight while more changes
    # of order 1 arrive: they must wait for it and then go as one delivery.
    await set_fault(bridge, target, delay=0.3)
    ids = []
    for version in range(1, 6):
        _, body, _ = await post(bridge, order(f"o1-v{version}", "1", version=version), AUTH)
        ids.append(body["event_id"])
        await asyncio.sleep(0.02)
    for event_id in ids:
        await wait_for_status(bridge, event_id, "done")
    versions = [r["state"]["version"] for r in target.state.requests]
    assert versions == sorted(versions)
    assert versions[-1] == 5
    assert len(target.state.requests) < 5  # later changes went as one write
    last = next(r for r in target.state.requests if r["state"]["version"] == 5)
    assert len(last["events"]) >= 2


async def test_entities_are_delivered_in_parallel_up_to_the_limit(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(target_url=target.url, concurrency=4)
    await set_fault(bridge, target, delay=0.3)
    ids = []
    for n in range(8):
        _, body, _ = await post(bridge, order(f"par{n}", str(n)), AUTH)
        ids.append(body["event_id"])
    started = asyncio.get_running_loop().time()
    for event_id in ids:
        await wait_for_status(bridge, event_id, "done")
    elapsed = asyncio.get_running_loop().time() - started
    # 8 deliveries of 0.3 s with 4 at a time: about two rounds, far less than 8 in series.
    assert 0.55 <= elapsed < 1.8
    assert json.dumps(sorted(target.state.state)) == json.dumps([str(n) for n in range(8)])


async def test_a_change_after_a_landed_but_failed_attempt_is_not_lost(
    start_bridge: StartBridge, target: Target
) -> None:
    bridge = await start_bridge(
        target_url=target.url,
        retry={"base_seconds": 0.5, "cap_seconds": 1, "max_attempts": 5, "jitter": 0},
    )
    # The target applies v1 but the answer is lost (503): the bridge must retry v1 with the
    # same key (absorbed as a repeat) and still bring v2, which arrives meanwhile, across.
    await set_fault(bridge, target, status=503, count=1, after_apply=True)
    _, first, _ = await post(bridge, order("l1", "3", total="1"), AUTH)
    while not target.state.requests:
        await asyncio.sleep(0.01)
    _, second, _ = await post(bridge, order("l2", "3", total="2"), AUTH)
    await wait_for_status(bridge, first["event_id"], "done")
    await wait_for_status(bridge, second["event_id"], "done")
    assert target.state.state == {"3": {"total": "2"}}
    keys = [r["operation_key"] for r in target.state.requests]
    assert len(set(keys)) == 2
    assert keys[0] == keys[1]  # the retry of v1 reused its key


async def test_a_batch_sink_gets_due_deliveries_in_batches_with_outcomes_per_entity(
    start_bridge: StartBridge, target: Target
) -> None:
    target.state.refuse = {"7"}
    target.state.fault.delay = 0  # /apply_batch answers at once
    bridge = await start_bridge(target_url=target.url, target_type="batcher", concurrency=1)
    events = [order(f"b{n}", str(n), n=n) for n in range(20)]
    _, body, _ = await post(bridge, {"events": events}, AUTH)
    ids = [e["event_id"] for e in body["events"]]
    for n, event_id in enumerate(ids):
        await wait_for_status(bridge, event_id, "dead" if n == 7 else "done")
    assert sum(target.state.batches) == 20
    assert max(target.state.batches) == 5
    assert len(target.state.batches) <= 6
    assert sorted(target.state.applied.values(), key=int) == [str(n) for n in range(20) if n != 7]
    dead = await bridge.runtime.store.get_event(ids[7])
    assert "entity 7 refused" in (dead.deliveries[0].last_error or "")
