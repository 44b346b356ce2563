"""Latency of a 1C balance call through the connector against a raw zeep (or requests) call."""

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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
import zeep
import zeep.helpers
from requests.auth import HTTPBasicAuth

from bridge.ledger import LedgerBalance
from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector

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


def raw_variant(
    transport: str, urls: dict[str, str], cid: str
) -> tuple[Variant, Any, requests.Session]:
    """The call with no bridge code (zeep, or requests + JSON), one answer, its session."""
    session = requests.Session()
    session.auth = HTTPBasicAuth(USER, PASSWORD)
    if transport == "soap":
        transport_ = zeep.Transport(session=session)  # type: ignore[no-untyped-call]
        client = zeep.Client(urls["wsdl_url"], transport=transport_)  # type: ignore[no-untyped-call]
        service = client.service

        def raw() -> object:
            return service.GetBalance(CustomerId=cid, CartTotal=CART)

        label = "raw zeep"
    else:
        # A keep-alive session like the connector's: a bare requests.post would reconnect.
        balance_url = f"{urls['hs_url']}/v1/balance"
        body = {"customer_id": cid, "cart_total": str(CART)}

        def raw() -> object:
            response = session.post(balance_url, json=body, timeout=TIMEOUT)
            response.raise_for_status()
            return response.json()

        label = "raw requests"
    return Variant("raw", label, sync=raw), raw(), session


def check_raw(transport: str, answer: Any) -> None:
    """The raw call must see the seeded customer: 1000 points, 150 redeemable of 300."""
    if transport == "soap":
        got = (answer["Balance"], answer["MaxRedeemable"])
    else:
        got = (Decimal(answer["balance"]), Decimal(answer["max_redeemable"]))
    if got != (Decimal(1000), Decimal(150)):
        raise SystemExit(f"unexpected raw balance answer: {answer!r:.300}")


async def parts(
    connector: OnecConnector, transport: str, cid: str, raw_answer: Any, n: int, pause: float
) -> dict[str, dict[str, Any]]:
    """The connector's own steps without the network; ``pause`` is the raw call's p50."""
    loop = asyncio.get_running_loop()
    pool = connector._pool
    out: dict[str, dict[str, Any]] = {}

    def noop() -> None:
        return None

    async def hop() -> None:
        await loop.run_in_executor(pool, noop)

    async def run() -> None:
        await connector._run(noop)

    out["hop"] = stats(await measure(Variant("hop", "", coro=hop), n))
    out["run"] = stats(await measure(Variant("run", "", coro=run), n))

    def nap() -> None:
        time.sleep(pause)

    async def run_nap() -> None:
        await connector._run(nap)

    # The hop again, around a sleep as long as a call: the loop thread goes idle meanwhile
    # and must be woken, as it is around a real call. Reported as (hop + sleep) - sleep.
    slept: dict[str, list[float]] = {"nap": [], "run_nap": []}
    for _ in range(10):
        slept["nap"] += await measure(Variant("nap", "", sync=nap), max(1, n // 20))
        slept["run_nap"] += await measure(Variant("run_nap", "", coro=run_nap), max(1, n // 20))
    naps, run_naps = stats(slept["nap"]), stats(slept["run_nap"])
    out["run_idle"] = {
        "count": naps["count"],
        "pause_ms": round(pause * 1000, 4),
        **{k: round(run_naps[k] - naps[k], 4) for k in ("p50_ms", "p99_ms", "mean_ms")},
    }
    if transport == "soap":
        naming = connector.options.operations
        params = {"customer_id": cid, "cart_total": CART}

        def rename() -> object:
            named = naming.resolve("balance")
            named.params_to_elements(params)
            plain = zeep.helpers.serialize_object(raw_answer, dict)  # type: ignore[no-untyped-call]
            return named.result_from_elements(plain)

        out["rename"] = stats(await measure(Variant("rename", "", sync=rename), n))
    record = connector._client.call("balance", {"customer_id": cid, "cart_total": CART})

    async def canned(logical: str, **params: Any) -> dict[str, Any]:
        return record

    connector._call = canned  # type: ignore[method-assign]
    try:
        result = await connector.balance(cid, CART)
        assert isinstance(result, LedgerBalance)
        out["convert"] = stats(
            await measure(Variant("convert", "", coro=lambda: connector.balance(cid, CART)), n)
        )
    finally:
        del connector._call
    return out


async def bench(args: argparse.Namespace, urls: dict[str, str]) -> dict[str, Any]:
    """Warm up, then run the variants in blocks, rotating which goes first."""
    connector = make_connector(args.transport, urls)
    await connector.start()
    try:
        cid = (await connector.find_customer(phone=PHONE)).customer_id
        raw, raw_answer, session = raw_variant(args.transport, urls, cid)
        check_raw(args.transport, raw_answer)
        wire, loop = connector._client, asyncio.get_running_loop()

        def wire_call() -> object:
            return wire.call("balance", {"customer_id": cid, "cart_total": CART})

        async def pooled() -> object:
            return await loop.run_in_executor(connector._pool, wire_call)

        variants = [
            raw,
            Variant("client", "wire client, same thread", sync=wire_call),
            Variant("pooled", "wire client in the pool, no wait_for", coro=pooled),
            Variant("connector", "connector.balance()", coro=lambda: connector.balance(cid, CART)),
        ]
        for v in variants:
            await measure(v, args.warmup)
        lat: dict[str, list[float]] = {v.key: [] for v in variants}
        block_p50: dict[str, list[float]] = {v.key: [] for v in variants}
        sizes = [
            args.calls // args.blocks + (i < args.calls % args.blocks) for i in range(args.blocks)
        ]
        t0 = time.perf_counter()
        for b, size in enumerate(sizes):
            order = variants[b % len(variants) :] + variants[: b % len(variants)]
            for v in order:
                got = await measure(v, size)
                lat[v.key] += got
                block_p50[v.key].append(stats(got)["p50_ms"])
        elapsed = time.perf_counter() - t0
        pause = stats(lat["raw"])["p50_ms"] / 1000
        steps = await parts(connector, args.transport, cid, raw_answer, args.calls, pause)
        session.close()
    finally:
        await connector.close()
    result = {v.key: stats(lat[v.key]) | {"label": v.label} for v in variants}
    r, c = result["raw"], result["connector"]
    overhead = {
        f"{k}_ms": round(c[f"{k}_ms"] - r[f"{k}_ms"], 4) for k in ("p50", "p99", "mean")
    } | {f"{k}_ratio": round(c[f"{k}_ms"] / r[f"{k}_ms"], 3) for k in ("p50", "p99", "mean")}
    per_block = [
        round(cb - rb, 4) for cb, rb in zip(block_p50["connector"], block_p50["raw"], strict=True)
    ]
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
            "requests": version("requests"),
        },
        "measured_seconds": round(elapsed, 2),
        "variants": result,
        "overhead": overhead,
        "overhead_p50_per_block_ms": per_block,
        "parts": steps,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    s, v, o, p = r["settings"], r["variants"], r["overhead"], r["parts"]
    print(
        f"\n1C balance call, transport {s['transport']}: {s['calls']} sequential calls per"
        f" variant after {s['warmup']} warm-up, {s['blocks']} blocks rotating which goes first;"
        f" emulator in its own process ({r['date_utc']} UTC, Python {r['versions']['python']},"
        f" zeep {r['versions']['zeep']}, {r['measured_seconds']} s measured)"
    )
    print(f"  {'variant':<40} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8}")
    for f in v.values():
        print(
            f"  {f['label']:<40} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f}"
            f" {f['mean_ms']:>8.3f} {f['max_ms']:>8.3f}"
        )
    blocks = r["overhead_p50_per_block_ms"]
    print(
        f"  overhead connector - raw: p50 {o['p50_ms']:+.3f} ms (x{o['p50_ratio']:.3f}),"
        f" p99 {o['p99_ms']:+.3f} ms (x{o['p99_ratio']:.3f}),"
        f" mean {o['mean_ms']:+.3f} ms (x{o['mean_ratio']:.3f})"
    )
    print(f"  p50 overhead per block: {min(blocks):+.3f} .. {max(blocks):+.3f} ms")
    steps = [("raw", "client"), ("client", "pooled"), ("pooled", "connector")]
    names = {
        "client": "wire client - raw"
        + (" (names, zeep settings)" if s["transport"] == "soap" else " (body, checks)"),
        "pooled": "pool hop around the real call",
        "connector": "wait_for + result conversion",
    }
    head = "what the connector adds, step by step (variant - previous)"
    print(f"  {head:<56} {'p50 us':>9} {'p99 us':>9}")
    for a, b in steps:
        d50 = (v[b]["p50_ms"] - v[a]["p50_ms"]) * 1000
        d99 = (v[b]["p99_ms"] - v[a]["p99_ms"]) * 1000
        print(f"    {names[b]:<54} {d50:>+9.1f} {d99:>+9.1f}")
    isolated = [
        ("_run() of a no-op: pool hop + wait_for", "run"),
        ("  hop alone (run_in_executor)", "hop"),
        (f"_run() of a {p['run_idle']['pause_ms']:.2f} ms sleep, minus the sleep", "run_idle"),
    ]
    if "rename" in p:
        isolated.insert(0, ("resolve + serialize_object + rename", "rename"))
    isolated.append(("balance() with _call canned: to LedgerBalance", "convert"))
    runs, naps = p["run"]["count"], p["run_idle"]["count"]
    print(f"  the same costs isolated, no network ({runs} runs each; {naps} around the sleep)")
    for label, key in isolated:
        f = p[key]
        print(f"    {label:<54} {f['p50_ms'] * 1000:>+9.1f} {f['p99_ms'] * 1000:>+9.1f}")
    keys = [key for key in ("rename", "run_idle", "convert") if key in p]
    total = sum(p[key]["p50_ms"] for key in keys)
    what = " + ".join({"rename": "rename", "run_idle": "hop around sleep"}.get(k, k) for k in keys)
    print(
        f"    sum at p50 ({what}) {total * 1000:+.1f} us;"
        f" measured connector - raw {o['p50_ms'] * 1000:+.1f} us"
    )


def main() -> int:
    """Parse options, start the emulator, run, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000, help="measured calls per variant")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls per variant")
    parser.add_argument("--blocks", type=int, default=10, help="blocks to interleave (10)")
    parser.add_argument("--transport", choices=["soap", "http"], default="soap")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()
    if args.calls < args.blocks or args.blocks < 1:
        parser.error("--calls must be at least --blocks, and --blocks at least 1")
    proc, urls = start_emulator()
    try:
        result = asyncio.run(bench(args, urls))
    finally:
        code = stop_emulator(proc)
    result["emulator_exit"] = code
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
