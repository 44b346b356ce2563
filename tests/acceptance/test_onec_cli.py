"""The 1C connector through the real CLI: probe against the sandbox and what it names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.onec.emulator import OnecEmulator
from tests.support.daemon import ROOT, free_port, run_cli


@pytest.fixture
async def onec() -> AsyncIterator[OnecEmulator]:
    emulator = OnecEmulator(port=free_port())
    await emulator.start()
    yield emulator
    await emulator.stop()


def config_for(tmp_path: Path, options: dict[str, Any], sandbox: bool = False) -> Path:
    path = tmp_path / "config.yaml"
    doc = {
        "store": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
        "systems": {"onec": {"type": "onec", "options": options}},
        "sandbox": {"enabled": sandbox},
    }
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


async def test_probe_passes_against_the_committed_sandbox() -> None:
    code, out, err = await run_cli(ROOT / "config.yaml", "check", "--probe")
    assert code == 0, err
    assert "onec: reached: SOAP 1.1 service BridgeLoyalty" in out


async def test_probe_names_a_wrong_password(tmp_path: Path, onec: OnecEmulator) -> None:
    config = config_for(tmp_path, {"address": onec.url, "username": "bridge", "password": "wrong"})
    code, _, err = await run_cli(config, "check", "--probe")
    assert code == 1
    assert "systems.onec: probe failed (auth): 1C refused the credentials (HTTP 401" in err


async def test_probe_names_an_operation_the_wsdl_lacks(tmp_path: Path, onec: OnecEmulator) -> None:
    options = {
        "address": onec.url,
        "username": "bridge",
        "password": "sandbox",
        "operations": {"operations": {"balance": {"operation": "ПолучитьБаланс"}}},
    }
    code, _, err = await run_cli(config_for(tmp_path, options), "check", "--probe")
    assert code == 1
    assert "probe failed (config)" in err
    assert "the WSDL lacks operations: balance → ПолучитьБаланс" in err


async def test_probe_against_a_sandbox_with_cyrillic_names(tmp_path: Path) -> None:
    naming = yaml.safe_load((ROOT / "connectors/onec/wsdl/cyrillic_example.yaml").read_text())
    options = {
        "address": f"http://127.0.0.1:{free_port()}/shop/ws/БонуснаяПрограмма.1cws",
        "username": "bridge",
        "password": "sandbox",
        "operations": naming,
    }
    code, out, err = await run_cli(config_for(tmp_path, options, sandbox=True), "check", "--probe")
    assert code == 0, err
    assert "onec: reached: SOAP 1.1 service БонуснаяПрограмма" in out
