"""A merge's record as its steps are noted: a step given up stays visible while other
steps go through, until that step itself goes through (a replay)."""

from __future__ import annotations

from bridge.customers.merges import _card, _failed, _finished, _main_set


def test_a_step_given_up_stays_visible_while_other_steps_go_through() -> None:
    body = {"main": "M", "main_set": False, "cards": {"A": {}, "B": {}}, "errors": {}}
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
    body = {"main": "M", "main_set": True, "cards": {"A": {}}, "errors": {}}
    body = _card(body, "A", "moved", "5.00")
    body = _card(body, "A", "blocked", "5.00")  # a retried block call noted late
    assert body["cards"]["A"]["state"] == "moved"
