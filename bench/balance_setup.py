"""What bench/balance.py sets up before the load: the master's system settings and the
bridge's config, and the requests the bridge's connector makes on a warm look-up, captured
on the wire to be replayed by the direct and floor streams."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web

from bridge.settings import SystemSettings
from connectors.onec.connector import ONEC
from connectors.retailcrm.connector import RETAILCRM

TOKEN, PHONE = "bench-balance-client-token-01", "+79000000001"
CRM_KEY = "sandbox-bridge-key-0001"
# Set by the client library or the proxy, not by the connector: aiohttp sets its own.
DROP = {"host", "content-length", "connection", "user-agent", "accept-encoding"}
DROP |= {"transfer-encoding", "keep-alive"}


class Call(NamedTuple):
    """One HTTP request the bridge's connector made to the master, replayed as is."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def master_system(master: str, urls: dict[str, str], crm_rate: float) -> dict[str, Any]:
    """``systems.<master>`` pointed at the emulator, no polling."""
    if master == "retailcrm":
        options: dict[str, Any] = {"url": urls["url"], "api_key": CRM_KEY}
        options |= {"rate_limit": crm_rate, "poll_interval": 0}
        return {"type": "retailcrm", "options": options}
    soap = master == "onec-soap"
    options = {"transport": "soap" if soap else "http", "username": "bridge"}
    options |= {"address": urls["url"]} if soap else {"url": urls["hs_url"]}
    return {"type": "onec", "options": options | {"password": "sandbox", "poll_interval": 0}}


def write_config(tmp: Path, port: int, name: str, system: dict[str, Any]) -> Path:
    """Store in tmp, one client with bonus:read, the master as the only system (JSON is YAML)."""
    # A look-up sends no SMS, but the bridge wants a real way to send confirmation codes:
    # the master's own (RetailCRM), or a gateway template at a closed port (never called).
    sms: dict[str, Any] = {"sender": "master"}
    if system["type"] != "retailcrm":
        sms = {"sender": "bridge", "gateway": {"type": "http", "url": "http://127.0.0.1:9/sms"}}
    config = {
        "store": {"url": f"sqlite:///{tmp / 'bench.db'}"},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "clients": {"till": {"token": TOKEN, "scopes": ["bonus:read"]}},
        "systems": {name: system},
        "bonus": {"master": name, "sms": sms},
        "sandbox": {"enabled": False},
    }
    path = tmp / "bench.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


async def capture(name: str, system: dict[str, Any], cart: Decimal | None) -> list[Call]:
    """The requests the bridge's connector makes for a warm look-up, as they reach the
    master: recorded by a pass-through proxy put where the master is.

    Recorded on the wire, so whatever the connector uses (zeep, aiohttp) is seen alike.
    The first look-up finds the customer (``find_customer``, then ``balance``); the second,
    the one kept, is ``balance`` alone: the bonus service remembers who the phone is
    (``bridge/bonus/customers.py``), so that is what the bridge asks on a warm look-up,
    and a connector may remember something from the first (RetailCRM's bonus details).
    """
    target = system["options"].get("url") or system["options"]["address"]
    origin = target.split("/", 3)[:3]  # scheme, "", host:port
    master = "/".join(origin)
    recording: list[Call] | None = None
    upstream = aiohttp.ClientSession(auto_decompress=False)

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
        if recording is not None:
            recording.append(Call(request.method, master + request.path_qs, headers, body))
        url = master + request.path_qs
        async with upstream.request(request.method, url, data=body, headers=headers) as r:
            answer = await r.read()
            kept = {k: v for k, v in r.headers.items() if k.lower() not in DROP}
            return web.Response(status=r.status, body=answer, headers=kept)

    app = web.Application(client_max_size=16 * 2**20)
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    proxied = json.loads(
        json.dumps(system).replace(master, f"http://127.0.0.1:{runner.addresses[0][1]}")
    )
    ctype: Any = RETAILCRM if system["type"] == "retailcrm" else ONEC
    options = ctype.options_model.model_validate(proxied["options"])
    connector = ctype.create(name, SystemSettings(type=system["type"]), options)
    try:
        await connector.start()  # the WSDL is read here, before recording starts
        customer = await connector.find_customer(phone=PHONE)
        await connector.balance(customer.customer_id, cart)
        recording = []
        balance = await connector.balance(customer.customer_id, cart)
        calls = recording
    finally:
        await connector.close()
        await upstream.close()
        await runner.cleanup()
    cap = None if cart is None else Decimal(150)
    if (balance.balance, balance.max_redeemable) != (Decimal(1000), cap):
        raise SystemExit(f"unexpected balance from the emulator: {balance!r:.300}")
    if not calls:
        raise SystemExit("the connector sent nothing to the master: nothing to replay")
    return calls
