"""Polling a source's change feed: stored with the cursor, delivered, never twice."""

from __future__ import annotations

import asyncio

from structlog.testing import capture_logs

from bridge.store.records import EventFilter
from tests.conftest import StartBridge, Target
from tests.integration.test_delivery import wait_for_status
from tests.support.daemon import free_port
from tests.support.recorder import TargetEmulator

CURSOR_NAME = "changes"


async def test_polled_changes_are_stored_with_their_cursor_and_delivered(
    start_bridge: StartBridge, target: Target
) -> None:
    for n in range(5):
        target.state.feed.append({"no": n + 1, "entity": "order", "id": str(n), "data": {"n": n}})
    bridge = await start_bridge(target_url=target.url, source_type="feed", source_url=target.url)
    store = bridge.runtime.store
    deadline = asyncio.get_running_loop().time() + 10
    while len(target.state.applied) < 5:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    cursor = await store.get_cursor("shop", CURSOR_NAME)
    assert cursor is not None
    assert cursor.value == "5"
    events = await store.list_events(EventFilter(source="shop"))
    assert sorted(e.source_key for e in events) == [f"msg-{n}" for n in range(1, 6)]
    for event in events:
        await wait_for_status(bridge, event.id, "done")

    # A later change is picked up from the cursor; nothing earlier is read again.
    target.state.feed.append({"no": 6, "entity": "order", "id": "9", "data": {}})
    while len(target.state.applied) < 6:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    assert len(await store.list_events(EventFilter(source="shop"))) == 6
    assert sorted(target.state.applied.values()) == ["0", "1", "2", "3", "4", "9"]


async def test_an_unreachable_source_is_logged_once_and_recovers(
    start_bridge: StartBridge, target: Target
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with capture_logs() as logs:
        bridge = await start_bridge(target_url=target.url, source_type="feed", source_url=url)
        # Polls fail: nothing listens there yet (waited for, not slept: a loaded machine
        # may take longer than a fixed half second to make the first poll).
        deadline = asyncio.get_running_loop().time() + 10
        while not any(entry["event"] == "system_unavailable" for entry in logs):
            assert asyncio.get_running_loop().time() < deadline, logs
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a few more failed polls: still logged once
        assert await bridge.runtime.store.get_cursor("shop", CURSOR_NAME) is None
        source = TargetEmulator(url)
        source.state.feed.append({"no": 1, "entity": "order", "id": "1", "data": {}})
        await source.start()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while await bridge.runtime.store.get_cursor("shop", CURSOR_NAME) is None:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.05)
        finally:
            await source.stop()
    names = [entry["event"] for entry in logs]
    assert names.count("system_unavailable") == 1
    assert names.count("system_recovered") == 1
