"""Waiting for what the bridge does in the background: a check asked again until it holds."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T]], seconds: float = 15) -> T:
    """What ``check`` returns once it is truthy; fails after ``seconds``."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await check()
        if found:
            return found
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.1)


async def until(check: Callable[[], T], seconds: float = 15) -> T:
    """``eventually`` of a plain (not async) check."""

    async def asked() -> T:
        return check()

    return await eventually(asked, seconds)
