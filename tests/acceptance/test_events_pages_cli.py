"""``bridge events list`` a page at a time through the real CLI (issue 16): a full page ends
with the command for the next one, which goes on where it stopped; JSON gives the same as
``next_after``; ``bridge status`` counts what the log holds."""

from __future__ import annotations

import shlex
from pathlib import Path

from bridge.store import SQLiteStore
from bridge.store.records import InboundEvent, NewEvent
from tests.support.clock import T0, Clock
from tests.support.configs import write_config
from tests.support.daemon import cli_json, run_cli, status_json


async def fill(path: Path, count: int) -> list[str]:
    """``count`` changes from shop to crm, one a second; their ids, oldest first."""
    clock = Clock()
    store = SQLiteStore(path, clock=clock)
    await store.open()
    ids = []
    try:
        for i in range(count):
            clock.now = T0 + i
            change = NewEvent("shop", InboundEvent(f"k{i}", "order", str(i)), ("crm",))
            ids += [s.event_id for s in await store.append_events([change])]
    finally:
        await store.close()
    return ids


async def test_pages_follow_the_printed_next_page_command(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ids = await fill(tmp_path / "bridge.db", 5)

    code, out, err = await run_cli(config, "events", "list", "--target", "crm", "--limit", "2")
    assert code == 0, err
    seen = [i for i in ids if i in out]
    assert seen == ids[3:]
    hint = out.strip().splitlines()[-1]
    assert hint == (
        f"next page: bridge --config {config} events list --target crm --limit 2 --after {ids[3]}"
    )
    words = shlex.split(hint.removeprefix("next page: "))[5:]  # after `bridge … events list`
    code, out, err = await run_cli(config, "events", "list", *words)
    assert code == 0, err
    assert [i for i in ids if i in out] == ids[1:3]

    last = await cli_json(config, "events", "list", "--limit", "2", "--after", ids[1])
    assert [e["id"] for e in last["events"]] == ids[:1]
    assert last["next_after"] is None
    first = await cli_json(config, "events", "list", "--limit", "2", "--status", "pending")
    assert first["next_after"] == ids[3]

    status = await status_json(config)
    assert status["events"] == {"pending": 5}
    assert status["log"]["events"] == 5 and status["log"]["deliveries"] == 5
    assert [(q["target"], q["status"], q["count"]) for q in status["queues"]] == [
        ("crm", "pending", 5)
    ]


async def test_a_wrong_or_vanished_after_is_one_clear_line(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    await fill(tmp_path / "bridge.db", 1)
    code, _, err = await run_cli(config, "events", "list", "--after", "dlv_1")
    assert code == 2 and "--after: 'dlv_1' is not an event id like evt_42" in err
    code, _, err = await run_cli(config, "events", "list", "--after", "evt_99")
    assert code == 1 and "--after: no event evt_99" in err and "without --after" in err
