"""The 1C HTTP-service client (aiohttp) over real sockets: kept-alive connections, the
environment read once, a bounded pool, and calls from another event loop. Each call goes as
the connector sends it: the reference contract's declaration over the wire client.

The emulator and, where a test needs to see the connections or stand in for a proxy, a bare
aiohttp server on loopback; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import pytest
from aiohttp import web

from bridge.errors import TransientError
from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.client import HttpServiceClient, OnecUnreachable, environment_proxy
from connectors.onec.connector import ONEC
from connectors.onec.declared.calls import DeclaredService
from connectors.onec.declared.reference import reference_declaration
from connectors.onec.emulator import OnecEmulator

IVAN = "+79000000001"
ANSWER = {"customer_id": "c-1", "phone": IVAN, "card": None, "name": "Иван"}
RECORD = {"customer_id": "c-1", "phone": IVAN, "name": "Иван"}  # the record leaves out a null
REFERENCE = reference_declaration(None, "http")


@dataclass
class Wire:
    """A bare HTTP-service stand-in: what it saw, and how long it makes each answer wait."""

    url: str
    peers: list[tuple[str, int]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)  # request lines' targets, as sent
    auth: list[str] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    delay: float = 0.0


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    state = Wire("")

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        assert request.transport is not None
        state.peers.append(request.transport.get_extra_info("peername")[:2])
        state.targets.append(str(request.raw_path))
        state.auth.append(request.headers.get("Authorization", ""))
        state.in_flight += 1
        state.most_in_flight = max(state.most_in_flight, state.in_flight)
        try:
            await asyncio.sleep(state.delay)
        finally:
            state.in_flight -= 1
        return web.json_response(ANSWER)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}/base/hs/loyalty"
    yield state
    await runner.cleanup()


def client_for(url: str, *, pool_size: int = 4, timeout: float = 2.0) -> HttpServiceClient:
    return HttpServiceClient(
        url=url, username="bridge", password="sandbox", timeout=timeout, pool_size=pool_size
    )


async def find_ivan(client: HttpServiceClient) -> dict[str, object]:
    """find_customer by Ivan's phone, as the connector calls it (POST /v1/find-customer)."""
    return await DeclaredService(REFERENCE, client).call("find_customer", {"phone": IVAN})


async def test_calls_share_one_kept_alive_connection(wire: Wire) -> None:
    client = client_for(wire.url)
    try:
        for _ in range(5):
            assert await find_ivan(client) == RECORD
    finally:
        await client.close()
    assert len(wire.peers) == 5
    assert len(set(wire.peers)) == 1  # one TCP connection for all five calls
    assert wire.auth == ["Basic YnJpZGdlOnNhbmRib3g="] * 5  # bridge:sandbox


async def test_no_more_calls_at_once_than_the_pool_allows(wire: Wire) -> None:
    wire.delay = 0.05
    client = client_for(wire.url, pool_size=2)
    try:
        calls = [find_ivan(client) for _ in range(6)]
        await asyncio.gather(*calls)
    finally:
        await client.close()
    assert wire.most_in_flight == 2  # delivery.concurrency, as the thread pool bounded it


async def test_the_proxy_variables_are_read_once_when_the_client_is_made(
    wire: Wire, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    service = "http://1c.example.invalid/base/hs/loyalty"
    proxy = wire.url.split("/base/")[0]
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)
    assert environment_proxy(service) == proxy
    client = client_for(service)  # reads the variables now
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.delenv("http_proxy")
    try:
        # Sent to the proxy (the stand-in) in absolute form, though the variables are gone.
        assert await find_ivan(client) == RECORD
    finally:
        await client.close()
    assert wire.targets == [f"{service}/v1/find-customer"]


def test_no_proxy_exempts_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "1c.example.invalid")
    monkeypatch.delenv("no_proxy", raising=False)
    assert environment_proxy("http://1c.example.invalid/base/hs/loyalty") is None
    assert environment_proxy("http://other.example.invalid/") is not None


async def test_a_closed_client_opens_a_new_pool_on_the_next_call(wire: Wire) -> None:
    client = client_for(wire.url)
    await find_ivan(client)
    await client.close()
    try:
        assert await find_ivan(client) == RECORD
    finally:
        await client.close()
    assert len(set(wire.peers)) == 2


async def test_a_call_from_another_event_loop_gets_a_connection_of_its_own(wire: Wire) -> None:
    client = client_for(wire.url)
    answers: list[object] = []
    try:
        await find_ivan(client)  # the pool lives on this loop

        def elsewhere() -> None:  # a second loop in a thread, as asyncio.run elsewhere would
            answers.append(asyncio.run(find_ivan(client)))

        thread = threading.Thread(target=elsewhere)
        thread.start()
        await asyncio.to_thread(thread.join)
        await find_ivan(client)
    finally:
        await client.close()
    assert answers == [RECORD]
    first, other, last = wire.peers
    assert first == last != other  # the pool was kept; the other loop's one-off was closed


async def test_a_closed_port_is_unreachable_not_a_timeout() -> None:
    async with OnecEmulator() as emulator:
        url = emulator.hs_url
    client = client_for(url)  # nothing listens there any more
    try:
        with pytest.raises(OnecUnreachable) as caught:
            await find_ivan(client)
    finally:
        await client.close()
    assert caught.value.timed_out is False


async def test_the_connector_runs_http_calls_without_its_worker_threads() -> None:
    async with OnecEmulator() as emulator:
        options: dict[str, object] = {"transport": "http", "url": emulator.hs_url}
        options |= {"username": "bridge", "password": "sandbox", "poll_interval": 0}
        system = SystemSettings(type="onec", delivery=DeliverySettings(timeout_seconds=0.5))
        connector = ONEC.create("onec", system, ONEC.options_model.model_validate(options))
        await connector.start()
        try:
            customer = await connector.find_customer(phone=IVAN)
            balance = await connector.balance(customer.customer_id, Decimal("300"))
            assert balance.max_redeemable == Decimal("150.00")
            # The pool's threads start with their first job: none was ever given one.
            assert not [t for t in threading.enumerate() if t.name.startswith("onec-onec")]
            emulator.faults.set(hang=5)
            started = asyncio.get_running_loop().time()
            with pytest.raises(TransientError):
                await connector.balance(customer.customer_id)
            assert asyncio.get_running_loop().time() - started < 0.5 + 0.6
        finally:
            emulator.faults.clear()
            await connector.close()
