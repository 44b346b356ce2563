"""``bonus.returns``: its defaults, and mistakes named by their key and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import SettingsError
from bridge.settings_loader import read_settings

CONFIG = """\
store:
  url: sqlite:///var/x.db
bonus:
  returns:
{returns}
"""


def load(tmp_path: Path, returns: str) -> list[str]:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(returns=returns), encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        read_settings(path, env={})
    return caught.value.problems


def test_returns_default_to_the_basket_ratio_and_to_whoever_the_master_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("store:\n  url: sqlite:///var/x.db\n", encoding="utf-8")
    returns = read_settings(path, env={}).settings.bonus.returns
    assert (returns.mode, returns.reversed_by, returns.line_statuses) == ("basket", "auto", [])


def test_every_mistake_in_returns_names_its_key_and_line(tmp_path: Path) -> None:
    found = load(
        tmp_path,
        "    mode: ratio\n    reversed_by: crm\n    line_statuses: ['']\n    per: line\n",
    )
    where = tmp_path / "config.yaml"
    assert len(found) == 4, found
    assert found[0].startswith(f"{where}:5: bonus.returns.mode:"), found
    assert "'basket' or 'per_line'" in found[0]
    assert found[1].startswith(f"{where}:6: bonus.returns.reversed_by:"), found
    assert "'auto', 'bridge' or 'master'" in found[1]
    assert found[2].startswith(f"{where}:7: bonus.returns.line_statuses:"), found
    assert "must not be empty" in found[2]
    assert found[3].startswith(f"{where}:8: bonus.returns.per:"), found
