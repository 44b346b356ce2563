"""Shared fixtures: a recording target and a running bridge, both real servers on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bridge.http.app import build_app
from bridge.runtime import Runtime, build_runtime
from bridge.settings_loader import read_settings
from tests.support.configs import write_config
from tests.support.target import TargetState, build_target_app


@dataclass
class Target:
    """A running recording target."""

    url: str
    state: TargetState


@dataclass
class Bridge:
    """A running bridge app and a client session to call it."""

    url: str
    runtime: Runtime
    http: aiohttp.ClientSession


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    """A recording target server on a free loopback port."""
    state = TargetState()
    runner, url = await _serve(build_target_app(state))
    yield Target(url, state)
    await runner.cleanup()


StartBridge = Callable[..., Any]


@pytest.fixture
async def start_bridge(tmp_path: Path) -> AsyncIterator[StartBridge]:
    """Start a bridge in-process on loopback with ``write_config(**options)``."""
    runners: list[tuple[web.AppRunner, aiohttp.ClientSession]] = []

    async def start(**options: Any) -> Bridge:
        path = write_config(tmp_path, **options)
        runtime = build_runtime(read_settings(path, env={}))
        runner, url = await _serve(build_app(runtime))
        session = aiohttp.ClientSession()
        runners.append((runner, session))
        return Bridge(url, runtime, session)

    yield start
    for runner, session in runners:
        await session.close()
        await runner.cleanup()
