"""Error answers carry neither the caller's secret nor another caller's data (issue 12,
point 16): a request aiohttp's HTTP parser refuses is answered with a terse problem
document, not a text that quotes the request's bytes; a 409 ``order_has_reservation``
names the reservation only to the client that made it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.support.bonus import TILL, Bonus, bonus_config, start_bonus
from tests.support.configs import CLIENT_TOKEN

SITE_TOKEN = "test-site-token-00000001"
SITE = {"Authorization": f"Bearer {SITE_TOKEN}"}
RSV = "/api/v1/bonus/reservations"


@pytest.fixture
async def bonus(tmp_path: Path) -> AsyncIterator[Bonus]:
    """A 1C-master bridge with two clients that may reserve: the till and the site."""
    config = bonus_config(tmp_path, "onec")
    config["clients"]["site"] = {"token": SITE_TOKEN, "scopes": ["bonus:read", "bonus:reserve"]}
    bridge, stop = await start_bonus(tmp_path / "disclosure.yaml", config)
    yield bridge
    await stop()


async def raw_exchange(url: str, request: bytes) -> bytes:
    """Send bytes as they are; everything the server answers before it closes."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


BODY = b'{"customer": {"card": "2000000000015"}}'
MALFORMED = [
    # a NUL in another header: aiohttp's parser quotes the lines around it
    (f"Authorization: Bearer {CLIENT_TOKEN}\r\nX-Till: a\x00b").encode(),
    # a NUL inside the secret itself
    (f"Authorization: Bearer {CLIENT_TOKEN[:8]}\x00{CLIENT_TOKEN[8:]}").encode(),
    # a bare CR
    (f"Authorization: Bearer {CLIENT_TOKEN}\r\nX-Till: a\rb").encode(),
    # a header name that is not a token
    (f"Authorization: Bearer {CLIENT_TOKEN}\r\nX Till{CLIENT_TOKEN}: 1").encode(),
]


@pytest.mark.parametrize("header", MALFORMED, ids=["nul", "nul-in-token", "bare-cr", "name"])
async def test_a_request_the_parser_refuses_is_a_terse_problem(
    bonus: Bonus, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    request = (
        b"POST /api/v1/bonus/balance HTTP/1.1\r\nHost: bridge\r\n"
        + header
        + b"\r\nContent-Type: application/json\r\nContent-Length: "
        + str(len(BODY)).encode()
        + b"\r\n\r\n"
        + BODY
    )
    with capture_logs() as logs, caplog.at_level(logging.DEBUG):
        answer = await raw_exchange(bonus.url, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"400", answer[:200]
    assert b"content-type: application/problem+json" in head.lower()
    for secret in (CLIENT_TOKEN[:8].encode(), CLIENT_TOKEN[8:].encode(), b"X-Till", b"Bearer"):
        assert secret not in answer
    problem = json.loads(body)
    assert (problem["status"], problem["code"]) == (400, "malformed_request")
    assert set(problem) == {"type", "title", "status", "code", "detail"}
    # Nor does the log keep what the answer no longer says.
    logged = json.dumps(logs, default=str) + caplog.text
    assert CLIENT_TOKEN[8:] not in logged
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # The server still answers well-formed requests.
    status, balance = await bonus.balance({"customer": {"card": "2000000000015"}})
    assert status == 200, balance


async def test_a_request_line_that_is_not_http_is_a_problem(bonus: Bonus) -> None:
    answer = await raw_exchange(bonus.url, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"400", answer[:200]
    assert json.loads(body)["code"] == "malformed_request"


def reservation(order_id: str) -> dict[str, object]:
    return {
        "customer": {"card": "2000000000015"},
        "amount": "10.00",
        "order": {"system": "onec", "id": order_id},
    }


async def test_order_has_reservation_names_the_reservation_only_to_its_client(
    bonus: Bonus,
) -> None:
    status, first = await bonus.call("POST", RSV, reservation("receipt-7"), TILL)
    assert status == 201, first
    status, other = await bonus.call("POST", RSV, reservation("receipt-7"), SITE)
    assert (status, other["code"]) == (409, "order_has_reservation"), other
    assert "reservation_id" not in other
    assert first["id"] not in json.dumps(other)
    status, same = await bonus.call("POST", RSV, reservation("receipt-7"), TILL)
    assert (status, same["code"], same["reservation_id"]) == (
        409,
        "order_has_reservation",
        first["id"],
    )
