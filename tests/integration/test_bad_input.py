"""Bad input on every endpoint: never a 5xx, always problem+json naming what is wrong."""

from __future__ import annotations

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
