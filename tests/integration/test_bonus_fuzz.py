"""Garbage in every field of every bonus endpoint (hypothesis): a 4xx naming the field,
never a 5xx. The bridge runs in a thread with its own event loop and the 1C emulator as
master; hypothesis drives it over a socket with a blocking client."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
import yaml
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.http.app import build_app
from bridge.runtime import build_runtime
from bridge.settings_loader import read_settings
from tests.support.bonus import bonus_config
from tests.support.configs import CLIENT_TOKEN

TILL = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
FUZZ = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- what is valid ---------------------------------------------------------------------

GOOD_CUSTOMER: dict[str, Any] = {"card": "2000000000015"}
GOOD_ORDER: dict[str, Any] = {"system": "onec", "id": "till-1", "total": "3000.00"}
GOOD_RESERVE: dict[str, Any] = {"customer": GOOD_CUSTOMER, "amount": "10.00", "order": GOOD_ORDER}

# -- what is certainly not -------------------------------------------------------------

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
not_an_object = st.one_of(scalars, st.lists(st.integers(), max_size=3))
no_digits = st.text(alphabet="abcxyzйцу -_.", min_size=1, max_size=30)
bad_money = st.one_of(
    st.booleans(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    no_digits,
    st.sampled_from(["-1", "1.001", "1e9", "NaN", "Infinity", "100000000", "", " ", "1,5"]),
)
bad_text_64 = st.one_of(
    st.integers(), st.booleans(), st.lists(st.text(), max_size=2), st.just(""), st.text(min_size=65)
)
bad_customer = st.one_of(
    not_an_object,
    st.just({}),
    st.builds(lambda p: {"phone": p}, st.one_of(no_digits, st.integers(), st.just("123"))),
    st.builds(lambda c: {"card": c}, bad_text_64),
    st.just({"phone": "+79000000001", "card": "2000000000015"}),
    st.just({"system": "onec"}),
    st.just({"id": "1"}),
    st.builds(lambda k: {k: "1"}, st.text(alphabet="qwrtuv", min_size=1, max_size=8)),
)
bad_order = st.one_of(
    not_an_object,
    st.just({}),
    st.just({"system": "onec"}),
    st.builds(lambda s: {"system": s, "id": "1"}, bad_text_64),
    st.builds(lambda i: {"system": "onec", "id": i}, bad_text_64),
    st.builds(lambda t: {"system": "onec", "id": "1", "total": t}, bad_money),
    st.just({"system": "onec", "id": "1", "colour": "red"}),
)
bad_channel = st.one_of(
    st.integers(),
    st.booleans(),
    st.lists(st.text(), max_size=2),
    st.sampled_from(["", "Till", "with space", "x" * 33, "тилл"]),
)
bad_code = st.one_of(
    st.none(),
    st.integers(),
    st.booleans(),
    st.lists(st.text(), max_size=2),
    st.from_regex(r"\A\d{0,3}\Z"),
    st.from_regex(r"\A\d{9,12}\Z"),
    no_digits,
)


@st.composite
def reserve_with_one_bad_field(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    field = draw(st.sampled_from(["customer", "amount", "order", "channel", "extra"]))
    bad = {
        "customer": bad_customer,
        "amount": st.one_of(bad_money, st.just("0"), st.just(0)),
        "order": bad_order,
        "channel": bad_channel,
        "extra": st.just("surprise"),
    }[field]
    return field, GOOD_RESERVE | {field: draw(bad)}


@st.composite
def balance_with_one_bad_field(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    field = draw(st.sampled_from(["customer", "cart"]))
    if field == "customer":
        return field, {"customer": draw(bad_customer)}
    cart = draw(
        st.one_of(
            not_an_object.filter(lambda v: v is not None),
            st.builds(lambda t: {"total": t}, bad_money),
            st.just({}),
        )
    )
    return field, {"customer": GOOD_CUSTOMER, "cart": cart}


# -- the bridge in a thread ------------------------------------------------------------


class Served:
    """A bridge on its own loop in a daemon thread."""

    def __init__(self, config: Path) -> None:
        self._config = config
        self._ready: Future[str] = Future()
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> str:
        self._thread.start()
        return self._ready.result(timeout=30)

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    async def _serve(self) -> None:
        runtime = build_runtime(read_settings(self._config, env={}))
        runner = web.AppRunner(build_app(runtime))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._ready.set_result(f"http://127.0.0.1:{runner.addresses[0][1]}")
        await self._stop.wait()
        await runner.cleanup()


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, requests.Session]]:
    folder = tmp_path_factory.mktemp("fuzz")
    config = bonus_config(folder, "onec", timeout_seconds=2)
    config["bonus"]["reservations"] = {"max_codes_per_phone": 1000}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    served = Served(path)
    url = served.start()
    session = requests.Session()
    session.trust_env = False
    try:
        yield url, session
    finally:
        session.close()
        served.stop()


def send(http: requests.Session, url: str, body: Any, **headers: str) -> requests.Response:
    """POST ``body`` as JSON as Python writes it (NaN and Infinity included: the server
    must refuse them, so the client must be able to send them)."""
    data = json.dumps(body).encode()
    return http.post(url, data=data, headers=TILL | {"Content-Type": "application/json"} | headers)


@pytest.fixture(scope="module")
def reservation(bridge: tuple[str, requests.Session]) -> str:
    """A held reservation of 10.00 (confirmed with the code from the sandbox outbox)."""
    url, http = bridge
    body = GOOD_RESERVE | {"order": GOOD_ORDER | {"id": "fuzz-held"}}
    resp = send(http, f"{url}/api/v1/bonus/reservations", body)
    assert resp.status_code == 201, resp.text
    rsv_id = str(resp.json()["id"])
    text = http.get(f"{url}/sandbox/messages?limit=1", headers=TILL).json()["messages"][0]["text"]
    code = re.findall(r"[0-9]{6}", text)[0]
    confirmed = send(http, f"{url}/api/v1/bonus/reservations/{rsv_id}/confirm", {"code": code})
    assert confirmed.json()["status"] == "held", confirmed.text
    return rsv_id


def named(resp: requests.Response, field: str) -> None:
    """A 4xx problem+json whose ``field`` (or, for a non-object body, ``body``) is ``field``;
    a body with NaN or Infinity is not JSON at all (400 ``invalid_json``)."""
    assert resp.status_code < 500, resp.text
    assert resp.status_code in {400, 404, 409, 422}, resp.text
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["code"], problem
    if resp.status_code == 400:
        assert problem["code"] == "invalid_json", problem
    if resp.status_code == 422:
        top = str(problem["field"]).split(".")[0]
        assert top in {field, "body"}, (field, problem)


@FUZZ
@given(case=reserve_with_one_bad_field())
def test_reserve(bridge: tuple[str, requests.Session], case: tuple[str, Any]) -> None:
    url, http = bridge
    field, body = case
    resp = send(http, f"{url}/api/v1/bonus/reservations", body)
    assert resp.status_code in {400, 422}, resp.text
    named(resp, field)


@FUZZ
@given(case=balance_with_one_bad_field())
def test_balance(bridge: tuple[str, requests.Session], case: tuple[str, Any]) -> None:
    url, http = bridge
    field, body = case
    resp = send(http, f"{url}/api/v1/bonus/balance", body)
    assert resp.status_code in {400, 422}, resp.text
    named(resp, field)


@FUZZ
@given(code=bad_code, wrap=st.booleans())
def test_confirm(
    bridge: tuple[str, requests.Session], reservation: str, code: Any, wrap: bool
) -> None:
    url, http = bridge
    body = {"code": code} if wrap else code
    resp = send(http, f"{url}/api/v1/bonus/reservations/{reservation}/confirm", body)
    named(resp, "code")
    assert resp.status_code != 200


@FUZZ
@given(amount=st.one_of(bad_money, st.sampled_from(["10.01", "0", "0.00", 0])))
def test_commit(bridge: tuple[str, requests.Session], reservation: str, amount: Any) -> None:
    url, http = bridge
    resp = send(http, f"{url}/api/v1/bonus/reservations/{reservation}/commit", {"amount": amount})
    assert resp.status_code in {400, 422}, resp.text  # the hold is 10.00: none commits
    named(resp, "amount")


@FUZZ
@given(
    body=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda d: json.dumps(d).encode(),
            st.dictionaries(st.text(min_size=1, max_size=8), scalars, min_size=1, max_size=3),
        ),
    ),
    path=st.sampled_from(["resend", "cancel"]),
)
def test_resend_and_cancel_bodies(
    bridge: tuple[str, requests.Session], reservation: str, body: bytes, path: str
) -> None:
    url, http = bridge
    resp = http.post(
        f"{url}/api/v1/bonus/reservations/{reservation}/{path}",
        data=body,
        headers=TILL | {"Content-Type": "application/json"},
    )
    if body.strip() in {b"", b"{}"}:
        assert resp.status_code < 500, resp.text
        return
    assert 400 <= resp.status_code < 500, resp.text
    problem = resp.json()
    assert resp.headers["Content-Type"].startswith("application/problem+json")
    if resp.status_code == 422:  # JSON, but not an empty object: the unknown key is named
        assert problem["field"] == "body" or problem["field"] in json.loads(body), problem


@FUZZ
@given(
    rsv_id=st.text(min_size=1, max_size=60).filter(lambda s: "/" not in s and s not in {".", ".."}),
    verb=st.sampled_from(["", "/confirm", "/resend", "/commit", "/cancel"]),
)
def test_reservation_ids(bridge: tuple[str, requests.Session], rsv_id: str, verb: str) -> None:
    url, http = bridge
    method = "GET" if verb == "" else "POST"
    body = {"code": "123456"} if verb == "/confirm" else None
    resp = http.request(
        method,
        f"{url}/api/v1/bonus/reservations/{quote(rsv_id, safe='')}{verb}",
        json=body,
        headers=TILL,
    )
    assert resp.status_code in {404, 405}, resp.text
    assert resp.json()["code"] in {"reservation_not_found", "not_found", "method_not_allowed"}


@FUZZ
@given(
    key=st.one_of(
        st.text(min_size=129, max_size=200, alphabet="abc"),
        st.from_regex(r"\A[a-z]{1,5} [a-z]{1,5}\Z"),
    )
)
def test_idempotency_key(bridge: tuple[str, requests.Session], key: str) -> None:
    url, http = bridge
    resp = send(http, f"{url}/api/v1/bonus/reservations", GOOD_RESERVE, **{"Idempotency-Key": key})
    assert resp.status_code == 422, resp.text
    assert resp.json()["field"] == "Idempotency-Key"


def test_a_valid_reserve_still_works_after_the_fuzzing(
    bridge: tuple[str, requests.Session],
) -> None:
    url, http = bridge
    resp = send(http, f"{url}/api/v1/bonus/reservations", GOOD_RESERVE)
    assert resp.status_code == 201, resp.text
    assert re.fullmatch(r"rsv_[0-9a-f]{20}", resp.json()["id"])
