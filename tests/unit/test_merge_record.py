"""A merge's record as its steps are noted: a step given up stays visible while other
steps go through, until that step itself goes through (a replay)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from bridge.bonus.master_calls import retry_policy
from bridge.customers.merges import Merges, _card, _failed, _finished, _main_set
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.store.customer_records import RecordKind, customer_records_of
from bridge.store.owed import owed_store_of
from bridge.store.sqlite import SQLiteStore


def test_a_step_given_up_stays_visible_while_other_steps_go_through() -> None:
    body: dict[str, Any] = {
        "main": "M",
        "main_set": False,
        "cards": {"A": {}, "B": {}},
        "errors": {},
    }
    body = _failed(body, "A", "card_block A: refused")
    body = _failed(body, "main", "card_main: refused")
    body = _card(body, "B", "moved", "10.00")
    assert body["errors"] == {"A": "card_block A: refused", "main": "card_main: refused"}
    body = _main_set(body)
    assert body["errors"] == {"A": "card_block A: refused"}  # B's and main's success: A stays
    assert not _finished(body)
    body = _card(body, "A", "moved", "5.00")  # A replayed and went through
    assert body["errors"] == {}
    assert _finished(body)


def test_a_late_block_note_never_undoes_a_move() -> None:
    body: dict[str, Any] = {"main": "M", "main_set": True, "cards": {"A": {}}, "errors": {}}
    body = _card(body, "A", "moved", "5.00")
    body = _card(body, "A", "blocked", "5.00")  # a retried block call noted late
    assert body["cards"]["A"]["state"] == "moved"


async def test_a_merge_stored_but_never_owed_is_owed_again_at_start(tmp_path: Path) -> None:
    """The process died between storing a merge and owing its steps: at the next start the
    steps are owed, under the merge's own operation ids (owing them twice is owing once)."""
    store = SQLiteStore(tmp_path / "s.db")
    await store.open()
    try:
        records = customer_records_of(store)
        owed = OwedSweeper(owed_store_of(store), Handlers(), "test")
        bonus = SimpleNamespace(master="onec")  # only its name is read when owing steps
        merges = Merges(bonus, records, owed, retry_policy(1.0), lambda _phone: [])  # type: ignore[arg-type]
        body = {"main": "C", "main_set": False, "cards": {"A": {"state": "owed"},
                "B": {"state": "moved"}}}  # fmt: skip
        await records.add_record(RecordKind.MERGE, "mrg_1", "+79000000005", "running", body)
        assert await merges.recover() == 1
        calls = await owed.store.owed_for("mrg_1")
        assert sorted(c.operation_id for c in calls) == ["mrg_1:block:A", "mrg_1:main"]
        assert await merges.recover() == 0  # owed already: nothing more
        assert len(await owed.store.owed_for("mrg_1")) == 2
    finally:
        await store.close()
