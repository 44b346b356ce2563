"""``bridge purge`` and the log's size in ``bridge status``, through the real CLI: finished
events deleted by hand in batches, a dry run first, and clear answers to wrong flags."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bridge.store import SQLiteStore
from bridge.store.records import AttemptOutcome, InboundEvent, NewEvent, Status
from tests.support.configs import write_config
from tests.support.daemon import cli_json, free_port, run_cli, status_json

DAY = 86_400.0


async def fill(db: Path) -> None:
    """Five done events 40 days old, two dead ones 40 days old, one done today, one waiting."""
    clock = [time.time() - 40 * DAY]
    store = SQLiteStore(db, clock=lambda: clock[0])
    await store.open()
    unrouted = [NewEvent("shop", InboundEvent(f"d{i}", "order", str(i)), ()) for i in range(5)]
    await store.append_events(unrouted)
    routed = [NewEvent("shop", InboundEvent(f"x{i}", "order", f"x{i}"), ("crm",)) for i in range(2)]
    await store.append_events(routed)
    for claimed in await store.claim_due("crm", "me", 10):
        await store.finish_attempt(claimed, "me", AttemptOutcome(Status.DEAD, None, "x", "422"))
    clock[0] = time.time()
    await store.append_events([NewEvent("shop", InboundEvent("today", "order", "t"), ())])
    await store.append_events([NewEvent("shop", InboundEvent("w", "order", "w"), ("crm",))])
    await store.close()


async def test_purge_dry_run_then_for_real_and_the_log_in_status(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=free_port())
    await fill(tmp_path / "bridge.db")

    status = await status_json(config)
    assert status["log"]["events"] == 9
    assert status["log"]["size_bytes"] > 0
    oldest = status["log"]["oldest"]
    plan = await cli_json(config, "purge", "--status", "done", "--before", "30d", "--dry-run")
    assert plan["dry_run"] is True
    ((done,),) = [[s for s in plan["statuses"] if s["status"] == "done"]]
    assert done["count"] == 5
    assert done["oldest"] is not None and done["oldest"] <= done["newest"]

    code, out, err = await run_cli(config, "purge", "--status", "done", "--before", "30d")
    assert code == 2, out + err  # not a terminal: it asks for --yes rather than deleting
    assert "5 events match; add --yes" in err
    code, out, err = await run_cli(
        config, "purge", "--status", "done", "--status", "dead", "--before", "30d", "--yes"
    )
    assert code == 0, err
    assert "deleted" in out
    after = await status_json(config)
    assert after["events"] == {"done": 1, "pending": 1}  # today's, and the one on its way
    assert after["log"]["oldest"] > oldest
    code, out, err = await run_cli(config, "purge", "--status", "done", "--before", "30d", "--yes")
    assert code == 0, err
    assert "nothing to delete" in out
    code, out, err = await run_cli(config, "status")
    assert "Log: 2 events, the oldest received" in out


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--before", "30d"), "--status"),
        (("--status", "pending", "--before", "30d"), "--status"),
        (("--status", "in_flight", "--before", "30d"), "--status"),
        (("--status", "done"), "--before"),
        (("--status", "done", "--before", "soon"), "--before"),
        (("--status", "done", "--before", "2999-01-01"), "--before"),
        (("--status", "done", "--before", "1d", "--batch", "0"), "--batch"),
    ],
)
async def test_a_wrong_flag_is_a_usage_error_naming_it(
    tmp_path: Path, args: tuple[str, ...], flag: str
) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli(config, "purge", *args)
    assert code == 2, out + err
    assert f"error: {flag}: " in err
    assert "Traceback" not in out + err


async def test_purge_help_ends_with_an_example(tmp_path: Path) -> None:
    code, out, _ = await run_cli(write_config(tmp_path), "purge", "--help")
    assert code == 0
    assert out.rstrip().splitlines()[-1].strip().startswith("bridge purge --status")
