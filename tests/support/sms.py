"""An SMS provider on loopback that keeps what it is asked to send (for the ``http`` gateway)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Provider:
    """Where to send, and the texts sent so far."""

    url: str
    texts: list[str] = field(default_factory=list)

    def gateway(self) -> dict[str, Any]:
        """``bonus.sms`` settings that send through this provider."""
        return {
            "gateway": {
                "type": "http",
                "url": self.url,
                "json_body": {"to": "{phone}", "text": "{text}"},
            }
        }

    def last_code(self) -> str:
        """The 6-digit code of the newest text."""
        return str(re.findall(r"[0-9]{6}", self.texts[-1])[0])


@asynccontextmanager
async def sms_provider() -> AsyncIterator[Provider]:
    """A running provider that answers every ``{"to", "text"}`` POST with 200."""
    app = web.Application()
    runner = web.AppRunner(app)
    provider = Provider("")

    async def send(request: web.Request) -> web.Response:
        provider.texts.append((await request.json())["text"])
        return web.json_response({"status": "queued"})

    app.router.add_post("/send", send)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    provider.url = f"http://127.0.0.1:{runner.addresses[0][1]}/send"
    try:
        yield provider
    finally:
        await runner.cleanup()
