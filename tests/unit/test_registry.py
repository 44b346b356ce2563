"""Building connectors from config: found by entry point, checked against their use."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.errors import SettingsError
from bridge.registry import build_connectors, installed_types
from bridge.settings import Settings
from bridge.settings_loader import read_settings


def settings(systems: dict[str, object], routes: list[object] | None = None) -> Settings:
    return Settings.model_validate({"systems": systems, "mirror": {"routes": routes or []}})


RECORDER = {"type": "recorder", "options": {"url": "http://127.0.0.1:9"}}
HOOK = {"auth": "connector", "token": "a-token-of-16-chars"}


def test_entry_points_are_found() -> None:
    assert {"recorder", "onec", "retailcrm", "bitrix"} <= set(installed_types())


def test_body_token_auth_only_for_connectors_that_check_it() -> None:
    _, problems = build_connectors(settings({"shop": {**RECORDER, "webhook": HOOK}}))
    assert [(p.path, "does not check a token" in p.message) for p in problems] == [
        (("systems", "shop", "webhook", "auth"), True)
    ]
    _, problems = build_connectors(settings({"bx": {"type": "bitrix", "webhook": HOOK}}))
    assert problems == []


def test_unknown_type_bad_options_and_unwritable_targets() -> None:
    s = settings(
        {
            "a": {"type": "nosuch"},
            "b": {"type": "recorder", "options": {"url": "x", "colour": "red"}},
            "c": {"type": "bitrix", "webhook": HOOK},
            "d": RECORDER,
        },
        [{"source": "d", "entity": "order", "targets": ["c"]}],
    )
    _, problems = build_connectors(s)
    found = {(p.path, p.message.split(" (")[0].split(",")[0]) for p in problems}
    assert found == {
        (("systems", "a", "type"), "no connector of type 'nosuch' is installed"),
        (("systems", "b", "options", "colour"), "unknown key"),
        (("mirror", "routes", 0, "targets", 0), "the bitrix connector cannot write"),
    }


def test_lease_must_outlive_the_attempt_timeout(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "store: {lease_seconds: 10}\n"
        "systems:\n  d:\n    type: recorder\n    delivery: {timeout_seconds: 30}\n",
        encoding="utf-8",
    )
    with pytest.raises(SettingsError) as caught:
        read_settings(path, env={})
    assert (
        "store.lease_seconds (10) must exceed systems.d.delivery.timeout_seconds (30)"
        in (caught.value.problems[0])
    )
