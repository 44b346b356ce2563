"""Bad input on every endpoint: never a 5xx, always problem+json naming what is wrong."""

from __future__ import annotations

import asyncio
import io
import json
import random

from tests.conftest import StartBridge
from tests.support.configs import ADMIN_TOKEN, CLIENT_TOKEN, HOOK_TOKEN

JUNK_BODIES: list[bytes] = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"\xff\xfe\x00garbage",
    b'{"entity": "order", "id": {"nested": true}}',
    b'{"entity": "order", "id": "1", "data": [1, 2]}',
    b'{"entity": "order", "id": "1", "data": {"x": NaN}}',
    b'{"events": []}',
    b'{"events": "nope"}',
    b'{"events": [1, 2, 3]}',
    b"[" * 50_000 + b"]" * 50_000,
    json.dumps({"entity": "o" * 500, "id": "1"}).encode(),
    json.dumps({"events": [{"entity": "order", "id": str(n)} for n in range(501)]}).encode(),
    b'{"ids": ["evt_1"], "filter": {"status": "dead", "limit": "9999999"}}',
    b'{"ids": "evt_1"}',
    b'{"filter": {"since": "not a time"}}',
    b'{"ids": ["nonsense"]}',
    b'{"ids": ["evt_99999999999999999999999"]}',
    b'{"dry_run": "yes", "ids": ["evt_1"]}',
]

HEADERS = [
    {},
    {"Authorization": f"Bearer {HOOK_TOKEN}"},
    {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    {"Authorization": f"Bearer {CLIENT_TOKEN}"},
    {"Authorization": "Basic Zm9vOmJhcg=="},
    {"Authorization": "Bearer"},
    {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Bearer {HOOK_TOKEN}"},
    {"webhook-id": "x", "webhook-timestamp": "-1", "webhook-signature": "v1,zzz"},
]

TARGETS = [
    ("POST", "/hooks/shop"),
    ("POST", "/hooks/shop?token=x"),
    ("POST", "/hooks/crm"),
    ("POST", "/hooks/%00"),
    ("GET", "/api/v1/events?limit=-1"),
    ("GET", "/api/v1/events?since=yesterday&status=dead"),
    ("GET", "/api/v1/events?colour=blue"),
    ("GET", "/api/v1/events/evt_abc"),
    ("GET", "/api/v1/events/%F0%9F%98%80"),
    ("POST", "/api/v1/events/replay"),
    ("PUT", "/api/v1/events/replay"),
    ("GET", "/metrics"),
    ("DELETE", "/health"),
]


async def test_fuzzed_requests_never_get_a_5xx(start_bridge: StartBridge) -> None:
    bridge = await start_bridge()
    rng = random.Random(20261122)
    bodies = [*JUNK_BODIES, *(rng.randbytes(rng.randint(1, 400)) for _ in range(40))]
    seen: set[int] = set()
    for method, path in TARGETS:
        for body in bodies:
            headers = rng.choice(HEADERS)
            async with bridge.http.request(
                method, bridge.url + path, data=io.BytesIO(body), headers=headers
            ) as resp:
                text = await resp.text()
            seen.add(resp.status)
            assert resp.status < 500, (method, path, body[:80], resp.status, text[:300])
            if resp.status >= 400:
                assert resp.headers["Content-Type"].startswith("application/problem+json")
                problem = json.loads(text)
                assert problem["code"]
                assert "Traceback" not in text
    assert {401, 404, 405, 422, 400, 413} - seen <= {413}


async def raw_request(url: str, request: bytes) -> int:
    """Send bytes as they are (headers that are not UTF-8) and return the status code."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])


async def test_odd_bytes_and_digits_are_client_errors(start_bridge: StartBridge) -> None:
    bridge = await start_bridge()
    body = b'{"event_id": "z", "entity": "order", "id": "1"}'
    for header in (
        b"Authorization: Bearer \xff\xfe\xfa",
        b"webhook-id: m\r\nwebhook-timestamp: \xc2\xb9\r\nwebhook-signature: v1,x",
    ):
        request = (
            b"POST /hooks/shop HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + header
            + b"\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\nConnection: close\r\n\r\n"
            + body
        )
        assert await raw_request(bridge.url, request) == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for path in (
        "/api/v1/events/evt_%C2%B2",
        "/api/v1/events?limit=%C2%B2",
        "/api/v1/events?since=99999999999999d",
        "/api/v1/events?since=" + "9" * 5000 + "d",
    ):
        async with bridge.http.get(bridge.url + path, headers=admin) as resp:
            assert 400 <= resp.status < 500, path


async def test_lone_surrogates_are_rejected_not_crashed(start_bridge: StartBridge) -> None:
    bridge = await start_bridge()
    auth = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    for body in (
        b'{"event_id": "s1", "entity": "order", "id": "1", "data": {"x": "\\ud800"}}',
        b'{"event_id": "\\udfff", "entity": "order", "id": "1"}',
    ):
        async with bridge.http.post(bridge.url + "/hooks/shop", data=body, headers=auth) as resp:
            problem = await resp.json(content_type=None)
        assert resp.status == 422
        assert "UTF-8" in problem["detail"] or "cannot be stored" in problem["detail"]
