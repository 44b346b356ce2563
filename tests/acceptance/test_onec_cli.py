"""The 1C connector through the real CLI: probe against the sandbox and what it names."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from connectors.onec.emulator import OnecEmulator
from tests.support.daemon import ROOT, Daemon, cli_json, free_port, run_cli, status_json


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
    assert re.search(r"^  balance +declared but failing", err, re.M)
    assert "the WSDL has no operation ПолучитьБаланс" in err


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


async def test_serve_starts_the_sandbox_and_polls_its_change_feed(tmp_path: Path) -> None:
    onec_port, http_port = free_port(), free_port()
    address = f"http://127.0.0.1:{onec_port}/base/ws/BridgeLoyalty.1cws"
    config = tmp_path / "config.yaml"
    doc = {
        "store": {"url": f"sqlite:///{tmp_path / 'b.db'}"},
        "http": {"port": http_port},
        "log": {"format": "json"},
        "systems": {
            "onec": {
                "type": "onec",
                "webhook": {"auth": "bearer", "token": "onec-hook-token-0001"},
                "options": {
                    "address": address,
                    "username": "bridge",
                    "password": "sandbox",
                    "poll_interval": 0.2,
                },
            }
        },
        "sandbox": {"enabled": True},
    }
    config.write_text(yaml.safe_dump(doc), encoding="utf-8")
    daemon = Daemon(config, http_port)
    await daemon.start()
    try:
        async with aiohttp.ClientSession() as http:
            emulator_admin = f"http://127.0.0.1:{onec_port}/__emulator__/changes"
            async with http.post(emulator_admin, json={"entity": "receipt", "id": "ЧК-7"}) as r:
                assert r.status == 200
            async with http.post(
                f"{daemon.url}/hooks/onec",
                json={"event_id": "ret-1", "entity": "return", "id": "ВЗ-1"},
                headers={"Authorization": "Bearer onec-hook-token-0001"},
            ) as r:
                assert r.status == 202
        deadline = asyncio.get_running_loop().time() + 20
        while True:
            listed = await cli_json(config, "events", "list", "--source", "onec")
            keys = {(e["entity"], e["entity_id"], e["source_key"]) for e in listed["events"]}
            if ("receipt", "ЧК-7", "msg-1") in keys:
                break
            assert asyncio.get_running_loop().time() < deadline, keys
            await asyncio.sleep(0.2)
        assert ("return", "ВЗ-1", "ret-1") in keys
        status = await status_json(config)
        assert status["cursors"][0]["source"] == "onec"
        assert status["cursors"][0]["value"] == "1"
    finally:
        assert await daemon.stop() == 0


def example_copy(tmp_path: Path, name: str) -> Path:
    """An example of examples/onec/ as shipped, on free ports, its files named absolutely
    (the daemon reads them relative to the config's folder)."""
    folder = ROOT / "examples" / "onec" / name
    doc = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    options = doc["systems"]["onec"]["options"]
    key = "address" if options["transport"] == "soap" else "url"
    path = options[key].split(":-", 1)[1].rstrip("}").split("/base/", 1)[1]
    options[key] = f"http://127.0.0.1:{free_port()}/base/{path}"
    for file_key in ("service", "emulator"):
        if file_key in options:
            options[file_key] = str(folder / options[file_key])
    doc["store"]["url"] = f"sqlite:///{tmp_path / 'b.db'}"
    doc["http"]["port"] = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return config


@pytest.mark.parametrize(
    ("name", "available", "absent"),
    [
        ("reference", ["find_customer", "balance", "reserve", "get_changes"], ["max_redeemable"]),
        ("cyrillic_soap", ["balance", "reserve"], ["find_customer", "accrue"]),
        ("http_json", ["find_customer", "balance", "reserve", "commit", "release"], ["accrue"]),
    ],
)
async def test_check_probe_prints_each_examples_capability_table(
    tmp_path: Path, name: str, available: list[str], absent: list[str]
) -> None:
    code, out, err = await run_cli(example_copy(tmp_path, name), "check", "--probe")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for capability in available:
        assert "  available  " in f"{rows[capability]}  ", rows[capability]
    for capability in absent:
        assert rows[capability].split()[1:] == ["not", "declared"], rows[capability]
    if name == "cyrillic_soap":
        assert rows["commit"].split()[1:] == ["done", "by", "1C", "at_sale"]
        assert "onec: reservations: on (commit done by 1C (at_sale)" in out


async def test_check_names_each_problem_of_a_declaration_at_its_line(tmp_path: Path) -> None:
    declaration = tmp_path / "service.yaml"
    declaration.write_text(
        "version: 1\n"
        "transport: soap\n"
        "soap: {service: Бонусы}\n"
        "capabilities:\n"
        "  balance:\n"
        "    operation: Остаток\n"
        "    args:\n"
        "      - {to: КодКлиента, from: client}\n"
        "  reserve: {done_by_1c: at_sale}\n",
        encoding="utf-8",
    )
    options = {"address": "http://127.0.0.1:9/base/ws/x.1cws", "service": "service.yaml"}
    code, _, err = await run_cli(config_for(tmp_path, options), "check")
    assert code == 1
    assert f"{declaration}:8: capabilities.balance.args[0].from: 'client' is not in" in err
    assert f"{declaration}:9: capabilities.reserve.done_by_1c: 'at_sale': not possible" in err


async def test_check_names_a_problem_of_an_inline_declaration_at_its_line_in_config(
    tmp_path: Path,
) -> None:
    service = {
        "version": 1,
        "transport": "soap",
        "soap": {"service": "Бонусы"},
        "capabilities": {"balance": {"operation": "Остаток", "args": [{"to": "A", "from": "x"}]}},
    }
    options = {"address": "http://127.0.0.1:9/base/ws/x.1cws", "service": service}
    config = config_for(tmp_path, options)
    code, _, err = await run_cli(config, "check")
    assert code == 1
    lines = config.read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if text.strip().endswith("from: x"))
    where = "systems.onec.options.service.capabilities.balance.args[0].from"
    assert f"{config}:{line}: {where}: 'x' is not in balance's request" in err


async def test_probe_passes_a_reference_1c_published_without_the_optional_operations(
    tmp_path: Path,
) -> None:
    older = OnecEmulator(port=free_port(), unpublished=("list_orders", "list_customers"))
    async with older:
        options = {"address": older.url, "username": "bridge", "password": "sandbox"}
        code, out, err = await run_cli(config_for(tmp_path, options), "check", "--probe")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert rows["list_orders"].split()[1:4] == ["not", "published", "ListOrders"]
    assert "  available  " in rows["get_changes"]
