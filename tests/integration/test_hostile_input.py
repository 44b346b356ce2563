"""Hostile requests on every route the app serves (listed from its router): bodies that
lie about their encoding, encodings the bridge cannot read, lone surrogates and control
characters in JSON, wrong methods, unknown paths, oversized bodies. Never a 5xx, every
error a problem document with a code, and nothing in the log at ERROR (issue 12, point 14).
"""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import AsyncIterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from bridge.http.app import build_app
from tests.support.bonus import ADMIN, TILL, Bonus, bonus_config, start_bonus
from tests.support.configs import HOOK_TOKEN

HOOK = {"Authorization": f"Bearer {HOOK_TOKEN}"}
RSV = "/api/v1/bonus/reservations"


@pytest.fixture
async def bonus(tmp_path: Path) -> AsyncIterator[Bonus]:
    """A bridge with 1C (SOAP) as the master and a 1C webhook, so every route is live."""
    config = bonus_config(tmp_path, "onec")
    config["systems"]["onec"]["webhook"] = {"auth": "bearer", "token": HOOK_TOKEN}
    config["http"] = {"max_body_bytes": 4096}
    config["clients"]["till"]["scopes"].append("customers")  # /api/v1/customers too
    config["clients"]["till"]["scopes"].append("bonus:adjust")  # /api/v1/bonus/operations
    bridge, stop = await start_bonus(tmp_path / "hostile.yaml", config)
    yield bridge
    await stop()


def routes(app: web.Application, rsv_id: str) -> list[tuple[str, str]]:
    """(method, path) of every route the router holds, placeholders filled in."""
    found: list[tuple[str, str]] = []
    for resource in app.router.resources():
        path = resource.canonical
        path = path.replace("{system}", "onec").replace("{id}", rsv_id)
        if resource.canonical == "/api/v1/events/{id}":
            path = "/api/v1/events/evt_1"
        found.extend((route.method, path) for route in resource if route.method != "HEAD")
    return found


def auth_for(path: str) -> dict[str, str]:
    """A token that passes the route's check, so the body is really read."""
    if path.startswith("/hooks/"):
        return HOOK
    if path.startswith("/api/v1/events"):
        return ADMIN
    return TILL


PHONE = "+79000000001"
NOT_GZIP = b'{"customer": {"card": "2000000000015"}}'
ENCODED_LIES = [
    ("gzip", NOT_GZIP),
    ("deflate", b"\x00\x01not deflate"),
]
# zlib stops quietly at the end of a stream cut short: what arrives is a part of the body,
# refused as a body that does not parse (the webhook route's 422 keeps it as rejected).
CUT_SHORT = gzip.compress(NOT_GZIP)[:12]
UNREADABLE_ENCODINGS = ["br", "zstd", "compress", "x-gzip", "gzip, gzip", "rot13"]

SURROGATES = [
    b'{"customer": {"card": "\\ud800"}}',
    b'{"customer": {"phone": "+7900000000\\udfff1"}}',
    b'{"\\ud800": 1}',
    b'{"ids": ["\\ud800"]}',
    b'{"ids": ["evt_1"], "filter": {"status": "\\udc00"}}',
    b'{"code": "\\ud800"}',
    b'{"amount": "\\ud800"}',
    b'{"event_id": "e", "entity": "order", "id": "\\ud800"}',
    b'{"customer": {"phone": "8 900 000-00-01"}, "amount": "10.00",'
    b' "order": {"system": "onec", "id": "\\ud83d"}}',
]

HOSTILE_QUERIES = [
    "?phone=%00&limit=%00",
    "?phone=%ED%A0%80&limit=1",
    "?status=%00&source=%ED%A0%80&since=%F0%9F",
    "?limit=" + "9" * 400,
    "?since=-1d&until=%00",
]


def assert_problem(status: int, headers: Any, text: str, where: object) -> dict[str, Any]:
    """No 5xx; an error is problem+json with a code; no traceback."""
    assert status < 500, (where, status, text[:300])
    assert "Traceback" not in text, where
    if status < 400:
        return {}
    assert headers["Content-Type"].startswith("application/problem+json"), (where, text[:200])
    problem: dict[str, Any] = json.loads(text)
    assert problem["code"] and problem["status"] == status, (where, problem)
    return problem


async def send(
    bonus: Bonus, method: str, path: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """One request, the body sent byte for byte as given."""
    async with bonus.http.request(
        method, bonus.url + path, data=body, headers=headers, compress=None
    ) as resp:
        text = await resp.text()
        where = (method, path, (body or b"")[:60], headers.get("Content-Encoding"))
        return resp.status, assert_problem(resp.status, resp.headers, text, where)


async def a_reservation(bonus: Bonus) -> str:
    body = {
        "customer": {"phone": "8 900 000-00-01"},
        "amount": "10.00",
        "order": {"system": "onec", "id": "hostile-1"},
    }
    status, rsv = await bonus.call("POST", RSV, body)
    assert status == 201, rsv
    return str(rsv["id"])


def no_errors_logged(
    logs: list[MutableMapping[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    bad = [e for e in logs if e.get("log_level") in ("error", "critical", "exception")]
    assert bad == []
    records = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in records] == []


async def test_every_route_answers_hostile_bodies_with_problems_never_5xx(
    bonus: Bonus, caplog: pytest.LogCaptureFixture
) -> None:
    rsv_id = await a_reservation(bonus)
    app_routes = routes(build_app(bonus.runtime, manage_runtime=False), rsv_id)
    posts = [(m, p) for m, p in app_routes if m == "POST"]
    assert len(posts) >= 7  # hooks, balance, replay, the reservation verbs
    with capture_logs() as logs, caplog.at_level(logging.WARNING):
        for method, path in posts:
            auth = auth_for(path) | {"Content-Type": "application/json"}
            if path.startswith("/api/v1/customers/cards"):  # they act for a proven phone
                assert bonus.runtime.customers is not None
                auth["X-Customer-Proof"] = bonus.runtime.customers.proofs.issue(PHONE)[0]
            for encoding, body in ENCODED_LIES:
                status, problem = await send(
                    bonus, method, path, body, auth | {"Content-Encoding": encoding}
                )
                assert status == 400, (path, encoding, problem)
            status, problem = await send(
                bonus, method, path, CUT_SHORT, auth | {"Content-Encoding": "gzip"}
            )
            assert status in (400, 422), (path, problem)
            for encoding in UNREADABLE_ENCODINGS:
                status, problem = await send(
                    bonus, method, path, b"\x1b\x00junk", auth | {"Content-Encoding": encoding}
                )
                assert status in (400, 415), (path, encoding, problem)
            for body in SURROGATES:
                status, problem = await send(bonus, method, path, body, auth)
                assert status in (400, 401, 404, 409, 422), (path, body, problem)
            status, problem = await send(bonus, method, path, b"{" + b" " * 5000 + b"}", auth)
            assert (status, problem["code"]) == (413, "payload_too_large"), path
        for method, path in app_routes:
            wrong = "PATCH" if method != "PATCH" else "PUT"
            status, problem = await send(bonus, wrong, path, b"{}", auth_for(path))
            assert (status, problem["code"]) == (405, "method_not_allowed"), (wrong, path)
        for method, path in app_routes:
            if method == "GET":
                for query in HOSTILE_QUERIES:
                    await send(bonus, "GET", path + query, None, auth_for(path))
        for path in ("/nope", "/api/v1/bonus", "/hooks", "/api/v1/bonus/reservations/x/y/z"):
            status, problem = await send(bonus, "GET", path, None, TILL)
            assert (status, problem["code"]) == (404, "not_found"), path
    no_errors_logged(logs, caplog)


CONTROL = ["\x00", "\x01", "\x07", "\x1b", "\x7f", "\u0085", "\u2028"]


async def test_control_characters_in_a_phone_or_id_are_named_422s(
    bonus: Bonus, caplog: pytest.LogCaptureFixture
) -> None:
    """NUL and other control characters would reach the 1C SOAP client (lxml refuses them
    with a ValueError); they are refused at the HTTP boundary, the field named."""
    cases: list[tuple[str, dict[str, Any], str]] = []
    for ch in CONTROL:
        cases += [
            (
                "/api/v1/bonus/balance",
                {"customer": {"card": f"2000{ch}000000015"}},
                "customer.card",
            ),
            (
                "/api/v1/bonus/balance",
                {"customer": {"phone": f"+7900000000{ch}1"}},
                "customer.phone",
            ),
            (
                "/api/v1/bonus/balance",
                {"customer": {"system": "onec", "id": f"c{ch}1"}},
                "customer.id",
            ),
            (
                "/api/v1/bonus/balance",
                {"customer": {"system": f"on{ch}ec", "id": "c1"}},
                "customer.system",
            ),
            (
                RSV,
                {
                    "customer": {"card": "2000000000015"},
                    "amount": "10.00",
                    "order": {"system": "onec", "id": f"r{ch}1"},
                },
                "order.id",
            ),
            (
                RSV,
                {
                    "customer": {"phone": f"8 900 000{ch}00 01"},
                    "amount": "10.00",
                    "order": {"system": "onec", "id": "r-2"},
                },
                "customer.phone",
            ),
        ]
    with capture_logs() as logs, caplog.at_level(logging.WARNING):
        for path, body, field in cases:
            raw = json.dumps(body).encode()
            status, problem = await send(bonus, "POST", path, raw, TILL)
            assert (status, problem["code"], problem.get("field")) == (
                422,
                "invalid_request",
                field,
            ), (path, body, problem)
        status, problem = await send(
            bonus, "GET", "/sandbox/messages?phone=%2B7900000000%001", None, TILL
        )
        assert (status, problem["code"], problem["field"]) == (422, "invalid_request", "phone")
    no_errors_logged(logs, caplog)


async def test_replay_of_lone_surrogate_ids_is_a_client_error(bonus: Bonus) -> None:
    for body in (
        b'{"ids": ["\\ud800"]}',
        b'{"ids": ["evt_\\udfff"]}',
        b'{"filter": {"target": "\\ud800"}}',
    ):
        status, problem = await send(bonus, "POST", "/api/v1/events/replay", body, ADMIN)
        assert status in (400, 422), (body, problem)
    for path in ("/api/v1/events/evt_%00", "/api/v1/events/%ED%A0%80"):
        status, problem = await send(bonus, "GET", path, None, ADMIN)
        assert 400 <= status < 500, (path, problem)
