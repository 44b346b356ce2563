"""Mistakes support staff make at the CLI get a clear answer and an exit code, not silence:
unknown system names, ids that name nothing, a daemon that is not running, a config with
several mistakes in different sections."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.configs import write_config
from tests.support.daemon import free_port, run_cli


@pytest.mark.parametrize(
    ("args", "option", "value"),
    [
        (("events", "list", "--target", "crm2"), "--target", "crm2"),
        (("events", "list", "--source", "retail"), "--source", "retail"),
        (("replay", "--status", "dead", "--target", "crm2", "--yes"), "--target", "crm2"),
        (("replay", "--status", "dead", "--source", "nope", "--dry-run"), "--source", "nope"),
    ],
)
async def test_an_unknown_system_is_a_usage_error_naming_the_known_ones(
    tmp_path: Path, args: tuple[str, ...], option: str, value: str
) -> None:
    config = write_config(tmp_path)  # systems: shop (source) and crm (target)
    code, out, err = await run_cli(config, *args)
    assert code == 2, out + err
    assert f"{option}: no system is named '{value}'" in err
    assert "crm" in err and "shop" in err  # the names that do exist


async def test_a_known_system_still_filters(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli(config, "events", "list", "--target", "crm")
    assert (code, err) == (0, "")
    assert "No events match." in out


async def test_replay_of_an_id_that_names_nothing_says_so_and_fails(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    code, out, err = await run_cli(config, "replay", "evt_9999")
    assert code == 1, out + err
    assert "would requeue" not in out
    assert "requeued nothing" in out
    assert "evt_9999: not found" in out


async def test_status_without_a_daemon_is_one_clear_line_and_exit_1(tmp_path: Path) -> None:
    config = write_config(tmp_path, port=free_port())  # nothing listens there
    code, out, err = await run_cli(config, "status")
    assert code == 1, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "does not answer (connection refused)" in lines[0]
    assert "is bridge serve running?" in lines[0]
    assert "Traceback" not in out + err
    code, out, err = await run_cli(config, "status", "--json")
    assert code == 1
    assert '"queues"' in out  # the store's figures are still printed


async def test_check_reports_mistakes_of_the_config_and_of_a_connector_at_once(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path)
    text = config.read_text(encoding="utf-8")
    text = text.replace("  port: 0", "  prot: 8080")
    text = text.replace("options:\n      url: http://127.0.0.1:9\n", "options:\n      url: 7\n", 1)
    config.write_text(text, encoding="utf-8")
    assert "prot: 8080" in text and "url: 7" in text
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    assert "http.prot: unknown key" in err
    assert "systems.shop.options.url" in err
    assert "2 problem(s)" in err


async def test_the_lock_message_points_to_what_exists(tmp_path: Path) -> None:
    from bridge.errors import StoreError
    from bridge.store import SQLiteStore

    first, second = SQLiteStore(tmp_path / "b.db"), SQLiteStore(tmp_path / "b.db")
    await first.open(serving=True)
    try:
        with pytest.raises(StoreError) as caught:
            await second.open(serving=True)
    finally:
        await first.close()
    assert "already serving" in str(caught.value)
    assert "PostgreSQL" not in str(caught.value)
