"""The real CLI in subprocesses: check, serve, events, replay, and kill -9 recovery."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import Target
from tests.support.configs import HOOK_TOKEN, write_config
from tests.support.daemon import ROOT, Daemon, cli_env, cli_json, free_port, run_cli, status_json

AUTH = {"Authorization": f"Bearer {HOOK_TOKEN}"}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def hook(
    http: aiohttp.ClientSession, daemon: Daemon, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with http.post(
        daemon.url + "/hooks/shop", json=body, headers=AUTH if headers is None else headers
    ) as resp:
        return resp.status, await resp.json(content_type=None)


async def wait_event(config: Path, event_id: str, status: str, seconds: float = 30) -> Any:
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        shown = await cli_json(config, "events", "show", event_id)
        if shown["status"] == status:
            return shown
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{event_id} stayed {shown['status']}")
        await asyncio.sleep(0.2)


async def test_check_names_every_mistake_with_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "config.yaml"
    bad.write_text(
        "http:\n  port: 70000\n"
        "systems:\n  shop:\n    type: recorder\n    options: {url: 'http://127.0.0.1:9'}\n"
        "    webhook: {auth: bearer, token: short}\n"
        "clients:\n  a:\n    token: abcdefghijklmnopq\n    scopes: [bonus:write]\n",
        encoding="utf-8",
    )
    code, out, err = await run_cli(bad, "check")
    assert code == 1, out + err
    lines = [line for line in err.splitlines() if line.startswith(str(bad))]
    assert [line.split(":")[1] for line in lines] == ["2", "7", "11"]
    assert "http.port" in lines[0]
    assert "systems.shop.webhook" in lines[1]
    assert "clients.a.scopes" in lines[2]


async def test_check_passes_on_a_clean_config(tmp_path: Path) -> None:
    code, out, err = await run_cli(write_config(tmp_path), "check")
    assert (code, err) == (0, "")
    assert "OK" in out


async def test_config_may_follow_the_command(tmp_path: Path) -> None:
    good = write_config(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "check",
        "--config",
        str(good),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert str(good) in out.decode()


async def test_committed_config_is_clean() -> None:
    code, out, err = await run_cli(ROOT / "config.yaml", "check")
    assert code == 0, err
    assert "OK (3 systems" in out


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert (await run_cli(config, "replay"))[0] == 2
    assert (await run_cli(config, "events", "list", "--since", "yesterday"))[0] == 2
    assert (await run_cli(config, "no-such-command"))[0] == 2
    code, out, _ = await run_cli(config, "replay", "--help")
    assert code == 0 and "example:" in out


async def test_hook_survives_kill9_right_after_the_ack(
    tmp_path: Path, target: Target, http: aiohttp.ClientSession
) -> None:
    target.state.fault.status = 503  # hold delivery back so the event is still waiting
    config = write_config(tmp_path, target_url=target.url, port=free_port())
    daemon = Daemon(config, int(config.read_text().split("port: ")[1].split()[0]))
    await daemon.start()
    status, body = await hook(
        http, daemon, {"event_id": "k1", "entity": "order", "id": "1"}, headers={}
    )
    assert status == 401
    status, body = await hook(
        http, daemon, {"event_id": "k1", "entity": "order", "id": "1", "data": {"total": "10.00"}}
    )
    assert status == 202 and body["duplicate"] is False
    await daemon.kill9()

    listed = await cli_json(config, "events", "list")
    assert [e["id"] for e in listed["events"]] == [body["event_id"]]
    assert listed["events"][0]["status"] in ("pending", "retry", "in_flight")

    target.state.fault.status = 0
    await daemon.start()
    status, again = await hook(http, daemon, {"event_id": "k1", "entity": "order", "id": "1"})
    assert (status, again) == (202, {"event_id": body["event_id"], "duplicate": True})
    await wait_event(config, body["event_id"], "done")
    assert target.state.state == {"1": {"total": "10.00"}}
    assert await daemon.stop() == 0


async def test_dead_letter_replay_and_show_through_the_cli(
    tmp_path: Path, target: Target, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    config = write_config(tmp_path, target_url=target.url, port=port)
    daemon = Daemon(config, port)
    await daemon.start()
    try:
        target.state.fault.status = 400
        target.state.fault.count = 1
        _, body = await hook(http, daemon, {"event_id": "d1", "entity": "order", "id": "4"})
        await wait_event(config, body["event_id"], "dead")

        code, out, err = await run_cli(config, "replay", "--status", "dead")
        assert code == 2 and "--yes" in err  # bulk replay without a terminal asks for --yes
        plan = await cli_json(config, "replay", "--status", "dead", "--dry-run")
        assert plan["requeued"] == 1 and plan["dry_run"] is True
        code, out, err = await run_cli(config, "replay", "--status", "dead", "--yes")
        assert code == 0 and "requeued 1 deliveries" in out, err

        shown = await wait_event(config, body["event_id"], "done")
        assert [(h["kind"], h["outcome"]) for h in shown["history"]] == [
            ("attempt", "dead"),
            ("replayed", "pending"),
            ("attempt", "done"),
        ]
        assert "HTTP 400" in shown["history"][0]["message"]
        assert shown["history"][0]["error_class"] == "permanent"
        code, out, _ = await run_cli(config, "events", "show", body["event_id"])
        assert code == 0 and "replayed" in out and "permanent" in out

        # Sender-controlled text is printed as text, never read as rich markup.
        _, odd = await hook(http, daemon, {"event_id": "[/x]", "entity": "[bold]", "id": "[/]"})
        code, out, err = await run_cli(config, "events", "list")
        assert code == 0, err
        assert "[bold]/[/]" in out
        code, out, err = await run_cli(config, "events", "show", odd["event_id"])
        assert code == 0, err
        assert "[/x]" in out
        code, _, err = await run_cli(config, "events", "show", "[/x]")
        assert code == 1
        assert "[/x]" in err

        status = await status_json(config)
        assert status["events"] == {"done": 2}
        assert set(status["systems"]) == {"shop", "crm"}  # asked of the running daemon
        code, out, _ = await run_cli(config, "events", "list", "--status", "done")
        assert code == 0 and body["event_id"] in out
    finally:
        await daemon.stop()


async def test_kill9_in_the_middle_of_1000_deliveries(
    tmp_path: Path, target: Target, http: aiohttp.ClientSession
) -> None:
    port = free_port()
    concurrency = 8
    config = write_config(tmp_path, target_url=target.url, port=port, concurrency=concurrency)
    daemon = Daemon(config, port)
    target.state.fault.delay = 0.004  # each write takes a few ms, like a real target
    await daemon.start()
    entities = [str(n) for n in range(1000)]
    for start in range(0, 1000, 100):
        batch = [
            {"event_id": f"e{n}", "entity": "order", "id": n, "data": {"n": n}}
            for n in entities[start : start + 100]
        ]
        status, _ = await hook(http, daemon, {"events": batch})
        assert status == 202
    while len(target.state.applied) < 300:
        await asyncio.sleep(0.01)
    await daemon.kill9()
    at_kill = len(target.state.applied)
    assert at_kill < 1000, "the kill came too late to interrupt anything"

    await daemon.start()
    deadline = asyncio.get_running_loop().time() + 120
    while len(target.state.applied) < 1000:
        assert asyncio.get_running_loop().time() < deadline, len(target.state.applied)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # anything still to come would show up now
    assert await daemon.stop() == 0

    # Every order applied exactly once, by exactly one operation.
    per_entity = Counter(target.state.applied.values())
    assert sorted(per_entity, key=int) == entities
    assert set(per_entity.values()) == {1}
    assert {n: s["n"] for n, s in target.state.state.items()} == {n: n for n in entities}
    # Resends (same operation key, absorbed by the target's idempotency) happen only for
    # the deliveries that were in flight when the process died.
    resent = [key for key, count in target.state.received.items() if count > 1]
    assert len(resent) <= concurrency
    listed = await cli_json(config, "events", "list", "--limit", "2000")
    assert Counter(e["status"] for e in listed["events"]) == {"done": 1000}
    history = json.dumps(await cli_json(config, "events", "show", "evt_1"))
    assert '"attempt"' in history


async def test_check_probe_reaches_the_sandbox_and_names_what_fails(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    shop = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, target_url=url, source_url=shop, sandbox=True)
    code, out, err = await run_cli(config, "check", "--probe")
    assert code == 0, err
    assert "crm: reached: recording target with 0 applied operations" in out

    nowhere = write_config(tmp_path, target_url=f"http://127.0.0.1:{free_port()}")
    code, out, err = await run_cli(nowhere, "check", "--probe")
    assert code == 1
    assert "systems.crm: probe failed (transient): target unreachable" in err


async def test_sandbox_runs_the_emulators_until_stopped(
    tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    shop = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, target_url=url, source_url=shop)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "--config",
        str(config),
        "sandbox",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    assert proc.stdout is not None
    lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode() for _ in range(3)]
    assert f"crm: {url}\n" in lines
    async with http.get(url + "/state") as resp:
        assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(proc.wait(), 30) == 0


async def test_kill9_while_polling_loses_and_duplicates_nothing(
    tmp_path: Path, target: Target
) -> None:
    # The feed pages two changes at a time and answers slowly, so the kill lands between
    # reading a page and storing it, or between pages.
    for n in range(300):
        target.state.feed.append({"no": n + 1, "entity": "order", "id": str(n), "data": {"n": n}})
    target.state.feed_delay = 0.01
    port = free_port()
    config = write_config(
        tmp_path, target_url=target.url, port=port, source_type="feed", source_url=target.url
    )
    daemon = Daemon(config, port)
    cursors = []
    for _ in range(3):
        await daemon.start()
        await asyncio.sleep(0.4)
        await daemon.kill9()
        status = await status_json(config)
        cursors.append(int(status["cursors"][0]["value"]) if status["cursors"] else 0)
    assert cursors == sorted(cursors)
    assert 0 < cursors[0] < 300, cursors  # the first kill came in the middle of the feed
    await daemon.start()
    deadline = asyncio.get_running_loop().time() + 60
    while len(target.state.applied) < 300:
        assert asyncio.get_running_loop().time() < deadline, len(target.state.applied)
        await asyncio.sleep(0.1)
    assert await daemon.stop() == 0
    listed = await cli_json(config, "events", "list", "--source", "shop", "--limit", "1000")
    keys = [e["source_key"] for e in listed["events"]]
    assert sorted(keys) == sorted(f"msg-{n}" for n in range(1, 301))  # each change once
    status = await status_json(config)
    assert {(c["name"], c["value"]) for c in status["cursors"]} == {("changes", "300")}
    assert sorted(target.state.applied.values(), key=int) == [str(n) for n in range(300)]
