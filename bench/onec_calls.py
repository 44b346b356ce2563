"""Latency of a 1C balance call through the connector against a raw client making the same
call over the same transport (zeep's async path or aiohttp), on the same event loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import select
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import requests
import zeep
import zeep.helpers
import zeep.wsdl.utils
from guard import Deadline  # bench/ is on sys.path when run as a script
from requests.auth import HTTPBasicAuth

from bridge.ledger import LedgerBalance
from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.wire import Answer

ROOT = Path(__file__).resolve().parent.parent
PHONE, CART, USER, PASSWORD = "+79000000001", Decimal("300"), "bridge", "sandbox"
TIMEOUT, CONCURRENCY = 5.0, 4
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
# The emulator's own process: it prints its URLs as one JSON line, then serves until the
# bench closes its stdin, so client and server never share an event loop or a GIL.
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


@dataclass
class Variant:
    """One way of making the balance call: a blocking function or a coroutine function."""

    key: str
    label: str
    sync: Callable[[], object] | None = None
    coro: Callable[[], Awaitable[object]] | None = None


class Reply(NamedTuple):
    """What zeep's ``process_reply`` reads of an HTTP answer."""

    status_code: int
    content: bytes
    headers: Mapping[str, str]
    encoding: str | None


class AioTransport(zeep.Transport):
    """zeep's async path over a bare aiohttp session: the least a raw async client needs.

    zeep's own ``AsyncTransport`` is built on httpx, which the project does not install; this
    is the connector's transport without its checks. The WSDL is read with ``requests``,
    as in the connector. ``canned``, once set, is answered without any I/O (the envelope is
    still serialized, as the connector's transport does before its canned ``Wire.post``).
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


@dataclass
class RawClients:
    """The same call with no bridge code: async (the judged baseline) and blocking (the
    baseline before 2026-11-23), and what the raw client does besides the network."""

    raw: Variant
    sync: Variant
    canned: Callable[[bytes], Awaitable[object]]
    session: requests.Session


def stats(lat: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p99/max and the mean of latencies in seconds, as ms."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    ms = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 4) for k, q in PCTS}
    return {"count": n, "mean_ms": round(sum(lat) / max(n, 1) * 1000, 4)} | ms


async def measure(variant: Variant, n: int) -> list[float]:
    """Call ``variant`` ``n`` times one after another; the latency of each call."""
    lat: list[float] = []
    clock = time.perf_counter
    if variant.sync is not None:
        fn = variant.sync
        for _ in range(n):
            t0 = clock()
            fn()
            lat.append(clock() - t0)
    else:
        assert variant.coro is not None
        coro = variant.coro
        for _ in range(n):
            t0 = clock()
            await coro()
            lat.append(clock() - t0)
    return lat


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
    """The 1C connector as the bridge builds it, pointed at the emulator."""
    where = {"address": urls["url"]} if transport == "soap" else {"url": urls["hs_url"]}
    options = {"transport": transport, "username": USER, "password": PASSWORD, **where}
    system = SystemSettings(
        type="onec",
        delivery=DeliverySettings(timeout_seconds=TIMEOUT, concurrency=CONCURRENCY),
    )
    return ONEC.create("onec", system, ONEC.options_model.model_validate(options))


def raw_clients(
    transport: str, urls: dict[str, str], cid: str, http: aiohttp.ClientSession
) -> RawClients:
    """The raw clients for ``transport``; ``http`` is a keep-alive aiohttp session."""
    session = requests.Session()  # keep-alive: a bare requests.post would reconnect
    session.auth = HTTPBasicAuth(USER, PASSWORD)
    if transport == "soap":
        blocking = zeep.Transport(session=session)  # type: ignore[no-untyped-call]
        sync_service = zeep.Client(urls["wsdl_url"], transport=blocking).service  # type: ignore[no-untyped-call]
        aio = AioTransport(http, session)
        service = zeep.AsyncClient(urls["wsdl_url"], transport=aio).service  # type: ignore[no-untyped-call]

        def sync_raw() -> object:
            return sync_service.GetBalance(CustomerId=cid, CartTotal=CART)

        async def raw() -> object:
            return await service.GetBalance(CustomerId=cid, CartTotal=CART)

        async def canned(answer: bytes) -> object:  # the last reply stands in for it
            aio.canned = aio.last
            try:
                return await service.GetBalance(CustomerId=cid, CartTotal=CART)
            finally:
                aio.canned = None

        labels = ("raw zeep async (aiohttp)", "raw zeep sync (requests), reference")
    else:
        balance_url = f"{urls['hs_url']}/v1/balance"
        body = {"customer_id": cid, "cart_total": str(CART)}

        def sync_raw() -> object:
            response = session.post(balance_url, json=body, timeout=TIMEOUT)
            response.raise_for_status()
            return response.json()

        async def raw() -> object:
            async with http.post(balance_url, json=body) as response:
                response.raise_for_status()
                return await response.json()

        async def canned(answer: bytes) -> object:
            json.dumps(body)
            return json.loads(answer)

        labels = ("raw aiohttp", "raw requests (sync), reference")
    return RawClients(
        Variant("raw", labels[0], coro=raw),
        Variant("sync", labels[1], sync=sync_raw),
        canned,
        session,
    )


def check_raw(transport: str, answer: Any) -> None:
    """The raw call must see the seeded customer: 1000 points, 150 redeemable of 300."""
    if transport == "soap":
        got = (answer["Balance"], answer["MaxRedeemable"])
    else:
        got = (Decimal(answer["balance"]), Decimal(answer["max_redeemable"]))
    if got != (Decimal(1000), Decimal(150)):
        raise SystemExit(f"unexpected raw balance answer: {answer!r:.300}")


async def parts(
    connector: OnecConnector, transport: str, cid: str, raw: RawClients, n: int
) -> dict[str, dict[str, Any]]:
    """The connector's own work with the network taken out: the wire answers a recorded reply."""
    client, params = connector._client, {"customer_id": cid, "cart_total": CART}
    wire = client._wire
    real_post, recorded = wire.post, []

    async def recording(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        recorded.append(await real_post(url, body, headers))
        return recorded[-1]

    async def replaying(url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        return recorded[-1]

    async def nothing() -> None:
        return None

    out: dict[str, dict[str, Any]] = {}
    wire.post = recording  # type: ignore[method-assign]
    try:
        await client.call("balance", params)
        wire.post = replaying  # type: ignore[method-assign]
        variants = [
            Variant("raw_canned", "", coro=lambda: raw.canned(recorded[-1].body)),
            Variant("client_canned", "", coro=lambda: client.call("balance", params)),
            Variant("connector_canned", "", coro=lambda: connector.balance(cid, CART)),
            Variant("bounded", "", coro=lambda: connector._bounded(nothing())),
        ]
        if transport == "soap":
            naming = connector.options.operations
            answer = await raw.raw.coro()  # type: ignore[misc]

            def rename() -> object:
                named = naming.resolve("balance")
                named.params_to_elements(params)
                plain = zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
                return named.result_from_elements(plain)

            variants.append(Variant("rename", "", sync=rename))
        record = await client.call("balance", params)

        async def canned(logical: str, **_: Any) -> dict[str, Any]:
            return record

        for v in variants:
            out[v.key] = stats(await measure(v, n))
        connector._call = canned  # type: ignore[method-assign]
        assert isinstance(await connector.balance(cid, CART), LedgerBalance)
        convert = Variant("convert", "", coro=lambda: connector.balance(cid, CART))
        out["convert"] = stats(await measure(convert, n))
    finally:
        del wire.post
        connector.__dict__.pop("_call", None)
    return out


async def bench(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """Warm up, then run the variants in blocks, rotating which goes first."""
    connector = make_connector(args.transport, urls)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)  # as the connector's wire has
    auth = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    await connector.start()
    try:
        async with aiohttp.ClientSession(headers=auth, timeout=timeout) as http:
            cid = (await connector.find_customer(phone=PHONE)).customer_id
            raw = raw_clients(args.transport, urls, cid, http)
            check_raw(args.transport, await raw.raw.coro())  # type: ignore[misc]
            check_raw(args.transport, raw.sync.sync())  # type: ignore[misc]
            client = connector._client

            async def wire_call() -> object:
                return await client.call("balance", {"customer_id": cid, "cart_total": CART})

            variants = [
                raw.raw,
                raw.sync,
                Variant("client", "wire client (client.call)", coro=wire_call),
                Variant(
                    "connector", "connector.balance()", coro=lambda: connector.balance(cid, CART)
                ),
            ]
            for v in variants:
                await measure(v, args.warmup)
            lat: dict[str, list[float]] = {v.key: [] for v in variants}
            cpu = dict.fromkeys(lat, 0.0)
            block_p50: dict[str, list[float]] = {v.key: [] for v in variants}
            sizes = [
                args.calls // args.blocks + (i < args.calls % args.blocks)
                for i in range(args.blocks)
            ]
            t0 = time.perf_counter()
            for b, size in enumerate(sizes):
                order = variants[b % len(variants) :] + variants[: b % len(variants)]
                for v in order:
                    c0 = time.process_time()
                    got = await measure(v, size)
                    cpu[v.key] += time.process_time() - c0
                    lat[v.key] += got
                    block_p50[v.key].append(stats(got)["p50_ms"])
            elapsed = time.perf_counter() - t0
            steps = await parts(connector, args.transport, cid, raw, args.calls)
            raw.session.close()
    finally:
        await connector.close()
    result = {
        v.key: stats(lat[v.key])
        | {"label": v.label, "cpu_us_per_call": round(cpu[v.key] / args.calls * 1e6, 1)}
        for v in variants
    }
    c = result["connector"]
    return {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "settings": {
            "transport": args.transport,
            "calls": args.calls,
            "warmup": args.warmup,
            "blocks": args.blocks,
            "cart_total": str(CART),
            "delivery": {"timeout_seconds": TIMEOUT, "concurrency": CONCURRENCY},
        },
        "versions": {
            "python": platform.python_version(),
            "zeep": version("zeep"),
            "aiohttp": version("aiohttp"),
            "requests": version("requests"),
        },
        "measured_seconds": round(elapsed, 2),
        "variants": result,
        "overhead": overhead(c, result["raw"]),
        "overhead_vs_sync": overhead(c, result["sync"]),
        "overhead_p50_per_block_ms": [
            round(cb - rb, 4)
            for cb, rb in zip(block_p50["connector"], block_p50["raw"], strict=True)
        ],
        "parts": steps,
    }


def overhead(c: dict[str, Any], r: dict[str, Any]) -> dict[str, float]:
    """``c`` minus ``r`` at p50, p99 and mean, in ms and as ratios, and in CPU per call."""
    keys = ("p50", "p99", "mean")
    return (
        {f"{k}_ms": round(c[f"{k}_ms"] - r[f"{k}_ms"], 4) for k in keys}
        | {f"{k}_ratio": round(c[f"{k}_ms"] / r[f"{k}_ms"], 3) for k in keys}
        | {"cpu_us_per_call": round(c["cpu_us_per_call"] - r["cpu_us_per_call"], 1)}
    )


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    s, v, o, p = r["settings"], r["variants"], r["overhead"], r["parts"]
    vers = r["versions"]
    print(
        f"\n1C balance call, transport {s['transport']}: {s['calls']} sequential calls per"
        f" variant after {s['warmup']} warm-up, {s['blocks']} blocks rotating which goes first;"
        f" emulator in its own process ({r['date_utc']} UTC, Python {vers['python']},"
        f" zeep {vers['zeep']}, aiohttp {vers['aiohttp']}, {r['measured_seconds']} s measured)"
    )
    head = f"{'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8} {'CPU us':>7}"
    print(f"  {'variant':<40} {head}")
    for f in v.values():
        print(
            f"  {f['label']:<40} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f}"
            f" {f['mean_ms']:>8.3f} {f['max_ms']:>8.3f} {f['cpu_us_per_call']:>7.1f}"
        )
    for name, d in (("raw", o), (v["sync"]["label"].split(",")[0], r["overhead_vs_sync"])):
        print(
            f"  overhead connector - {name}: p50 {d['p50_ms']:+.3f} ms (x{d['p50_ratio']:.3f}),"
            f" p99 {d['p99_ms']:+.3f} ms (x{d['p99_ratio']:.3f}),"
            f" mean {d['mean_ms']:+.3f} ms (x{d['mean_ratio']:.3f}),"
            f" CPU {d['cpu_us_per_call']:+.1f} us/call"
        )
    blocks = r["overhead_p50_per_block_ms"]
    print(
        f"  p50 overhead per block (connector - raw): {min(blocks):+.3f} .. {max(blocks):+.3f} ms"
    )
    names = {
        "client": "wire client - raw"
        + (" (names, checks, Answer -> Response)" if s["transport"] == "soap" else " (checks)"),
        "connector": "connector - wire client (timeout, errors, conversion)",
    }
    head = "what the connector adds, step by step (variant - previous)"
    print(f"  {head:<56} {'p50 us':>9} {'p99 us':>9} {'CPU us':>7}")
    for a, b in (("raw", "client"), ("client", "connector")):
        d50 = (v[b]["p50_ms"] - v[a]["p50_ms"]) * 1000
        d99 = (v[b]["p99_ms"] - v[a]["p99_ms"]) * 1000
        dcpu = v[b]["cpu_us_per_call"] - v[a]["cpu_us_per_call"]
        print(f"    {names[b]:<54} {d50:>+9.1f} {d99:>+9.1f} {dcpu:>+7.1f}")
    raw_what = "zeep, post_xml canned" if s["transport"] == "soap" else "json.dumps + json.loads"
    isolated = [
        (f"raw client, no network ({raw_what})", "raw_canned"),
        ("wire client, Wire.post canned", "client_canned"),
        ("connector.balance(), Wire.post canned", "connector_canned"),
        ("  resolve + serialize_object + rename", "rename"),
        ("  _bounded() of a no-op: asyncio.timeout + except", "bounded"),
        ("  balance() with _call canned: to LedgerBalance", "convert"),
    ]
    print(f"  the same costs with the network taken out ({p['convert']['count']} runs each)")
    for label, key in isolated:
        if key in p:
            f = p[key]
            print(f"    {label:<54} {f['p50_ms'] * 1000:>9.1f} {f['p99_ms'] * 1000:>9.1f}")
    own = (p["connector_canned"]["p50_ms"] - p["raw_canned"]["p50_ms"]) * 1000
    print(
        f"    connector - raw client, both without the network, p50 {own:+.1f} us;"
        f" measured connector - raw {o['p50_ms'] * 1000:+.1f} us"
    )


def main() -> int:
    """Parse options, start the emulator, run, print; a failed call ends the run with its
    traceback (exit 1), and so does an emulator that did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per variant")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls per variant")
    parser.add_argument("--blocks", type=int, default=10, help="blocks to interleave (10)")
    parser.add_argument("--transport", choices=["soap", "http"], default="soap")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 40 calls per variant in 2 blocks"
    )
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.warmup, args.blocks, args.timeout = 40, 10, 2, 60
    if args.calls < args.blocks or args.blocks < 1:
        parser.error("--calls must be at least --blocks, and --blocks at least 1")
    with Deadline(args.timeout, "bench/onec_calls.py"):
        proc, urls = start_emulator()
        try:
            result = asyncio.run(bench(args, urls))
        finally:
            code = stop_emulator(proc)
    result["emulator_exit"] = code
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
