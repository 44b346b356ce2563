"""Owed calls through the real CLI: ``bridge status`` counts them by system and status,
``bridge replay own_…`` requeues a dead one (and says so for an id that names nothing)."""

from __future__ import annotations

import time
from pathlib import Path

from bridge.owed.calls import NewOwedCall, OwedOutcome, OwedStatus
from bridge.store.sqlite import SQLiteStore
from bridge.store.sqlite.owed import SQLiteOwedStore
from tests.support.configs import write_config
from tests.support.daemon import run_cli, status_json


async def owe_one_dead_call(db: Path) -> str:
    store = SQLiteStore(db)
    await store.open()
    try:
        owed = SQLiteOwedStore(store)
        pending = NewOwedCall("onec", "reservation.commit", "rsv_2:commit", {"amount": "5"})
        dead = NewOwedCall("onec", "reservation.commit", "rsv_1:commit", {"amount": "1"})
        (call, _) = await owed.owe([dead, pending])
        (claimed,) = await owed.claim_owed("gone", time.time(), 30, 1)
        assert claimed.id == call.id
        await owed.finish_owed(call.id, "gone", OwedOutcome.dead("reservation_closed: shut"))
        return call.id
    finally:
        await store.close()


async def test_status_counts_owed_calls_and_replay_requeues_a_dead_one(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    dead = await owe_one_dead_call(tmp_path / "bridge.db")

    status = await status_json(config)
    assert status["owed"] == [
        {"system": "onec", "status": "dead", "count": 1},
        {"system": "onec", "status": "pending", "count": 1},
    ]
    code, out, _err = await run_cli(config, "status")
    assert "Owed calls: onec dead 1, onec pending 1" in out

    code, out, err = await run_cli(config, "replay", dead, "--dry-run")
    assert (code, out.strip()) == (0, f"{dead}: would requeue"), err
    code, out, err = await run_cli(config, "replay", dead)
    assert (code, out.strip()) == (0, f"{dead}: requeued"), err
    status = await status_json(config)
    assert status["owed"] == [{"system": "onec", "status": "pending", "count": 2}]

    code, out, _err = await run_cli(config, "replay", dead, "own_999")
    assert code == 1
    assert f"{dead}: not dead (pending)" in out and "own_999: not found" in out
    code, _out, err = await run_cli(config, "replay", dead, "evt_1")
    assert code == 2 and "owed-call ids" in err

    store = SQLiteStore(tmp_path / "bridge.db")
    await store.open()
    try:
        call = await SQLiteOwedStore(store).get_owed(dead)
        assert (call.status, call.attempts, call.last_error) == (
            OwedStatus.PENDING,
            0,
            "reservation_closed: shut",
        )
        assert call.note is not None and call.note.startswith("replayed by cli:")
    finally:
        await store.close()
