"""Sandbox re-runs (issue 12.1): the emulators start afresh at every start and number their
orders and history from 1 again, so the sandbox store starts afresh with them; the same
walkthrough works on the second run as on the first. With the store kept on purpose, a change
dropped as a duplicate is logged with its source key instead of vanishing silently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from tests.support.bonus import start_bonus
from tests.support.emulators import onec_emulator
from tests.support.mirroring import crm_call, first_polls, mirroring_config
from tests.support.waiting import eventually

ORDER = {
    "number": "W-1",
    "status": "new",
    "customer": {"externalId": "c-1"},
    "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 990}],
}


async def one_run(config_path: Path, config: dict[str, Any]) -> tuple[str, Any]:
    """Start the bridge with its sandboxes, create an order in RetailCRM as a manager, and
    return its id and 1C's copy (None when it never arrived)."""
    bonus, stop = await start_bonus(config_path, config)
    try:
        await first_polls(bonus.runtime.store)
        created = await crm_call(bonus, lambda c: c.order_create(ORDER, "shop"))
        key = f"retailcrm-{created['id']}"
        onec = onec_emulator(bonus.runtime)

        async def in_1c() -> Any:
            return onec.ledger.snapshot()["orders"].get(key)

        try:
            copy = await eventually(in_1c, 8)
        except AssertionError:
            copy = None
        return str(created["id"]), copy
    finally:
        await stop()


async def test_the_second_sandbox_run_mirrors_what_the_first_did(tmp_path: Path) -> None:
    config = mirroring_config(tmp_path)
    path = tmp_path / "bridge.yaml"
    first_id, first_copy = await one_run(path, config)
    second_id, second_copy = await one_run(path, config)
    assert first_id == second_id  # the emulator numbered afresh
    assert first_copy is not None and second_copy is not None
    assert first_copy[2]["number"] == second_copy[2]["number"] == "W-1"
    store_file = Path(config["store"]["url"].removeprefix("sqlite:///"))
    assert Path(f"{store_file}.previous").exists()  # noqa: ASYNC240 - the first log, kept


async def test_with_the_store_kept_a_dropped_duplicate_is_logged_with_its_key(
    tmp_path: Path,
) -> None:
    config = mirroring_config(tmp_path)
    config["sandbox"]["fresh_store"] = False
    path = tmp_path / "bridge.yaml"
    await one_run(path, config)
    with capture_logs() as logs:
        _id, copy = await one_run(path, config)
    assert copy is None  # the same history id as the first run's: dropped as a duplicate
    dropped = [e for e in logs if e["event"] == "duplicate_dropped"]
    assert dropped, [e["event"] for e in logs]
    assert all(e["log_level"] == "info" and e["source_key"] for e in dropped)
    assert any(e["system"] == "retailcrm" and e["entity"] == "order" for e in dropped)
