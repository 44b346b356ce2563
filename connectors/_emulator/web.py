"""What the sandbox emulators' HTTP answers share: JSON as the systems' PHP back ends write
it, and the nginx error page a proxy in front of them shows."""

from __future__ import annotations

import json
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from aiohttp import web


def json_number(value: Decimal) -> int | float:
    """A Decimal as a PHP back end writes a number: 1500, 1500.5."""
    return int(value) if value == value.to_integral_value() else float(value)


def dumps(body: Any) -> str:
    """JSON text of an answer; Decimals become numbers, non-ASCII stays readable."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return json_number(value)
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    return json.dumps(body, ensure_ascii=False, default=default)


def json_reply(status: int, body: Any) -> web.Response:
    """A JSON answer; Decimals as numbers."""
    return web.Response(status=status, text=dumps(body), content_type="application/json")


def nginx_page(status: int) -> web.Response:
    """An error page as nginx in front of the system writes it (proxy errors are HTML)."""
    phrase = HTTPStatus(status).phrase if status in set(HTTPStatus) else "Error"
    page = (
        f"<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>nginx</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return web.Response(status=status, text=page, content_type="text/html")


def json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object (the emulators' admin endpoints)."""
    value = json.loads(body)
    if isinstance(value, dict):
        return value
    raise ValueError("a JSON object is expected")


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int, str]:
    """Listen on host:port (a free port when 0): the runner, the port, and the base URL."""
    # handler_cancellation: a client that gave up on a hang frees its handler at once.
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    port = int(runner.addresses[0][1])
    shown = f"[{host}]" if ":" in host else host
    return runner, port, f"http://{shown}:{port}"
