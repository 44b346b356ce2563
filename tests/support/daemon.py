"""Driving the real ``bridge`` CLI in subprocesses, as support staff and systemd would."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def cli_env() -> dict[str, str]:
    """Environment for a subprocess that finds the test connectors by entry point."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests" / "plugins")])
    return env


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_cli(
    config: Path, *args: str, stdin: bytes | None = None, timeout: float = 60
) -> tuple[int, str, str]:
    """Run ``bridge --config CONFIG ARGS`` to completion: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "--config",
        str(config),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
        cwd=str(config.parent),
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def cli_json(config: Path, *args: str) -> Any:
    """Run a reader command with ``--json`` and parse its output."""
    code, out, err = await run_cli(config, *args, "--json")
    assert code == 0, err
    return json.loads(out)


async def status_json(config: Path) -> Any:
    """``bridge status --json``: the store's figures, whether or not a daemon answers (exit 1
    and the reason in ``systems`` when none does)."""
    code, out, err = await run_cli(config, "status", "--json")
    assert code in (0, 1), err
    status = json.loads(out)
    assert (code == 1) == isinstance(status["systems"], str), (code, status["systems"])
    return status


class Daemon:
    """``bridge serve`` in a subprocess."""

    def __init__(self, config: Path, port: int) -> None:
        self.config = config
        self.url = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.log = config.parent / "daemon.log"

    async def start(self, timeout: float = 30) -> None:
        """Start and wait for ``/health`` to answer 200."""
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge",
                "--config",
                str(self.config),
                "serve",
                stdout=log,
                stderr=log,
                env=cli_env(),
                cwd=str(self.config.parent),
            )
        deadline = asyncio.get_running_loop().time() + timeout
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited: {self.log.read_text()[-3000:]}")
                try:
                    async with http.get(self.url + "/health") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                if asyncio.get_running_loop().time() > deadline:
                    raise AssertionError(f"no /health: {self.log.read_text()[-3000:]}")
                await asyncio.sleep(0.05)

    async def kill9(self) -> None:
        """SIGKILL: no shutdown code runs, as on a power cut of the process."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None:
            return 0
        if self.proc.returncode is not None:
            return self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), 30)
