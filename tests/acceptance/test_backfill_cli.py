"""``bridge backfill`` as support staff type it: what it refuses, naming the option."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.daemon import cli_json, run_cli
from tests.support.mirroring import mirroring_config


def write_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    text = yaml.safe_dump(mirroring_config(tmp_path), allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return path


async def test_a_backfill_without_a_route_or_with_a_bad_date_is_refused_naming_the_option(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    code, _out, err = await run_cli(
        path, "backfill", "orders", "--from", "retailcrm", "--to", "onec", "--to", "nowhere"
    )
    assert code == 2
    assert "--to nowhere: no such system in config.yaml" in err
    code, _out, err = await run_cli(
        path, "backfill", "customers", "--from", "retailcrm", "--to", "onec"
    )
    assert code == 2
    assert "--to onec: no route in mirror.routes sends customers from retailcrm" in err
    code, _out, err = await run_cli(
        path, "backfill", "orders", "--from", "retailcrm", "--to", "onec", "--since", "01.02.2026"
    )
    assert (code, "--since: '01.02.2026' is not a date like 2026-01-31" in err) == (2, True)
    assert (await cli_json(path, "backfill", "list")) == {"backfills": []}  # nothing stored


async def test_a_stored_backfill_is_resumed_by_the_same_command_and_can_be_cancelled(
    tmp_path: Path,
) -> None:
    path = write_config(tmp_path)
    args = ("backfill", "orders", "--from", "retailcrm", "--to", "onec", "--since", "2026-01-01")
    first = await cli_json(path, *args)  # --json stores it and returns (no daemon here)
    again = await cli_json(path, *args)
    assert (first["resumed"], again["resumed"], again["id"]) == (False, True, first["id"])
    code, out, _err = await run_cli(path, "backfill", "cancel", first["id"])
    assert code == 0 and "cancelled after 0 listed" in out
    code, out, _err = await run_cli(path, "backfill", "cancel", first["id"])
    assert code == 0 and "nothing to cancel, it is cancelled" in out
    code, _out, err = await run_cli(path, "backfill", "cancel", "bf_99")
    assert code == 1 and "no backfill bf_99" in err
    listed = (await cli_json(path, "backfill", "list"))["backfills"]
    assert [(b["id"], b["status"]) for b in listed] == [(first["id"], "cancelled")]
