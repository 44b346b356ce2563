"""``bridge check`` on a files source: what it needs of the rest of the config (a master
that accrues exactly once, a rules file) and its own options' mistakes, each at its key;
``bridge serve`` refuses to start on them (issue 18)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.support.bonus import bonus_config
from tests.support.daemon import run_cli
from tests.support.files_ftp import NO_SMS


def write(tmp_path: Path, master: str, shop: dict[str, Any], *, rules: bool = True) -> Path:
    """A config with ``master`` and a files system ``shop`` of these options."""
    config = bonus_config(tmp_path, master, sms=NO_SMS)
    if rules:
        (tmp_path / "rules.yaml").write_text(
            "rules:\n  - group: default\n    max_share: 0.5\n    accrual_rate: 0.05\n",
            encoding="utf-8",
        )
        config["bonus"]["rules"] = {"file": "rules.yaml"}
    config["systems"]["shop"] = {"type": "files", "options": shop}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def test_a_master_that_cannot_accrue_once_is_refused_by_check_and_serve(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    config = write(tmp_path, "retailcrm", {"url": f"file://{folder}"})
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    assert "systems.shop.type: the bonus master 'retailcrm' cannot accrue exactly once" in err
    code, out, err = await run_cli(config, "serve", timeout=30)
    assert code != 0, out + err
    assert "cannot accrue exactly once" in err + out


async def test_check_names_a_files_source_without_rules(tmp_path: Path) -> None:
    config = write(tmp_path, "onec", {"url": f"file://{tmp_path}"}, rules=False)
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    assert "systems.shop.type: a files source prices documents by the rules" in err


async def test_check_names_each_mistake_of_the_options(tmp_path: Path) -> None:
    shop = {
        "url": "sftp://shop@127.0.0.1/reports",
        "format": "xml",
        "delimiter": ";;",
        "columns": {"card": None, "phone": None},
        "colour": "red",
    }
    config = write(tmp_path, "onec", shop)
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    for expected in (
        "systems.shop.options.url: Value error, sftp:// is not supported yet",
        "systems.shop.options.format: Value error, xml is not supported yet; use csv",
        "systems.shop.options.delimiter:",
        "systems.shop.options.columns: Value error, name a card or a phone column",
        "systems.shop.options.colour: unknown key",
    ):
        assert expected in err, err
    code, out, err = await run_cli(config, "check", "--json")
    assert '"ok": false' in out


async def test_a_password_in_the_url_is_refused(tmp_path: Path) -> None:
    config = write(tmp_path, "onec", {"url": "ftp://shop:secret@127.0.0.1/reports"})
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    assert "systems.shop.options.url: Value error, no password in the url" in err
    assert "secret" not in err.replace("options.password", "")


async def test_check_says_what_a_files_source_does(tmp_path: Path) -> None:
    config = write(tmp_path, "onec", {"url": f"file://{tmp_path}", "poll_interval": 30})
    code, out, err = await run_cli(config, "check")
    assert code == 0, out + err
    assert (
        f"shop: sales reports '*.csv' at file://{tmp_path} every 30 s: each document accrues"
        " at the bonus master by the rules; finished files moved to done/"
    ) in out
