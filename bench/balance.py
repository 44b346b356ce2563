"""Balance look-ups at a fixed rate via the bridge, straight to the master, and through a
bare proxy making the same master calls (the floor), in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from balance_children import (
    EMULATOR,
    PROXY,
    TAG,
    cpu_seconds,
    start_bridge,
    start_child,
    stop,
    write_calls,
)
from guard import Deadline  # bench/ is on sys.path when run as a script

from bridge.settings import SystemSettings
from connectors.onec.connector import ONEC
from connectors.retailcrm.connector import RETAILCRM

TOKEN, PHONE = "bench-balance-client-token-01", "+79000000001"
CRM_KEY = "sandbox-bridge-key-0001"
# Issue 16: overhead over direct p50 <= 1 ms and <= 1.3x the floor's, p99 <= 2 ms (200/s);
# RetailCRM: one request per warm look-up, 8 look-ups/s on one key at its 10 requests/s.
TARGET_P50_MS, TARGET_RATIO, TARGET_P99_MS = 1.0, 1.3, 2.0
CRM_RATE = 10.0  # RetailCRM's requests/s per key (retailcrm-api.md §1.6)
CRM_LOOKUPS = 8.0  # look-ups/s one key must sustain
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
STREAMS = ("bridge", "direct", "floor")
# Set by the client library or the proxy, not by the connector: aiohttp sets its own.
DROP = {"host", "content-length", "connection", "user-agent", "accept-encoding"}
DROP |= {"transfer-encoding", "keep-alive"}


class Call(NamedTuple):
    """One HTTP request the bridge's connector made to the master, replayed as is."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


def stats(lat: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p99/max of latencies in seconds, as ms."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    pcts = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 3) for k, q in PCTS}
    return {"count": n} | pcts


def free_port() -> int:
    """A free loopback port: bind to 0, read it, let it go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def master_system(master: str, urls: dict[str, str], crm_rate: float) -> dict[str, Any]:
    """``systems.<master>`` pointed at the emulator, no polling."""
    if master == "retailcrm":
        options: dict[str, Any] = {"url": urls["url"], "api_key": CRM_KEY}
        options |= {"rate_limit": crm_rate, "poll_interval": 0}
        return {"type": "retailcrm", "options": options}
    soap = master == "onec-soap"
    options = {"transport": "soap" if soap else "http", "username": "bridge"}
    options |= {"address": urls["url"]} if soap else {"url": urls["hs_url"]}
    return {"type": "onec", "options": options | {"password": "sandbox", "poll_interval": 0}}


def write_config(tmp: Path, port: int, name: str, system: dict[str, Any]) -> Path:
    """Store in tmp, one client with bonus:read, the master as the only system (JSON is YAML)."""
    # A look-up sends no SMS, but the bridge wants a real way to send confirmation codes:
    # the master's own (RetailCRM), or a gateway template at a closed port (never called).
    sms: dict[str, Any] = {"sender": "master"}
    if system["type"] != "retailcrm":
        sms = {"sender": "bridge", "gateway": {"type": "http", "url": "http://127.0.0.1:9/sms"}}
    config = {
        "store": {"url": f"sqlite:///{tmp / 'bench.db'}"},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "clients": {"till": {"token": TOKEN, "scopes": ["bonus:read"]}},
        "systems": {name: system},
        "bonus": {"master": name, "sms": sms},
        "sandbox": {"enabled": False},
    }
    path = tmp / "bench.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


async def capture(name: str, system: dict[str, Any], cart: Decimal | None) -> list[Call]:
    """The requests the bridge's connector makes for a warm look-up, as they reach the
    master: recorded by a pass-through proxy put where the master is.

    Recorded on the wire, so whatever the connector uses (zeep, aiohttp) is seen alike.
    The first look-up finds the customer (``find_customer``, then ``balance``); the second,
    the one kept, is ``balance`` alone: the bonus service remembers who the phone is
    (``bridge/bonus/customers.py``), so that is what the bridge asks on a warm look-up,
    and a connector may remember something from the first (RetailCRM's bonus details).
    """
    target = system["options"].get("url") or system["options"]["address"]
    origin = target.split("/", 3)[:3]  # scheme, "", host:port
    master = "/".join(origin)
    recording: list[Call] | None = None
    upstream = aiohttp.ClientSession(auto_decompress=False)

    async def relay(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROP}
        if recording is not None:
            recording.append(Call(request.method, master + request.path_qs, headers, body))
        url = master + request.path_qs
        async with upstream.request(request.method, url, data=body, headers=headers) as r:
            answer = await r.read()
            kept = {k: v for k, v in r.headers.items() if k.lower() not in DROP}
            return web.Response(status=r.status, body=answer, headers=kept)

    app = web.Application(client_max_size=16 * 2**20)
    app.router.add_route("*", "/{tail:.*}", relay)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    proxied = json.loads(
        json.dumps(system).replace(master, f"http://127.0.0.1:{runner.addresses[0][1]}")
    )
    ctype: Any = RETAILCRM if system["type"] == "retailcrm" else ONEC
    options = ctype.options_model.model_validate(proxied["options"])
    connector = ctype.create(name, SystemSettings(type=system["type"]), options)
    try:
        await connector.start()  # the WSDL is read here, before recording starts
        customer = await connector.find_customer(phone=PHONE)
        await connector.balance(customer.customer_id, cart)
        recording = []
        balance = await connector.balance(customer.customer_id, cart)
        calls = recording
    finally:
        await connector.close()
        await upstream.close()
        await runner.cleanup()
    cap = None if cart is None else Decimal(150)
    if (balance.balance, balance.max_redeemable) != (Decimal(1000), cap):
        raise SystemExit(f"unexpected balance from the emulator: {balance!r:.300}")
    if not calls:
        raise SystemExit("the connector sent nothing to the master: nothing to replay")
    return calls


async def counted(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    """The bridge's master requests the emulator served so far, and its 503s for its rate."""
    async with session.get(url) as r:
        got = await r.json()
        return int(got["served"]), int(got["rate_limited"])


def plans_of(
    cart: Decimal | None, urls: dict[str, str], calls: list[Call]
) -> dict[str, list[Call]]:
    """Per stream, the requests of one look-up, in order."""
    asked: dict[str, Any] = {"customer": {"phone": PHONE}}
    if cart is not None:
        asked["cart"] = {"total": str(cart)}
    body = json.dumps(asked).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    return {
        "bridge": [Call("POST", urls["bridge"], headers, body)],
        "direct": [c._replace(headers=c.headers | {TAG: "direct"}) for c in calls],
        "floor": [Call("POST", urls["floor"], {"Content-Type": "application/json"}, body)],
    }


async def drive(
    args: argparse.Namespace, urls: dict[str, str], calls: list[Call], pids: list[int]
) -> dict[str, Any]:
    """The open-loop schedule: warm-up, then the measured run; per stream what happened."""
    lat: dict[str, list[float]] = {s: [] for s in STREAMS}
    errors: dict[str, Counter[str]] = {s: Counter() for s in STREAMS}
    lags: list[float] = []
    timeout = aiohttp.ClientTimeout(total=10)
    sessions = [  # one keep-alive pool each: the bridge, the emulator, the floor proxy
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)
        for _ in STREAMS
    ]
    plans = plans_of(args.cart, urls, calls)

    async def one(stream: str, measured: bool) -> None:
        t0, problem, session = time.perf_counter(), None, sessions[STREAMS.index(stream)]
        try:
            for c in plans[stream]:
                async with session.request(c.method, c.url, data=c.body, headers=c.headers) as r:
                    raw = await r.read()
                if r.status != 200:
                    problem = f"{c.method} {c.url.split('?')[0]} HTTP {r.status}: {raw[:100]!r}"
                    break
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:160]
        if not measured:
            return
        if problem is None:
            lat[stream].append(time.perf_counter() - t0)
        else:
            errors[stream][problem] += 1

    for stream in STREAMS:  # one look-up each first: the bridge finds the customer here
        await one(stream, measured=False)
    await asyncio.sleep(1.1)  # RetailCRM's one-second window empty again
    blocks, n = args.interleave == "block", len(STREAMS)
    tick = args.rate if blocks else n * args.rate  # "request": each stream at --rate
    warm, total = int(args.warmup * tick), int((args.warmup + args.seconds) * tick)
    tasks: set[asyncio.Task[None]] = set()
    cpu0: dict[int, float] = {}
    sent: Counter[str] = Counter()
    started = measured = time.perf_counter()
    for i in range(total):
        if i == warm:  # CPU time of this process and the children, from here on
            cpu0 = {pid: cpu_seconds(pid) for pid in [os.getpid(), *pids]}
            counts0 = asyncio.create_task(counted(sessions[-1], urls["count"]))
            measured = time.perf_counter()
        due = started + i / tick
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lags.append(time.perf_counter() - due)
        k = int((i - warm) // (tick * args.block)) if blocks else i  # block 0: first measured
        stream = STREAMS[(k + k // n) % n]  # in blocks, each stream goes first in turn
        sent[stream] += i >= warm
        task = asyncio.create_task(one(stream, i >= warm))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sending = time.perf_counter() - measured
    await asyncio.gather(*tasks)
    (served1, refused1), (served0, refused0) = (
        await counted(sessions[-1], urls["count"]),
        await counts0,
    )
    wall = time.perf_counter() - measured
    cpu = {pid: cpu_seconds(pid) - used for pid, used in cpu0.items()}
    for session in sessions:
        await session.close()
    span = {s: sending * (sent[s] / (total - warm) if blocks else 1) for s in STREAMS}
    return {
        "lat": lat,
        "errors": errors,
        "lags": lags[warm:],
        "sent_rate": (total - warm) / sending,
        "rates": {s: len(lat[s]) / span[s] if span[s] else 0.0 for s in STREAMS},
        "cpu": cpu,
        "wall": wall,
        "master_requests": served1 - served0,
        "rate_limited": refused1 - refused0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Emulator, capture, floor proxy, bridge, the load; every child stopped afterwards."""
    kind = "retailcrm" if args.master == "retailcrm" else "onec"
    load_before = os.getloadavg()
    emulator, urls = start_child("emulator", EMULATOR, kind, str(args.crm_emulator_rate))
    floor_exit = daemon_exit = None
    try:
        with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
            tmp, port = Path(name), free_port()
            system = master_system(args.master, urls, args.crm_rate_limit)
            calls = asyncio.run(capture(kind, system, args.cart))
            tagged = [c._replace(headers=c.headers | {TAG: "floor"}) for c in calls]
            floor, floor_urls = start_child(
                "floor proxy", PROXY, str(write_calls(tmp / "c", tagged))
            )
            urls["floor"] = floor_urls["url"]
            try:
                daemon = start_bridge(write_config(tmp, port, kind, system), port, tmp / "d.log")
                urls["bridge"] = f"http://127.0.0.1:{port}/api/v1/bonus/balance"
                try:
                    pids = [daemon.pid, floor.pid, emulator.pid]
                    done = asyncio.run(drive(args, urls, calls, pids))
                finally:
                    daemon_exit = stop(daemon)
            finally:
                floor_exit = stop(floor)
    finally:
        emulator_exit = stop(emulator)
    names = {
        os.getpid(): "bench",
        daemon.pid: "bridge",
        floor.pid: "floor",
        emulator.pid: "emulator",
    }
    return figures(args, calls, done, names) | {
        "exits": {"bridge": daemon_exit, "emulator": emulator_exit},
        "floor_exit": floor_exit,
        "load": {"before": load_before, "after": os.getloadavg()},
    }


def figures(
    args: argparse.Namespace, calls: list[Call], done: dict[str, Any], names: dict[int, str]
) -> dict[str, Any]:
    """What the run measured, the same-run ratios and the verdicts."""
    out: dict[str, Any] = {
        "settings": {k: getattr(args, k) for k in ("master", "rate", "seconds", "interleave")}
        | {"block": args.block, "warmup": args.warmup, "cart": str(args.cart)},
        "direct_calls": [f"{c.method} {c.url.split('?')[0]}" for c in calls],
    }
    lat, errors = done["lat"], done["errors"]
    for stream in STREAMS:  # per_second: answers per second of the stream's share of the run
        out[stream] = stats(lat[stream]) | {
            "per_second": round(done["rates"][stream], 1),
            "errors": errors[stream].total(),
            "error_kinds": dict(errors[stream].most_common(5)),
        }
    b, d, f = out["bridge"], out["direct"], out["floor"]
    over = {k: round(b[f"{k}_ms"] - d[f"{k}_ms"], 3) for k in ("p50", "p99")}
    floor_over = {k: round(f[f"{k}_ms"] - d[f"{k}_ms"], 3) for k in ("p50", "p99")}
    ratio = {k: round(over[k] / floor_over[k], 2) if floor_over[k] > 0 else None for k in over}
    cpu = {names[pid]: used for pid, used in done["cpu"].items()}
    per_lookup = {
        s: round(cpu[s] * 1000 / max(1, out[s]["count"] + out[s]["errors"]), 3)
        for s in ("bridge", "floor")
    }
    # Like with like: what the emulator served over the measured part, less the direct and
    # floor streams' requests (tagged), is what the bridge asked of the master per look-up.
    bridge_calls = done["master_requests"] / max(1, b["count"] + b["errors"])
    same = abs(bridge_calls - len(calls)) < 0.05
    ok = b["errors"] + d["errors"] + f["errors"] == 0 and same  # like with like, or no PASS
    verdicts = {
        f"overhead p50 <= {TARGET_P50_MS:g} ms": ok and over["p50"] <= TARGET_P50_MS,
        f"overhead p50 <= {TARGET_RATIO:g}x the floor's": ok
        and ratio["p50"] is not None
        and ratio["p50"] <= TARGET_RATIO,
        f"overhead p99 <= {TARGET_P99_MS:g} ms": ok and over["p99"] <= TARGET_P99_MS,
    }
    if args.master == "retailcrm":
        sustained = b["per_second"] >= 0.97 * args.rate and args.rate >= CRM_LOOKUPS
        warm_calls = 1 if args.cart is None else 2
        verdicts |= {
            f"{warm_calls} RetailCRM request(s) per warm look-up": same
            and len(calls) == warm_calls,
            f"{CRM_LOOKUPS:g} look-ups/s on one key at {args.crm_emulator_rate:g} req/s, no 503": ok
            and sustained
            and done["rate_limited"] == 0
            and args.crm_emulator_rate <= CRM_RATE,
        }
    return out | {
        "master_calls_per_lookup": {"direct": len(calls), "bridge": round(bridge_calls, 3)},
        "same_master_calls": same,
        "overhead_ms": over,
        "floor_overhead_ms": floor_over,
        "ratio_to_floor": ratio,
        "rate_limited": done["rate_limited"],
        "generator": {"sent_per_second": round(done["sent_rate"], 1), "lag": stats(done["lags"])},
        "cpu_cores": {name: round(used / done["wall"], 3) for name, used in cpu.items()},
        "cpu_ms_per_lookup": per_lookup,
        "smoke": args.smoke,
        "verdicts": verdicts,
        "speed_targets": [name for name in verdicts if name.startswith("overhead")],
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    mark, g, c, o = {True: "PASS", False: "MISS"}, r["generator"], r["cpu_cores"], r["overhead_ms"]
    unjudged = r["speed_targets"] if r["smoke"] else []  # a few samples say nothing of speed
    print(f"\nbalance look-ups: {r['settings']}")
    print(f"  direct = {' -> '.join(r['direct_calls'])}")
    print("  floor  = a bare aiohttp proxy making those same calls per look-up")
    m = r["master_calls_per_lookup"]
    print(
        f"  like with like: direct and the floor replay the {m['direct']} requests the bridge's"
        f" connector sent on a warm look-up; in this run the master served {m['bridge']:.2f} per"
        f" bridge look-up: {'same' if r['same_master_calls'] else 'NOT THE SAME'}"
    )
    for stream in STREAMS:
        f = r[stream]
        print(
            f"  {stream:<7} {f['per_second']:>7.1f}/s  p50 {f['p50_ms']:>7.3f} ms"
            f"  p99 {f['p99_ms']:>8.3f} ms  max {f['max_ms']:>8.3f} ms  errors {f['errors']}"
        )
        for reason, count in f["error_kinds"].items():
            print(f"      {count} x {reason}")
    fo, ratio = r["floor_overhead_ms"], r["ratio_to_floor"]
    shown = {k: "n/a" if v is None else f"{v:.2f}x" for k, v in ratio.items()}
    print(f"  overhead (bridge - direct)  p50 {o['p50']:+.3f} ms  p99 {o['p99']:+.3f} ms")
    print(f"  overhead (floor - direct)   p50 {fo['p50']:+.3f} ms  p99 {fo['p99']:+.3f} ms")
    print(f"  ratio bridge / floor overhead  p50 {shown['p50']}  p99 {shown['p99']}")
    if r["settings"]["master"] == "retailcrm":
        print(f"  RetailCRM 503s for its rate limit in the measured part: {r['rate_limited']}")
    print(
        f"  generator {g['sent_per_second']:.1f} sends/s; behind schedule p99"
        f" {g['lag']['p99_ms']:.3f} ms, max {g['lag']['max_ms']:.3f} ms"
    )
    per = r["cpu_ms_per_lookup"]
    print(
        f"  CPU cores: bench {c['bench']:.2f}, bridge {c['bridge']:.2f}, floor {c['floor']:.2f},"
        f" emulator {c['emulator']:.2f}; CPU per look-up: bridge {per['bridge']:.3f} ms,"
        f" floor {per['floor']:.3f} ms"
    )
    load = r["load"]
    print(
        "  machine load (1/5/15 min): before "
        + " ".join(f"{x:.2f}" for x in load["before"])
        + ", after "
        + " ".join(f"{x:.2f}" for x in load["after"])
        + f" ({os.cpu_count()} cores)"
    )
    print(f"  exits {r['exits']}, floor proxy {r['floor_exit']}")
    for target, passed in r["verdicts"].items():
        print(
            f"  target  {target}: {'not judged (--smoke)' if target in unjudged else mark[passed]}"
        )


def cart_total(text: str) -> Decimal | None:
    """``--cart``: a total, or ``none`` for a look-up without a cart."""
    if text.lower() == "none":
        return None
    try:
        return Decimal(text)
    except ArithmeticError:
        raise SystemExit(f"--cart: {text!r} is neither a total (300.00) nor none") from None


def main() -> int:
    """Parse options, run, print; exit 1 if any look-up failed, the streams differed or a
    child did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--master", choices=["onec-soap", "onec", "retailcrm"], default="onec-soap")
    parser.add_argument("--rate", type=float, default=0, help="look-ups/s (200; retailcrm 8)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds (30)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (3)")
    parser.add_argument("--interleave", choices=["block", "request"], default="block")
    parser.add_argument("--block", type=float, default=1, help="seconds per block (1)")
    parser.add_argument("--cart", default="", help="cart total, or none (300.00; retailcrm none)")
    parser.add_argument("--crm-rate-limit", type=float, default=CRM_RATE, help="the bridge's (10)")
    parser.add_argument(
        "--crm-emulator-rate", type=float, default=CRM_RATE, help="RetailCRM's (10; 0: none)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 20 look-ups/s (retailcrm 8), 1.5 s measured in 0.5-s blocks after"
        " 1.5 s of warm-up, same checks, targets not judged",
    )
    args = parser.parse_args()
    crm = args.master == "retailcrm"
    # RetailCRM without a cart: the cap is a second request (/loyalty/calculate), and the
    # target is 8 look-ups/s at 10 requests/s.
    args.cart = cart_total(args.cart or ("none" if crm else "300.00"))
    if args.smoke:
        args.rate = args.rate or (CRM_LOOKUPS if crm else 20)
        args.seconds, args.warmup, args.block = 1.5, 1.5, 0.5
    args.rate = args.rate or (CRM_LOOKUPS if crm else 200)
    if args.interleave == "block" and args.seconds < len(STREAMS) * args.block:
        parser.error(f"--seconds must be at least {len(STREAMS)} blocks, one per stream")
    # The backstop: emulator start and capture, the daemon's start, the run, the stops.
    with Deadline(args.warmup + args.seconds + 180, "bench/balance.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    failed = sum(result[s]["errors"] for s in STREAMS) or not result["same_master_calls"]
    exits = [*result["exits"].values(), result["floor_exit"]]
    return 1 if failed or set(exits) != {0} else 0


if __name__ == "__main__":
    raise SystemExit(main())
