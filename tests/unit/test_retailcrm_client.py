"""The RetailCRM wire client and rate limiter against a tiny echo server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web

from bridge.errors import ConfigError, PermanentError, RateLimited
from connectors.retailcrm.client import (
    RetailcrmApiError,
    RetailcrmClient,
    RetailcrmNotJson,
    RetailcrmPartial,
    RetailcrmUnreachable,
)
from connectors.retailcrm.errors import classify
from connectors.retailcrm.ratelimit import RateLimiter, limiter_for
from connectors.retailcrm.transport import PackageApi, open_session

KEY = "test-key-0123456789abcdef"
NGINX_405 = (
    "<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n"
    "<center><h1>405 Not Allowed</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>"
)


@dataclass
class Seen:
    """One request as the server saw it."""

    method: str
    path: str  # raw: escapes kept
    query: list[tuple[str, str]]
    form: dict[str, str]
    key: str | None
    at: float


@dataclass
class Wire:
    """The echo server: answers canned replies by path, else echoes what it got."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)
    canned: dict[str, tuple[int, str, str, dict[str, str]]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def reply(
        self, path: str, status: int, body: Any, ctype: str = "application/json", **headers: str
    ) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.canned[path] = (status, ctype, text, headers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        form = {k: str(v) for k, v in (await request.post()).items()}
        path = request.raw_path.split("?")[0]
        self.seen.append(
            Seen(
                request.method,
                path,
                list(request.query.items()),
                form,
                request.headers.get("X-API-KEY"),
                time.monotonic(),
            )
        )
        name = request.query.get("filter[name]", "")
        if name == "slow" or path.endswith("/slow"):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 5)
        if name == "boom":
            return web.Response(
                status=502, text="<h1>502 Bad Gateway</h1>", content_type="text/html"
            )
        if path in self.canned:
            status, ctype, text, headers = self.canned[path]
            return web.Response(
                status=status, body=text.encode(), headers={"Content-Type": ctype, **headers}
            )
        if name.startswith("wait"):
            await asyncio.sleep(0.05)  # keep concurrent calls in flight together
        echo = {"success": True, "path": path, "query": list(request.query.items()), "form": form}
        return web.json_response(echo, status=201 if path.endswith("/create") else 200)


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    state = Wire()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    state.release.set()
    await runner.cleanup()


@pytest.fixture
def client(wire: Wire) -> Iterator[RetailcrmClient]:
    crm = RetailcrmClient(wire.url + "/", KEY, timeout=0.5, site="shop")  # "/" must not give //api
    yield crm
    crm.close()


async def test_the_key_goes_in_a_header_and_the_site_with_external_ids(
    wire: Wire, client: RetailcrmClient
) -> None:
    answer = await asyncio.to_thread(client.order, "A-1")
    assert answer["path"] == "/api/v5/orders/A-1"
    assert wire.seen[-1].key == KEY
    assert wire.seen[-1].query == [("site", "shop")]
    await asyncio.to_thread(client.order, 7, by="id")
    assert wire.seen[-1].query == [("by", "id")]
    assert (await asyncio.to_thread(client.api_credentials))["path"] == "/api/credentials"
    assert KEY not in repr(client)


async def test_query_strings_are_php_style_and_never_say_none(client: RetailcrmClient) -> None:
    filters = {"name": "x", "active": True, "blocked": False, "ids": [1, 2], "none": None}
    answer = await asyncio.to_thread(client.customers, filters)
    assert answer["query"] == [
        ["filter[name]", "x"],
        ["filter[active]", "1"],
        ["filter[blocked]", "0"],
        ["filter[ids][]", "1"],
        ["filter[ids][]", "2"],
        ["limit", "20"],
        ["page", "1"],
    ]
    answer = await asyncio.to_thread(client.orders_history, None)
    assert answer["query"] == [["limit", "100"], ["page", "1"]]  # not filter=None (§6.4)
    answer = await asyncio.to_thread(client.customers_history, 41)
    assert answer["query"][0] == ["filter[sinceId]", "41"]
    answer = await asyncio.to_thread(client.bonus_operations, [3], "abc")
    assert answer["query"] == [["filter[loyalties][]", "3"], ["limit", "100"], ["cursor", "abc"]]


async def test_posts_carry_json_inside_form_fields(client: RetailcrmClient) -> None:
    order = {"externalId": "A-1", "items": [{"initialPrice": Decimal("500.50"), "quantity": 2}]}
    answer = await asyncio.to_thread(client.order_create, order)
    assert json.loads(answer["form"]["order"]) == {
        "externalId": "A-1",
        "items": [{"initialPrice": 500.5, "quantity": 2}],
    }
    assert answer["form"]["site"] == "shop"
    answer = await asyncio.to_thread(client.loyalty_apply, {"externalId": "A-1"}, Decimal(120))
    assert answer["form"]["bonuses"] == "120"
    answer = await asyncio.to_thread(
        lambda: client.bonus_credit(5, Decimal("10.5"), expire_date=date(2030, 1, 1))
    )
    assert answer["path"] == "/api/v5/loyalty/account/5/bonus/credit"
    assert answer["form"] == {"amount": "10.5", "expireDate": "2030-01-01"}
    answer = await asyncio.to_thread(client.verification_confirm, "1234", "chk-1")
    assert json.loads(answer["form"]["verification"]) == {"code": "1234", "checkId": "chk-1"}


PATHS: list[tuple[Any, str, str]] = [
    (lambda c: c.order_create({"externalId": "A"}), "POST", "/api/v5/orders/create"),
    (lambda c: c.order_edit({"externalId": "A"}), "POST", "/api/v5/orders/A/edit"),
    (lambda c: c.orders_upload([{"externalId": "A"}]), "POST", "/api/v5/orders/upload"),
    (lambda c: c.orders_history(5), "GET", "/api/v5/orders/history"),
    (lambda c: c.customer("C"), "GET", "/api/v5/customers/C"),
    (lambda c: c.customer_create({"externalId": "C"}), "POST", "/api/v5/customers/create"),
    (lambda c: c.customer_edit({"externalId": "C"}), "POST", "/api/v5/customers/C/edit"),
    (lambda c: c.customers_upload([{"externalId": "C"}]), "POST", "/api/v5/customers/upload"),
    (lambda c: c.customers_history(None), "GET", "/api/v5/customers/history"),
    (lambda c: c.loyalties(), "GET", "/api/v5/loyalty/loyalties"),
    (lambda c: c.loyalty(2), "GET", "/api/v5/loyalty/loyalties/2"),
    (lambda c: c.loyalty_accounts({"phoneNumber": "7999"}), "GET", "/api/v5/loyalty/accounts"),
    (lambda c: c.loyalty_account(3), "GET", "/api/v5/loyalty/account/3"),
    (lambda c: c.loyalty_account_create({}), "POST", "/api/v5/loyalty/account/create"),
    (lambda c: c.loyalty_account_activate(3), "POST", "/api/v5/loyalty/account/3/activate"),
    (lambda c: c.bonus_charge(3, 10), "POST", "/api/v5/loyalty/account/3/bonus/charge"),
    (lambda c: c.bonus_operations(), "GET", "/api/v5/loyalty/bonus/operations"),
    (
        lambda c: c.bonus_details(3, "burn_soon"),
        "GET",
        "/api/v5/loyalty/account/3/bonus/burn_soon/details",
    ),
    (lambda c: c.loyalty_calculate({"items": []}, 0), "POST", "/api/v5/loyalty/calculate"),
    (lambda c: c.loyalty_apply({"id": 1}, 5), "POST", "/api/v5/orders/loyalty/apply"),
    (
        lambda c: c.cancel_bonus_operations({"id": 1}),
        "POST",
        "/api/v5/orders/loyalty/cancel-bonus-operations",
    ),
    (lambda c: c.verification_status("chk"), "GET", "/api/v5/verification/sms/chk/status"),
]


@pytest.mark.parametrize(("call", "method", "path"), PATHS)
async def test_every_method_reaches_its_endpoint(
    wire: Wire, client: RetailcrmClient, call: Any, method: str, path: str
) -> None:
    answer = await asyncio.to_thread(call, client)
    assert answer["success"] is True
    assert (wire.seen[-1].method, wire.seen[-1].path) == (method, path)
    assert not any(name == "filter" for name, _ in wire.seen[-1].query)


async def test_ids_are_escaped_in_the_path(client: RetailcrmClient) -> None:
    answer = await asyncio.to_thread(client.order, "a/b?c")
    assert answer["path"] == "/api/v5/orders/a%2Fb%3Fc"
    answer = await asyncio.to_thread(client.order_edit, {"externalId": "a/b", "status": "new"})
    assert answer["path"] == "/api/v5/orders/a%2Fb/edit"
    assert json.loads(answer["form"]["order"])["externalId"] == "a/b"
    answer = await asyncio.to_thread(client.customer_edit, {"id": 9, "email": "e@x"}, by="id")
    assert (answer["path"], answer["form"]["by"]) == ("/api/v5/customers/9/edit", "id")


async def test_a_slow_answer_times_out_within_the_timeout(client: RetailcrmClient) -> None:
    started = time.monotonic()
    with pytest.raises(RetailcrmUnreachable) as caught:
        await asyncio.to_thread(client.order, "slow")
    assert caught.value.timed_out
    assert time.monotonic() - started < 2.0


async def test_no_server_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    crm = RetailcrmClient(f"http://127.0.0.1:{port}", KEY, timeout=1.0)
    with pytest.raises(RetailcrmUnreachable) as caught:
        await asyncio.to_thread(crm.customers, {"name": "79991234567"})
    crm.close()
    assert not caught.value.timed_out
    assert "79991234567" not in str(caught.value)  # the query stays out of the message


async def test_an_html_page_is_not_json(wire: Wire, client: RetailcrmClient) -> None:
    wire.reply("/api/v5/orders/create", 405, NGINX_405, "text/html")
    with pytest.raises(RetailcrmNotJson) as caught:
        await asyncio.to_thread(client.order_create, {"externalId": "A-1"})
    assert caught.value.status == 405
    assert caught.value.excerpt.startswith("405 Not Allowed 405 Not Allowed nginx")
    assert isinstance(classify(caught.value), ConfigError)


@pytest.mark.parametrize(
    ("errors", "normalized"),
    [
        ({"name": "name must be provided"}, ["name: name must be provided"]),
        (
            ["items[0].offer.id: Offer 123 not found.", 7],
            ["items[0].offer.id: Offer 123 not found.", "7"],
        ),
        ([], []),
    ],
)
async def test_the_error_envelope_with_errors_as_object_or_list(
    wire: Wire, client: RetailcrmClient, errors: Any, normalized: list[str]
) -> None:
    body = {"success": False, "errorMsg": "Errors in the entity format", "errors": errors}
    wire.reply("/api/v5/customers/create", 400, body)
    with pytest.raises(RetailcrmApiError) as caught:
        await asyncio.to_thread(client.customer_create, {"externalId": "c-1"})
    got = caught.value
    assert (got.status, got.error_msg, got.raw_errors) == (400, body["errorMsg"], errors)
    assert got.errors == normalized
    assert isinstance(classify(got), PermanentError)


async def test_success_false_with_200_is_an_error(wire: Wire, client: RetailcrmClient) -> None:
    wire.reply("/api/v5/loyalty/account/5", 200, {"success": False, "errorMsg": "odd"})
    with pytest.raises(RetailcrmApiError) as caught:
        await asyncio.to_thread(client.loyalty_account, 5)
    assert caught.value.status == 200


@pytest.mark.parametrize("entity", ["orders", "customers"])
async def test_460_reports_uploaded_and_failed(
    wire: Wire, client: RetailcrmClient, entity: str
) -> None:
    noun = entity.capitalize()
    body = {
        "success": False,
        "errorMsg": f"{noun} are loaded with errors",
        "errors": ["items[0].offer.id: Offer with id 123 not found."],
        f"uploaded{noun}": [{"id": 1, "externalId": "a"}],
        f"failed{noun}": [{"externalId": "b"}],
    }
    wire.reply(f"/api/v5/{entity}/upload", 460, body)
    upload = client.orders_upload if entity == "orders" else client.customers_upload
    with pytest.raises(RetailcrmPartial) as caught:
        await asyncio.to_thread(upload, [{"externalId": "a"}, {"externalId": "b"}])
    assert caught.value.uploaded == [{"id": 1, "externalId": "a"}]
    assert caught.value.failed == [{"externalId": "b"}]
    assert json.loads(wire.seen[-1].form[entity]) == [{"externalId": "a"}, {"externalId": "b"}]


async def test_uploads_take_one_to_fifty(wire: Wire, client: RetailcrmClient) -> None:
    with pytest.raises(ValueError, match="takes 1"):
        client.orders_upload([{"externalId": str(i)} for i in range(51)])
    with pytest.raises(ValueError, match="takes 1"):
        client.customers_upload([])
    assert wire.seen == []


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        ({"success": False, "errorMsg": "Rate limit exceeded"}, "application/json"),
        ("<html><title>503 Service Temporarily Unavailable</title></html>", "text/html"),
    ],
)
async def test_503_is_rate_limited(
    wire: Wire, client: RetailcrmClient, body: Any, ctype: str
) -> None:
    wire.reply("/api/v5/orders/history", 503, body, ctype, **{"Retry-After": "3"})
    with pytest.raises((RetailcrmApiError, RetailcrmNotJson)) as caught:
        await asyncio.to_thread(client.orders_history, 1)
    assert caught.value.status == 503
    reaction = classify(caught.value)
    assert isinstance(reaction, RateLimited)
    assert reaction.retry_after == 3.0


async def test_concurrent_calls_from_threads_keep_their_own_parameters(
    client: RetailcrmClient,
) -> None:
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(20) as pool:
        calls = [
            loop.run_in_executor(pool, client.customers, {"name": f"wait-{i}"}, 20, i + 1)
            for i in range(20)
        ]
        answers = await asyncio.gather(*calls)
    for i, answer in enumerate(answers):
        assert answer["query"] == [
            ["filter[name]", f"wait-{i}"],
            ["limit", "20"],
            ["page", str(i + 1)],
        ]


async def test_parameters_do_not_leak_after_a_failure(wire: Wire, client: RetailcrmClient) -> None:
    for name, failure in [("boom", RetailcrmNotJson), ("slow", RetailcrmUnreachable)]:
        with pytest.raises(failure):
            await asyncio.to_thread(client.customers, {"name": name})
        answer = await asyncio.to_thread(client.customers)
        assert answer["query"] == [["limit", "20"], ["page", "1"]]
    # The package object itself is reset too, even when requests raised (§6.2).
    session = open_session(KEY, 1)
    api = PackageApi(wire.url, session, 0.3)
    with pytest.raises(RetailcrmUnreachable):
        api.customers({"name": "slow"}, 20, 1)
    assert api.parameters == {}
    session.close()


async def test_customers_by_phone_searches_the_national_number_and_compares(
    wire: Wire, client: RetailcrmClient
) -> None:
    found = [
        {"id": 1, "phones": [{"number": "+7 (999) 123-45-67"}]},
        {"id": 2, "phones": [{"number": "89991234567"}, {"number": "111"}]},
        {"id": 3, "phones": [{"number": "+7 999 123-45-68"}]},
        {"id": 4, "phones": []},
    ]
    wire.reply("/api/v5/customers", 200, {"success": True, "customers": found})
    hits = await asyncio.to_thread(client.customers_by_phone, "8 (999) 123-45-67")
    assert [c["id"] for c in hits] == [1, 2]
    assert ("filter[name]", "9991234567") in wire.seen[-1].query


def test_bad_urls_are_refused_at_once() -> None:
    for url in ["shop.retailcrm.ru", "ftp://shop.retailcrm.ru", "https://shop.retailcrm.ru/api/v5"]:
        with pytest.raises(ValueError, match="url"):
            RetailcrmClient(url, KEY)


def most_in_one_second(stamps: list[float]) -> int:
    """The most stamps in any closed one-second window."""
    ordered, best, first = sorted(stamps), 0, 0
    for last, stamp in enumerate(ordered):
        while ordered[first] < stamp - 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


async def test_the_limiter_never_starts_more_than_rate_in_a_second(wire: Wire) -> None:
    limiter = RateLimiter(20)
    started: list[tuple[int, float]] = []
    # A roomy timeout: 60 calls queue for a few worker threads, and the limiter is the point,
    # not how fast a loaded machine answers (0.5 s timed out once in CI).
    client = RetailcrmClient(wire.url, KEY, timeout=10.0, site="shop")

    async def call(index: int) -> None:
        await limiter.acquire()
        started.append((index, time.monotonic()))
        await asyncio.to_thread(client.api_credentials)

    began = time.monotonic()
    try:
        await asyncio.gather(*(call(i) for i in range(60)))
    finally:
        client.close()
    assert [i for i, _ in started] == list(range(60))  # in arrival order
    assert most_in_one_second([t for _, t in started]) <= 20
    assert most_in_one_second([s.at for s in wire.seen]) <= 20  # as the server saw them
    # Turns 0.05 s apart; each 21st a whole second after the answer the 1st was taken to
    # have had (plain acquire: 10 % of a second after its turn): 2 x 1.1 s + 19 x 0.05 s.
    assert time.monotonic() - began >= 2 * 1.1 + 19 * limiter.spacing - 0.01


async def test_hold_and_pause_make_every_caller_wait() -> None:
    limiter = RateLimiter(50)
    await limiter.acquire()
    limiter.hold(0.3)
    began = time.monotonic()
    await asyncio.gather(limiter.acquire(), limiter.acquire())
    assert time.monotonic() - began >= 0.3
    began = time.monotonic()
    await limiter.pause(0.2)
    await limiter.acquire()
    assert time.monotonic() - began >= 0.2


async def test_a_cancelled_waiter_gives_up_its_turn() -> None:
    limiter = RateLimiter(5)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    began = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - began < 2 * limiter.interval


def test_one_limiter_per_key_and_the_stricter_rate_wins() -> None:
    key = f"key-{uuid.uuid4()}"
    shared = limiter_for(key, 10)
    assert limiter_for(key, 10) is shared
    assert limiter_for(f"other-{key}", 10) is not shared
    assert key not in repr(shared)
    assert limiter_for(key, 5).rate == 5
    assert limiter_for(key, 20).rate == 5
    assert RateLimiter(9.5).interval == pytest.approx(1.10 / 9)
    assert RateLimiter(0.5).interval == pytest.approx(2.2)
    with pytest.raises(ValueError, match="rate"):
        RateLimiter(0)
