"""CPU and latency of one 1C balance call through the declaration layer (issue 14) against
the connector as it was before it, and against a raw client, over SOAP and the HTTP service;
over SOAP also the compiled envelopes (issue 16) against zeep's path: the same run, the
same emulator process, the variants interleaved in rounds."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import random
import select
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import requests
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.wsdl.utils
from guard import Deadline  # bench/ is on sys.path when run as a script
from requests.auth import HTTPBasicAuth

from bridge.ledger import LedgerBalance
from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec import answers
from connectors.onec.answers import read_answer
from connectors.onec.client import (
    HttpServiceClient,
    OnecContractMismatch,
    OnecFault,
    OnecHTTPError,
    SoapClient,
)
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.contract import OPERATIONS, Record, XsdType
from connectors.onec.http_client import dump_json
from connectors.onec.naming import NamedOperation, Naming
from connectors.onec.wire import Answer
from connectors.onec.zeep_transport import ANSWERING as _ANSWERING

ROOT = Path(__file__).resolve().parent.parent
PHONE, CART, USER, PASSWORD = "+79000000001", Decimal("300"), "bridge", "sandbox"
TIMEOUT, CONCURRENCY = 5.0, 4
TARGET = 1.10  # issue 14: the declaration layer adds no more than 10 % CPU per call
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
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
Call = Callable[[], Awaitable[object]]


@dataclass
class Variant:
    """One way of making the balance call (a coroutine function) and what it measured."""

    key: str
    label: str
    call: Call
    lat: list[float] = field(default_factory=list)
    cpu: float = 0.0  # process CPU seconds over its blocks
    cpu_rounds: list[float] = field(default_factory=list)  # CPU s per call, each round


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


# -- the connector before issue 14 (commit 80c9529), on today's wire clients -----------------


class Before14:
    """What ``SoapClient.call`` / ``HttpServiceClient.call`` did per call before issue 14
    (``git show 80c9529:connectors/onec/client.py``), over the connector's own wire client:
    the same zeep service, ``_SoapTransport`` and ``Wire``, the reference names through
    ``Naming().resolve(logical)``, the old renaming both ways."""

    def __init__(self, client: SoapClient | HttpServiceClient, naming: Naming) -> None:
        self.client = client
        self.naming = naming
        self._kinds: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}

    async def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The old ``client.call(logical, params)``: a record by logical names."""
        if isinstance(self.client, SoapClient):
            return await self._soap(self.client, logical, params)
        return await self._http(self.client, logical, params)

    async def _soap(
        self, client: SoapClient, logical: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        service = client._service
        if service is None:
            raise OnecContractMismatch("the WSDL is not loaded yet (SoapClient.load)")
        named = self.naming.resolve(logical)
        values = named.params_to_elements({k: v for k, v in params.items() if v is not None})
        operation = getattr(service, named.name, None)
        if operation is None:
            raise OnecContractMismatch(f"the WSDL lacks {named.name} ({logical})")
        # The old transport read the NamedOperation and looked its kinds up in a cache; today's
        # takes (operation, kinds): the same lookup, done here.
        _ANSWERING.set((named.name, self.answer_kinds(named)))
        try:
            answer = await operation(**values)
        except zeep.exceptions.Fault as exc:
            raise OnecFault(str(exc.message or ""), status=500) from exc
        except zeep.exceptions.TransportError as exc:
            raise OnecHTTPError(exc.status_code, str(exc.content or "")[:200]) from exc
        plain = zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
        if not isinstance(plain, dict):
            raise OnecContractMismatch(f"{named.name}: expected a record, got {plain!r:.80}")
        record = plain.get("return", plain) if "return" in plain else plain
        return named.result_from_elements(record)

    def answer_kinds(self, named: NamedOperation) -> dict[str, tuple[str, str]]:
        """The old ``client.answer_kinds``: element → (XML Schema type, field), cached."""
        key = (named.name, named.soap_action)
        if key not in self._kinds:
            kinds: dict[str, tuple[str, str]] = {}
            clashes: set[str] = set()
            records: list[Record] = list(named.contract.result.walk())
            for record in records:
                for f in record.fields:
                    if not isinstance(f.type, XsdType) or f.type is XsdType.STRING:
                        continue
                    element, kind = named.fields[f.name], (f.type.value, f.name)
                    if kinds.setdefault(element, kind) != kind:
                        clashes.add(element)
            self._kinds[key] = {e: k for e, k in kinds.items() if e not in clashes}
        return self._kinds[key]

    async def _http(
        self, client: HttpServiceClient, logical: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = OPERATIONS[logical].http_path
        body = {k: _jsonable(v) for k, v in params.items() if v is not None}
        answer = await client._wire.post(
            f"{client._root}/{path.lstrip('/')}",
            json.dumps(body, allow_nan=False).encode(),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            doc = json.loads(answer.body, parse_float=Decimal)
        except ValueError:
            doc = None
        if answer.status < 400 and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            text = f"{error['code']}: {error.get('message', '')}"
            raise OnecFault(text, code=error["code"], status=answer.status)
        raise OnecHTTPError(answer.status, answer.text()[:200])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value) if isinstance(value, Decimal) else value


def before14_balance(connector: OnecConnector, old: Before14) -> Callable[..., Awaitable[Any]]:
    """The old ``connector.balance()`` (80c9529: ``OnecMaster.balance`` over
    ``OnecConnector._call``): ``_bounded`` around the old client call, then the conversion."""

    async def balance(customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        params = {"customer_id": customer_id, "cart_total": cart_total}
        if not connector._client.loaded:
            raise OnecContractMismatch("not loaded")
        r = await connector._bounded(old.call("balance", params), ledger=True)
        received = datetime.now(UTC)
        return read_answer("balance", lambda record: answers.balance(record, received), r)

    return balance


# -- measuring -------------------------------------------------------------------------------


def stats(lat: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p99/max and the mean of latencies in seconds, as ms."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    ms = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 4) for k, q in PCTS}
    return {"count": n, "mean_ms": round(sum(lat) / max(n, 1) * 1000, 4)} | ms


async def measure(call: Call, n: int) -> list[float]:
    """Call ``call`` ``n`` times one after another; the latency of each call."""
    lat: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        await call()
        lat.append(clock() - t0)
    return lat


async def run_rounds(variants: list[Variant], calls: int, rounds: int, seed: int) -> float:
    """``calls`` calls of each variant in ``rounds`` rounds; within a round each variant makes
    its share back to back, timed, with the process CPU over its block. The order is shuffled
    afresh each round (seeded): a fixed rotation would leave each variant after the same
    neighbour most of the time, and what ran just before shows in the CPU figures by a few
    µs. The wall time of the whole."""
    sizes = [calls // rounds + (i < calls % rounds) for i in range(rounds)]
    order, shuffle = list(variants), random.Random(seed).shuffle
    t0 = time.perf_counter()
    for size in sizes:
        shuffle(order)
        for v in order:
            c0 = time.process_time()
            v.lat += await measure(v.call, size)
            spent = time.process_time() - c0
            v.cpu += spent
            v.cpu_rounds.append(spent / size)
    return time.perf_counter() - t0


def figures(v: Variant) -> dict[str, Any]:
    """A variant's latency percentiles and CPU per call."""
    return stats(v.lat) | {
        "label": v.label,
        "cpu_us_per_call": round(v.cpu / max(len(v.lat), 1) * 1e6, 1),
    }


def ratio(variants: dict[str, Variant], a: str, b: str) -> dict[str, Any]:
    """CPU per call of ``a`` over ``b`` (same run, same rounds), and its spread by round."""
    va, vb = variants[a], variants[b]
    per_round = sorted(x / y for x, y in zip(va.cpu_rounds, vb.cpu_rounds, strict=True) if y)
    quarter = max(len(per_round) // 4, 0)
    return {
        "ratio": round((va.cpu / len(va.lat)) / (vb.cpu / len(vb.lat)), 4),
        "cpu_us_delta": round((va.cpu / len(va.lat) - vb.cpu / len(vb.lat)) * 1e6, 1),
        "round_median": round(statistics.median(per_round), 4),
        "round_middle_half": [round(per_round[quarter], 4), round(per_round[-1 - quarter], 4)],
    }


# -- the emulator and the clients -------------------------------------------------------------


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


@dataclass
class Setup:
    """One transport's connector, its before-issue-14 twin and a raw client, all warm; over
    SOAP also the same connector on zeep's path (its envelopes not compiled, issue 16)."""

    transport: str
    connector: OnecConnector
    old: Before14
    cid: str
    raw: Call
    raw_canned: Callable[[bytes], Awaitable[object]]
    zeep: OnecConnector | None = None  # SOAP: compiled=False
    zeep_answer: Any = None  # SOAP: zeep's answer object, what the old client renamed
    document: Any = None  # what the declared answer rules map: the wrapped answer, or JSON

    @property
    def params(self) -> dict[str, Any]:
        """The balance request as the master gives it (by the bridge's names)."""
        return {"customer_id": self.cid, "cart_total": CART}

    def variants(self) -> list[Variant]:
        """The balance call five ways: raw, the wire layer and the connector, each before
        issue 14 and today; over SOAP seven: the wire layer and the connector also on zeep's
        path (before issue 16), today's on the compiled envelopes."""
        old_balance = before14_balance(self.connector, self.old)
        service, cid, params = self.connector.service, self.cid, self.params
        raw_label = "raw zeep async (aiohttp)" if self.transport == "soap" else "raw aiohttp"
        declared = [
            Variant("declared", "DeclaredService.call()", lambda: service.call("balance", params))
        ]
        connector = [
            Variant("connector", "connector.balance()", lambda: self.connector.balance(cid, CART))
        ]
        if self.zeep is not None:
            on_zeep, zeep_service = self.zeep, self.zeep.service
            declared.insert(
                0,
                Variant(
                    "declared_zeep",
                    "DeclaredService.call() on zeep",
                    lambda: zeep_service.call("balance", params),
                ),
            )
            connector.insert(
                0,
                Variant(
                    "connector_zeep",
                    "connector.balance() on zeep",
                    lambda: on_zeep.balance(cid, CART),
                ),
            )
        return [
            Variant("raw", raw_label, self.raw),
            Variant(
                "baseline",
                "before 14: wire client + Naming",
                lambda: self.old.call("balance", params),
            ),
            *declared,
            Variant("old_connector", "before 14: old balance()", lambda: old_balance(cid, CART)),
            *connector,
        ]

    def pure_steps(self) -> list[Variant]:
        """The renaming alone, before issue 14 and as declared, both ways, no I/O."""
        declared = self.connector.declaration.calls("balance")
        assert declared is not None
        naming, params = self.old.naming, self.params
        answer, document = self.zeep_answer, self.document

        async def old_rename() -> object:
            if answer is None:  # HTTP: the body by the bridge's names, the JSON returned as is
                json.dumps({k: _jsonable(v) for k, v in params.items() if v is not None})
                return document
            named = naming.resolve("balance")
            named.params_to_elements({k: v for k, v in params.items() if v is not None})
            plain = zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
            return named.result_from_elements(plain)

        async def declared_rules() -> object:
            arguments = declared.arguments({k: v for k, v in params.items() if v is not None})
            if answer is None:  # what HttpServiceClient.request does to the body
                dump_json(arguments["body"])
            else:  # what SoapClient.call does to zeep's answer
                zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
            return declared.record(document)

        if answer is None:
            what, steps = "_jsonable, json.dumps", "arguments, dump_json, record"
        else:
            what = "resolve, params_to_elements, serialize_object, result_from_elements"
            steps = "arguments, serialize_object, record"
        return [
            Variant("old_rename", f"  old renaming alone ({what})", old_rename),
            Variant("declared_rules", f"  declared rules alone ({steps})", declared_rules),
        ]


async def set_up(
    connector: OnecConnector,
    transport: str,
    urls: dict[str, str],
    http: aiohttp.ClientSession,
    zeep_twin: OnecConnector | None = None,
) -> Setup:
    """Start the connectors (WSDL loaded), find the customer, check every variant's answer."""
    await connector.start()
    if zeep_twin is not None:
        await zeep_twin.start()
    cid = (await connector.find_customer(phone=PHONE)).customer_id
    raw, canned = raw_client(transport, urls, cid, http)
    check_raw(transport, await raw())
    s = Setup(transport, connector, Before14(connector._client, Naming()), cid, raw, canned)
    s.zeep = zeep_twin
    declared = connector.declaration.calls("balance")
    assert declared is not None
    client, kinds = connector._client, connector.service._kinds["balance"]
    arguments = declared.arguments(s.params)
    if isinstance(client, SoapClient):
        named = s.old.naming.resolve("balance")
        _ANSWERING.set((named.name, kinds))
        s.zeep_answer = await getattr(client._service, named.name)(
            **named.params_to_elements(s.params)
        )
        s.document = await client.call(named.name, arguments, kinds)
        if s.old.answer_kinds(named) != kinds:
            print(f"  note: answer kinds differ: before {s.old.answer_kinds(named)}, now {kinds}")
    else:
        assert declared.method is not None
        assert declared.path is not None
        _, s.document, _ = await client.request(
            declared.method, declared.path, {}, arguments["body"]
        )
    # Like with like: both layers make the same record of the same answer, both connectors
    # the same balance (but for as_of, which the emulator may stamp with its clock).
    before, now = (
        await s.old.call("balance", s.params),
        await connector.service.call("balance", s.params),
    )
    if {k: v for k, v in before.items() if k != "as_of"} != {
        k: v for k, v in now.items() if k != "as_of"
    }:
        raise SystemExit(f"NOT THE SAME record: before 14 {before!r}, declared {now!r}")
    old_balance = await before14_balance(connector, s.old)(cid, CART)
    new_balance = await connector.balance(cid, CART)
    if replace(old_balance, as_of=new_balance.as_of) != new_balance:
        raise SystemExit(f"NOT THE SAME balance: before 14 {old_balance}, now {new_balance}")
    if zeep_twin is not None:
        client = connector._client
        if not isinstance(client, SoapClient) or not client.compiled("GetBalance"):
            raise SystemExit("the connector's GetBalance is not compiled")
        on_zeep = await zeep_twin.balance(cid, CART)
        if replace(on_zeep, as_of=new_balance.as_of) != new_balance:
            raise SystemExit(f"NOT THE SAME balance: zeep {on_zeep}, compiled {new_balance}")
    return s


@asynccontextmanager
async def canned_wire(s: Setup) -> AsyncIterator[bytes]:
    """The connectors' ``Wire.send`` answering the ``Answer`` each recorded from one real
    balance call, without any I/O (both layers of a connector share its wire); yields the
    answer's body."""
    async with AsyncExitStack() as stack:
        body = await stack.enter_async_context(_canned(s.connector, s.params))
        if s.zeep is not None:
            await stack.enter_async_context(_canned(s.zeep, s.params))
        yield body


@asynccontextmanager
async def _canned(connector: OnecConnector, params: dict[str, Any]) -> AsyncIterator[bytes]:
    wire = connector._client._wire
    real_send, recorded = wire.send, []

    async def recording(
        method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        recorded.append(await real_send(method, url, body, headers))
        return recorded[-1]

    async def replaying(
        method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        return recorded[-1]

    wire.send = recording  # type: ignore[method-assign]
    try:
        await connector.service.call("balance", params)
        wire.send = replaying  # type: ignore[method-assign]
        yield recorded[-1].body
    finally:
        del wire.send


async def canned_phase(s: Setup, calls: int, rounds: int, seed: int) -> dict[str, Variant]:
    """The same variants with the network taken out (the raw client answers its last real
    reply), and the renaming steps alone, in rounds as the calls over the network."""
    async with canned_wire(s) as body:
        variants = [Variant(v.key, v.label, v.call) for v in s.variants() if v.key != "raw"]
        variants.insert(0, Variant("raw", "raw client", lambda: s.raw_canned(body)))
        variants += s.pure_steps()
        for v in variants:
            await measure(v.call, max(calls // 20, 5))  # warm
        await run_rounds(variants, calls, rounds, seed)
    return {v.key: v for v in variants}


async def profile(s: Setup, calls: int, top: int) -> str:
    """cProfile of the declared call and of the call before issue 14, wire layer and
    connector, network canned: the ``top`` functions of each by own and cumulative time."""
    out = io.StringIO()
    paths = {v.key: v for v in s.variants()}
    async with canned_wire(s):
        keys = ["declared", "baseline", "connector", "old_connector"]
        keys += ["declared_zeep"] if s.zeep is not None else []
        for key in keys:
            v = paths[key]
            await measure(v.call, 50)
            prof = cProfile.Profile()
            prof.enable()
            await measure(v.call, calls)
            prof.disable()
            for order in ("tottime", "cumulative"):
                print(f"\n=== {v.label}, {calls} calls, network canned, by {order} ===", file=out)
                pstats.Stats(prof, stream=out).sort_stats(order).print_stats(top)
    return out.getvalue()


async def bench_transport(
    args: argparse.Namespace, transport: str, urls: dict[str, str]
) -> dict[str, Any]:
    """One transport: warm up, the calls over the network in rounds, then without it."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)  # as the connector's wire has
    auth = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    connector = make_connector(transport, urls)
    twin = None
    if transport == "soap":  # the same connector on zeep's path: before issue 16
        twin = make_connector(transport, urls)
        assert isinstance(twin._client, SoapClient)
        twin._client._compile = False  # read by load(), in start()
    try:
        async with aiohttp.ClientSession(headers=auth, timeout=timeout) as http:
            s = await set_up(connector, transport, urls, http, twin)
            variants = s.variants()
            for v in variants:
                await measure(v.call, args.warmup)
            elapsed = await run_rounds(variants, args.calls, args.rounds, args.seed)
            canned = await canned_phase(s, args.calls, args.rounds, args.seed)
            profiled = await profile(s, args.profile, args.profile_top) if args.profile else ""
    finally:
        await connector.close()
        if twin is not None:
            await twin.close()
    net = {v.key: v for v in variants}
    # Issue 14 judges the declaration layer on zeep's path, as before 14 (SOAP compiled
    # since issue 16: its own pairs below).
    layered, layered_connector = (
        ("declared_zeep", "connector_zeep") if twin else ("declared", "connector")
    )
    result: dict[str, Any] = {
        "measured_seconds": round(elapsed, 2),
        "variants": {k: figures(v) for k, v in net.items()},
        "cpu_ratio": {
            "wire": ratio(net, layered, "baseline"),
            "connector": ratio(net, layered_connector, "old_connector"),
        },
        "overhead": overhead(figures(net["connector"]), figures(net["raw"])),
        "canned": {k: figures(v) for k, v in canned.items()},
        "canned_ratio": {
            "wire": ratio(canned, layered, "baseline"),
            "connector": ratio(canned, layered_connector, "old_connector"),
            "rules": ratio(canned, "declared_rules", "old_rename"),
        },
        "profile": profiled,
    }
    if twin is not None:
        result["compiled"] = {
            "net": compiled_ratios(net),
            "canned": compiled_ratios(canned),
        }
    return result


def compiled_ratios(variants: dict[str, Variant]) -> dict[str, Any]:
    """Issue 16: the compiled path's CPU per call over zeep's, and over a raw zeep client."""
    return {
        "wire": ratio(variants, "declared", "declared_zeep"),
        "connector": ratio(variants, "connector", "connector_zeep"),
        "wire_over_raw": ratio(variants, "declared", "raw"),
        "zeep_over_raw": ratio(variants, "declared_zeep", "raw"),
    }


def overhead(c: dict[str, Any], r: dict[str, Any]) -> dict[str, float]:
    """``c`` minus ``r`` at p50, p99 and mean, in ms and as ratios, and in CPU per call."""
    keys = ("p50", "p99", "mean")
    return (
        {f"{k}_ms": round(c[f"{k}_ms"] - r[f"{k}_ms"], 4) for k in keys}
        | {f"{k}_ratio": round(c[f"{k}_ms"] / r[f"{k}_ms"], 3) for k in keys}
        | {"cpu_us_per_call": round(c["cpu_us_per_call"] - r["cpu_us_per_call"], 1)}
    )


def verdict(x: float, smoke: bool) -> str:
    """PASS or FAIL of a CPU ratio against the target; smoke runs are not judged."""
    if smoke:
        return f"target <= {TARGET:.2f}: not judged (--smoke)"
    return f"target <= {TARGET:.2f}: {'PASS' if x <= TARGET else 'FAIL'}"


def report(r: dict[str, Any], transport: str, smoke: bool) -> None:
    """Print one transport's block."""
    s, t = r["settings"], r["transports"][transport]
    v, c, vers = t["variants"], t["canned"], r["versions"]
    print(
        f"\n1C GetBalance, reference contract, transport {transport}: {s['calls']} calls per"
        f" variant after {s['warmup']} warm-up, in {s['rounds']} rounds (each variant its share"
        f" back to back, in an order shuffled each round, seed {s['seed']}); emulator in its"
        f" own process ({r['date_utc']} UTC,"
        f" Python {vers['python']}, zeep {vers['zeep']}, aiohttp {vers['aiohttp']},"
        f" {os.cpu_count()} CPUs, load {r['load_before']}, {t['measured_seconds']} s measured)"
    )
    head = f"{'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8} {'CPU us':>7}"
    print(f"  {'variant':<40} {head}")
    for f in v.values():
        print(
            f"  {f['label']:<40} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f}"
            f" {f['mean_ms']:>8.3f} {f['max_ms']:>8.3f} {f['cpu_us_per_call']:>7.1f}"
        )
    o = t["overhead"]
    print(
        f"  overhead connector - raw: p50 {o['p50_ms']:+.3f} ms (x{o['p50_ratio']:.3f}),"
        f" p99 {o['p99_ms']:+.3f} ms (x{o['p99_ratio']:.3f}),"
        f" mean {o['mean_ms']:+.3f} ms (x{o['mean_ratio']:.3f}),"
        f" CPU {o['cpu_us_per_call']:+.1f} us/call"
    )
    print("  CPU per call (this process: client, wire, event loop), today / before issue 14:")
    zeep_path = "declared_zeep" in v  # SOAP: the layer is judged on zeep's path, as before
    pairs = (
        ("wire", "declared_zeep" if zeep_path else "declared", "baseline", "(judged)"),
        ("connector", "connector_zeep" if zeep_path else "connector", "old_connector", ""),
    )
    for what, a, b, judged in pairs:
        print_ratio(
            v,
            a,
            b,
            t["cpu_ratio"][what],
            f"{judged} {verdict(t['cpu_ratio'][what]['ratio'], smoke)}",
        )
    if "compiled" in t:
        print("  issue 16, CPU per call: compiled envelopes / zeep's path, and each / raw zeep:")
        q = t["compiled"]["net"]
        print_ratio(v, "declared", "declared_zeep", q["wire"], "")
        print_ratio(v, "connector", "connector_zeep", q["connector"], "")
        print_ratio(v, "declared", "raw", q["wire_over_raw"], "")
        print_ratio(v, "declared_zeep", "raw", q["zeep_over_raw"], "")
    print(f"  the same with the network taken out ({c['raw']['count']} runs each, in rounds)")
    print(f"    {'variant':<62} {'p50 us':>8} {'p99 us':>8} {'CPU us':>8}")
    for f in c.values():
        print(
            f"    {f['label']:<62} {f['p50_ms'] * 1000:>8.1f} {f['p99_ms'] * 1000:>8.1f}"
            f" {f['cpu_us_per_call']:>8.1f}"
        )
    q = t["canned_ratio"]
    print(
        f"    today / before issue 14, CPU: wire layer x{q['wire']['ratio']:.3f}"
        f" ({q['wire']['cpu_us_delta']:+.1f} us), connector x{q['connector']['ratio']:.3f}"
        f" ({q['connector']['cpu_us_delta']:+.1f} us), renaming alone"
        f" x{q['rules']['ratio']:.3f} ({q['rules']['cpu_us_delta']:+.1f} us)"
    )
    if "compiled" in t:
        q = t["compiled"]["canned"]
        print(
            f"    compiled / zeep's path, CPU: wire layer x{q['wire']['ratio']:.3f}"
            f" ({q['wire']['cpu_us_delta']:+.1f} us), connector x{q['connector']['ratio']:.3f}"
            f" ({q['connector']['cpu_us_delta']:+.1f} us); compiled / raw zeep"
            f" x{q['wire_over_raw']['ratio']:.3f}"
        )
    own = (c["connector"]["p50_ms"] - c["raw"]["p50_ms"]) * 1000
    print(
        f"    connector - raw client, both without the network, p50 {own:+.1f} us;"
        f" measured connector - raw {o['p50_ms'] * 1000:+.1f} us"
    )
    if t["profile"]:
        print(t["profile"])


def print_ratio(v: dict[str, Any], a: str, b: str, q: dict[str, Any], judged: str) -> None:
    """One CPU ratio line: ``a`` over ``b``, the whole run and by round."""
    lo, hi = q["round_middle_half"]
    print(
        f"    {v[a]['label']} {v[a]['cpu_us_per_call']:.1f} us / {v[b]['label']}"
        f" {v[b]['cpu_us_per_call']:.1f} us = x{q['ratio']:.3f} ({q['cpu_us_delta']:+.1f} us;"
        f" by round: median x{q['round_median']:.3f}, middle half x{lo:.3f}..x{hi:.3f})"
        f" {judged}".rstrip()
    )


def main() -> int:
    """Parse options, start the emulator, run each transport, print; a failed call ends the
    run with its traceback (exit 1), and so does an emulator that did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per variant")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls per variant")
    parser.add_argument("--rounds", type=int, default=60, help="rounds to interleave (60)")
    parser.add_argument("--seed", type=int, default=1, help="of the order in each round (1)")
    parser.add_argument("--transport", choices=["soap", "http", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also cProfile N canned calls of the declared and the old path (0: off)",
    )
    parser.add_argument("--profile-top", type=int, default=25, help="functions shown (25)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 40 calls per variant in 4 rounds"
    )
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.warmup, args.rounds, args.timeout = 40, 10, 4, 60
    if args.calls < args.rounds or args.rounds < 1:
        parser.error("--calls must be at least --rounds, and --rounds at least 1")
    transports = ["soap", "http"] if args.transport == "both" else [args.transport]
    result: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "settings": {
            "calls": args.calls,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "seed": args.seed,
            "cart_total": str(CART),
            "delivery": {"timeout_seconds": TIMEOUT, "concurrency": CONCURRENCY},
        },
        "versions": {
            "python": platform.python_version(),
            "zeep": version("zeep"),
            "aiohttp": version("aiohttp"),
        },
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "transports": {},
    }
    with Deadline(args.timeout, "bench/onec_calls.py"):
        proc, urls = start_emulator()
        try:
            for transport in transports:
                result["transports"][transport] = asyncio.run(
                    bench_transport(args, transport, urls)
                )
        finally:
            code = stop_emulator(proc)
    result["emulator_exit"] = code
    for transport in transports:
        report(result, transport, args.smoke)
    print(f"\nemulator exit {code}")
    if args.json:
        for t in result["transports"].values():
            t.pop("profile")
        print(json.dumps(result, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
