"""The real CLI on a bonus rules file: ``bridge check`` names its mistakes with file:line
and key, beside the config's own; ``bridge serve`` refuses to start on them."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.support.configs import write_config
from tests.support.daemon import run_cli

BAD_RULES = """\
rules:
  - group: default
    max_share: 2
  - group: nosuch
"""


def with_rules(tmp_path: Path, text: str | None, **bonus: object) -> Path:
    """The test config naming ``rules/test.yaml`` (relative to the config's folder)."""
    config = write_config(tmp_path)
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["bonus"] = {"rules": {"file": "rules/test.yaml"}, **bonus}
    config.write_text(yaml.safe_dump(data), encoding="utf-8")
    if text is not None:
        (tmp_path / "rules").mkdir()
        (tmp_path / "rules" / "test.yaml").write_text(text, encoding="utf-8")
    return config


async def test_check_names_each_mistake_of_the_rules_file(tmp_path: Path) -> None:
    config = with_rules(tmp_path, BAD_RULES)
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    rules = tmp_path / "rules" / "test.yaml"
    assert f"{rules}:3: rules[0].max_share: must be a share from 0 to 1, e.g. 0.2" in err
    assert f"{rules}:4: rules[1].group: unknown group 'nosuch'" in err
    assert "2 problem(s)" in err
    assert "Traceback" not in out + err


async def test_check_shows_rules_mistakes_beside_the_configs_own(tmp_path: Path) -> None:
    config = with_rules(tmp_path, BAD_RULES, timeout_seconds=99)
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    assert "bonus.timeout_seconds" in err
    assert "rules[1].group: unknown group 'nosuch'" in err


async def test_a_missing_rules_file_is_named_at_the_configs_line(tmp_path: Path) -> None:
    config = with_rules(tmp_path, None)
    code, out, err = await run_cli(config, "check")
    assert code == 1, out + err
    assert f"{config}:" in err
    assert f"bonus.rules.file: no such rules file: {tmp_path / 'rules' / 'test.yaml'}" in err


async def test_a_good_rules_file_passes_and_a_bad_one_stops_serve(tmp_path: Path) -> None:
    config = with_rules(tmp_path, "rules:\n  - {group: default, max_share: 0.2}\n")
    code, out, err = await run_cli(config, "check")
    assert code == 0, out + err
    (tmp_path / "rules" / "test.yaml").write_text(BAD_RULES, encoding="utf-8")
    code, out, err = await run_cli(config, "serve", timeout=30)
    assert code != 0, out + err
    assert "rules[1].group: unknown group 'nosuch'" in out + err
    assert "Traceback" not in out + err
