"""``bridge purge --records`` through the real CLI: final reservations owing nothing and
dead owed calls deleted by hand, a dry run first; an open reservation and a dead call a
reservation waits on stay; a time younger than retention's floor is refused."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.owed.calls import NewOwedCall, OwedOutcome
from bridge.store import SQLiteStore
from bridge.store.owed import owed_store_of
from bridge.store.reservations import RsvStatus
from tests.contract.store.test_reservations import CREATED, reservation
from tests.support.configs import write_config
from tests.support.daemon import cli_json, run_cli

DAY = 86_400.0


async def fill(db: Path) -> None:
    """40 days ago: a committed reservation, an expired one whose reverse died, one held,
    one waiting on a dead commit; a done call of no reservation."""
    clock = [time.time() - 40 * DAY]
    store = SQLiteStore(db, clock=lambda: clock[0])
    await store.open()
    owed = owed_store_of(store)
    statuses = (RsvStatus.COMMITTED, RsvStatus.EXPIRED, RsvStatus.HELD, RsvStatus.COMMIT_PENDING)
    for number, status in enumerate(statuses, start=1):
        rsv = await store.create_reservation(reservation(number, clock[0]), CREATED)
        pending = "commit" if status is RsvStatus.COMMIT_PENDING else None
        await store.update_reservation(replace(rsv, status=status, pending=pending), [])
    for number, operation in ((2, "reverse"), (4, "commit")):
        subject = reservation(number, 0).id
        call = NewOwedCall(
            "onec", f"reservation.{operation}", f"{subject}:{operation}", {}, subject
        )
        (made,) = await owed.owe([call], lease_to="me")
        await owed.finish_owed(made.id, "me", OwedOutcome.dead("refused"))
    (orphan,) = await owed.owe([NewOwedCall("onec", "accrual", "a-1")], lease_to="me")
    await owed.finish_owed(orphan.id, "me", OwedOutcome.done())
    await store.close()


async def test_purge_records_dry_run_then_for_real(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    await fill(tmp_path / "bridge.db")
    kinds = ("--records", "reservations", "--records", "owed_dead", "--records", "owed_done")

    plan = await cli_json(config, "purge", *kinds, "--before", "30d", "--dry-run")
    assert plan["dry_run"] is True
    assert plan["statuses"] == []
    counts = {r["kind"]: r["count"] for r in plan["records"]}
    # The expired one waits on its dead reverse until that is purged (in this same run).
    assert counts == {"reservations": 1, "owed_dead": 1, "owed_done": 1}

    code, out, err = await run_cli(config, "purge", *kinds, "--before", "30d")
    assert code == 2, out + err
    assert "3 records match; add --yes" in err
    done = await cli_json(config, "purge", *kinds, "--before", "30d", "--yes")
    assert {r["kind"]: r["deleted"] for r in done["records"]} == counts
    again = await cli_json(config, "purge", "--records", "reservations", "--before", "30d", "--yes")
    assert again["records"][0]["deleted"] == 1  # the expired one, its dead call gone

    store = SQLiteStore(tmp_path / "bridge.db")
    await store.open()
    try:
        assert await store.count_reservations() == {"held": 1, "commit_pending": 1}
        dead = await owed_store_of(store).owed_for(reservation(4, 0).id)
        assert [c.status for c in dead] == ["dead"]  # the commit the reservation waits on
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--records", "bogus", "--before", "30d"), "--records"),
        (("--records", "reservations", "--before", "6d"), "--before"),
        (("--records", "sms_sends", "--before", "12h"), "--before"),
        (("--records", "sms_sends"), "--before"),
    ],
)
async def test_a_wrong_records_flag_is_a_usage_error_naming_it(
    tmp_path: Path, args: tuple[str, ...], flag: str
) -> None:
    code, out, err = await run_cli(write_config(tmp_path), "purge", *args)
    assert code == 2, out + err
    assert f"error: {flag}: " in err
    assert "Traceback" not in out + err
