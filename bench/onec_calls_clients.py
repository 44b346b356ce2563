"""What bench/onec_calls.py calls 1C with: the emulator in its own process, the connector as
the bridge builds it, and a raw client (zeep's async path over aiohttp, or aiohttp alone)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import requests
import zeep
import zeep.wsdl.utils
from onec_calls_measure import Call  # bench/ is on sys.path when run as a script
from requests.auth import HTTPBasicAuth

from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector

ROOT = Path(__file__).resolve().parent.parent
PHONE, CART, USER, PASSWORD = "+79000000001", Decimal("300"), "bridge", "sandbox"
TIMEOUT, CONCURRENCY = 5.0, 4
# The emulator's own process: it prints its URLs as one JSON line, then serves until the
# bench closes its stdin, so client and server never share an event loop, a GIL or the
# bench's process_time().
EMULATOR = """
import asyncio, json, sys
from connectors.onec.emulator import OnecEmulator

async def main() -> None:
    emulator = OnecEmulator(username=sys.argv[1], password=sys.argv[2])
    await emulator.start()
    urls = {"url": emulator.url, "wsdl_url": emulator.wsdl_url, "hs_url": emulator.hs_url}
    print(json.dumps(urls), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await emulator.stop()

asyncio.run(main())
"""


class Reply(NamedTuple):
    """What zeep's ``process_reply`` reads of an HTTP answer."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]
    encoding: str | None


class AioTransport(zeep.Transport):
    """zeep's async path over a bare aiohttp session: the least a raw async client needs.

    zeep's own ``AsyncTransport`` is built on httpx, which the project does not install; this
    is the connector's transport without its checks. ``canned``, once set, is answered
    without any I/O (the envelope is still serialized, as the connector's transport does).
    """

    def __init__(self, http: aiohttp.ClientSession, session: requests.Session) -> None:
        super().__init__(session=session)  # type: ignore[no-untyped-call]
        self.http = http
        self.last: Reply | None = None
        self.canned: Reply | None = None

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, str]) -> Reply:
        """POST the envelope; the answer as zeep reads it."""
        body = zeep.wsdl.utils.etree_to_string(envelope)  # type: ignore[no-untyped-call]
        if self.canned is not None:
            return self.canned
        async with self.http.post(address, data=body, headers=headers) as r:
            self.last = Reply(r.status, await r.read(), r.headers, r.charset)
        return self.last


def start_emulator() -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run the 1C emulator in a child process; its URLs once it listens."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-c", EMULATOR, USER, PASSWORD]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line:
        stop_emulator(proc)
        raise SystemExit(f"the emulator did not start within 30 s (exit {proc.returncode})")
    return proc, dict(json.loads(line))


def stop_emulator(proc: subprocess.Popen[str]) -> int | None:
    """Close the emulator's stdin (its signal to stop) and wait for it; its exit code."""
    if proc.stdin is not None:
        proc.stdin.close()
    try:
        return proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def make_connector(transport: str, urls: dict[str, str]) -> OnecConnector:
    """The 1C connector as the bridge builds it (reference contract), at the emulator."""
    where = {"address": urls["url"]} if transport == "soap" else {"url": urls["hs_url"]}
    options = {"transport": transport, "username": USER, "password": PASSWORD, **where}
    system = SystemSettings(
        type="onec",
        delivery=DeliverySettings(timeout_seconds=TIMEOUT, concurrency=CONCURRENCY),
    )
    return ONEC.create("onec", system, ONEC.options_model.model_validate(options))


def raw_client(
    transport: str, urls: dict[str, str], cid: str, http: aiohttp.ClientSession
) -> tuple[Call, Callable[[bytes], Awaitable[object]]]:
    """The raw call for ``transport`` over ``http``, and the same with the network canned."""
    if transport == "soap":
        session = requests.Session()  # the WSDL only
        session.auth = HTTPBasicAuth(USER, PASSWORD)
        aio = AioTransport(http, session)
        service = zeep.AsyncClient(urls["wsdl_url"], transport=aio).service  # type: ignore[no-untyped-call]
        session.close()

        async def raw() -> object:
            return await service.GetBalance(CustomerId=cid, CartTotal=CART)

        async def canned(answer: bytes) -> object:  # the last real reply stands in for it
            aio.canned = aio.last
            try:
                return await service.GetBalance(CustomerId=cid, CartTotal=CART)
            finally:
                aio.canned = None

        return raw, canned
    balance_url = f"{urls['hs_url']}/v1/balance"
    body = {"customer_id": cid, "cart_total": str(CART)}

    async def raw_http() -> object:
        async with http.post(balance_url, json=body) as response:
            response.raise_for_status()
            return await response.json()

    async def canned_http(answer: bytes) -> object:
        json.dumps(body)
        return json.loads(answer)

    return raw_http, canned_http


def check_raw(transport: str, answer: Any) -> None:
    """The raw call must see the seeded customer: 1000 points, 150 redeemable of 300."""
    if transport == "soap":
        got = (answer["Balance"], answer["MaxRedeemable"])
    else:
        got = (Decimal(answer["balance"]), Decimal(answer["max_redeemable"]))
    if got != (Decimal(1000), Decimal(150)):
        raise SystemExit(f"unexpected raw balance answer: {answer!r:.300}")
