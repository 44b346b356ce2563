"""What every emulator's server does alike: one gate in front of its routes, stop, and
``async with``. Each emulator says how it starts and what its gate refuses."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Self

from aiohttp import web

from connectors._emulator.faults import ADMIN


class ServedEmulator(ABC):
    """An emulator served by aiohttp: ``start`` listens (through ``web.serve``) and keeps
    the runner; ``_refuse`` answers a request itself (an injected fault, a refused login)
    or lets it through. Admin paths (``/__emulator__/…``) always pass."""

    _runner: web.AppRunner | None = None

    @abstractmethod
    async def start(self) -> None:
        """Listen."""

    @abstractmethod
    async def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        """The answer the gate gives instead of the route, or None to let it through."""

    async def stop(self) -> None:
        """Stop listening; requests still hanging are cut off."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith(f"{ADMIN}/"):
            refused = await self._refuse(request)
            if refused is not None:
                return refused
        response: web.StreamResponse = await handler(request)
        return response
