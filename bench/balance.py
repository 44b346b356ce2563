"""Balance look-ups at a fixed rate via the bridge and straight to the master, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
from aiohttp import web
from guard import Deadline  # bench/ is on sys.path when run as a script
from intake import start_daemon

from bridge.settings import SystemSettings
from connectors.onec.connector import ONEC
from connectors.retailcrm.connector import RETAILCRM

ROOT = Path(__file__).resolve().parent.parent
TOKEN, PHONE, CART = "bench-balance-client-token-01", "+79000000001", "300.00"
CRM_KEY = "sandbox-bridge-key-0001"
TARGET_P50_MS, TARGET_P99_MS = 1.0, 5.0
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
STREAMS = ("bridge", "direct", "floor")
# Set by the client library or the proxy, not by the connector: aiohttp sets its own.
DROP = {"host", "content-length", "connection", "user-agent", "accept-encoding"}
DROP |= {"transfer-encoding", "keep-alive"}
# The emulator's own process: the emulator plus a bare aiohttp server (the floor: one HTTP
# round trip with no work behind it; GET /count there answers how many requests the
# emulator has served that the direct stream did not send, i.e. the bridge's); prints their
# URLs as one JSON line, serves until stdin closes.
EMULATOR = """
import asyncio, json, sys
from aiohttp import web

served = [0]
TAG = "X-Bench-Stream"

async def echo(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"balance": "1000.00", "pad": "x" * 250})

async def count(request: web.Request) -> web.Response:
    return web.json_response({"served": served[0]})

def counted(gate):
    # Counts every master request (not the emulator's admin paths) in front of the
    # emulator's own middleware; set before start(), which builds the app with it.
    @web.middleware
    async def middleware(request, handler):
        if not request.path.startswith("/__emulator__/") and TAG not in request.headers:
            served[0] += 1
        return await gate(request, handler)
    return middleware

async def main() -> None:
    if sys.argv[1] == "retailcrm":
        from connectors.retailcrm.emulator import RetailcrmEmulator
        emulator = RetailcrmEmulator(rate_limit=0)  # 200 look-ups/s x 5 calls: no 503s
    else:
        from connectors.onec.emulator import OnecEmulator
        emulator = OnecEmulator(username="bridge", password="sandbox")
    emulator._gate = counted(emulator._gate)
    await emulator.start()
    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    floor = f"http://127.0.0.1:{runner.addresses[0][1]}/echo"
    urls = {"url": emulator.url, "hs_url": getattr(emulator, "hs_url", ""), "floor": floor}
    print(json.dumps(urls), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await emulator.stop()

asyncio.run(main())
"""


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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def child_env() -> dict[str, str]:
    """This environment with the project root on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def free_port() -> int:
    """A free loopback port: bind to 0, read it, let it go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(kind: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run the master's emulator in a child process; its URLs once it listens."""
    cmd = [sys.executable, "-c", EMULATOR, kind]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdin=pipe, stdout=pipe, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line:
        stop(proc)
        raise SystemExit(f"the emulator did not start within 30 s (exit {proc.returncode})")
    return proc, dict(json.loads(line))


def stop(proc: subprocess.Popen[Any]) -> int | None:
    """Close the child's stdin (the emulator's signal) or SIGTERM it; its exit code."""
    if proc.stdin is not None:
        proc.stdin.close()
    elif proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def reap(*procs: subprocess.Popen[Any] | None) -> None:
    """Kill whichever of ``procs`` still runs (a bench that failed half-way) and wait."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()


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


async def capture(name: str, system: dict[str, Any]) -> list[Call]:
    """The requests the bridge's connector makes for one look-up (find_customer, balance),
    as they reach the master: recorded by a pass-through proxy put where the master is.

    Recorded on the wire, so whatever the connector uses (requests, zeep, aiohttp) is seen
    alike. The second of two look-ups is the one kept: a connector may remember something
    from the first (RetailCRM's bonus details), and the bridge in the run is warm too.
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
        for kept in (False, True):
            recording = [] if kept else None
            customer = await connector.find_customer(phone=PHONE)
            balance = await connector.balance(customer.customer_id, Decimal(CART))
            calls = recording or []
    finally:
        await connector.close()
        await upstream.close()
        await runner.cleanup()
    if (balance.balance, balance.max_redeemable) != (Decimal(1000), Decimal(150)):
        raise SystemExit(f"unexpected balance from the emulator: {balance!r:.300}")
    if not calls:
        raise SystemExit("the connector sent nothing to the master: nothing to replay")
    return calls


async def served(session: aiohttp.ClientSession, floor: str) -> int:
    """How many master requests the emulator has served so far (its process counts them)."""
    async with session.get(floor.replace("/echo", "/count")) as r:
        return int((await r.json())["served"])


async def drive(
    args: argparse.Namespace, urls: dict[str, str], calls: list[Call], pids: list[int]
) -> Any:
    """The open-loop schedule: warm-up, then the measured run; per stream what happened."""
    body = json.dumps({"customer": {"phone": PHONE}, "cart": {"total": CART}}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    lat: dict[str, list[float]] = {s: [] for s in STREAMS}
    errors: dict[str, Counter[str]] = {s: Counter() for s in STREAMS}
    lags: list[float] = []
    timeout = aiohttp.ClientTimeout(total=10)
    sessions = [  # one keep-alive pool each: the bridge, the emulator, the floor server
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)
        for _ in STREAMS
    ]

    plans = {  # the requests of one look-up (or one floor round trip), in order
        "bridge": [Call("POST", urls["bridge"], headers, body)],
        "direct": [c._replace(headers=c.headers | {"X-Bench-Stream": "direct"}) for c in calls],
        "floor": [Call("POST", urls["floor"], {"Content-Type": "application/json"}, body)],
    }

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
            served0 = asyncio.create_task(served(sessions[-1], urls["floor"]))
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
    master_requests = await served(sessions[-1], urls["floor"]) - await served0
    wall = time.perf_counter() - measured
    cores = {pid: (cpu_seconds(pid) - used) / wall for pid, used in cpu0.items()}
    for session in sessions:
        await session.close()
    span = {s: sending * (sent[s] / (total - warm) if blocks else 1) for s in STREAMS}
    rates = {s: len(lat[s]) / span[s] if span[s] else 0.0 for s in STREAMS}
    return lat, errors, lags[warm:], (total - warm) / sending, rates, cores, master_requests


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Emulator, capture, bridge, the load; both children stopped afterwards."""
    kind = "retailcrm" if args.master == "retailcrm" else "onec"
    emulator, urls = start_emulator(kind)
    try:
        with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
            tmp, port = Path(name), free_port()
            system = master_system(args.master, urls, args.crm_rate_limit)
            calls = asyncio.run(capture(kind, system))
            daemon = start_daemon(write_config(tmp, port, kind, system), port, tmp / "d.log")
            urls["bridge"] = f"http://127.0.0.1:{port}/api/v1/bonus/balance"
            try:
                pids = [daemon.pid, emulator.pid]
                lat, errors, lags, sent_rate, rates, cores, master_requests = asyncio.run(
                    drive(args, urls, calls, pids)
                )
            finally:
                daemon_exit = stop(daemon)
    finally:
        emulator_exit = stop(emulator)
    out: dict[str, Any] = {
        "settings": {k: getattr(args, k) for k in ("master", "rate", "seconds", "interleave")}
        | {"block": args.block, "warmup": args.warmup},
        "direct_calls": [f"{c.method} {c.url.split('?')[0]}" for c in calls],
    }
    for stream in STREAMS:  # per_second: answers per second of the stream's share of the run
        out[stream] = stats(lat[stream]) | {
            "per_second": round(rates[stream], 1),
            "errors": errors[stream].total(),
            "error_kinds": dict(errors[stream].most_common(5)),
        }
    b, d = out["bridge"], out["direct"]
    over = {k: round(b[f"{k}_ms"] - d[f"{k}_ms"], 3) for k in ("p50", "p99")}
    names = {os.getpid(): "bench", daemon.pid: "bridge", emulator.pid: "emulator"}
    per_lookup = cores[daemon.pid] * args.seconds / max(1, b["count"] + b["errors"])
    # Like with like: what the emulator served over the measured part, less the direct
    # stream's requests (tagged), is what the bridge asked of the master per look-up.
    bridge_calls = master_requests / max(1, b["count"] + b["errors"])
    same = abs(bridge_calls - len(calls)) < 0.05
    ok = b["errors"] + d["errors"] == 0 and same  # a target is only met comparing like with like
    return out | {
        "master_calls_per_lookup": {"direct": len(calls), "bridge": round(bridge_calls, 3)},
        "same_master_calls": same,
        "overhead_ms": over,
        "generator": {"sent_per_second": round(sent_rate, 1), "lag": stats(lags)},
        "cpu_cores": {names[pid]: round(used, 3) for pid, used in cores.items()},
        "bridge_cpu_ms_per_lookup": round(per_lookup * 1000, 3),
        "exits": {"bridge": daemon_exit, "emulator": emulator_exit},
        "smoke": args.smoke,
        "pass_p50": ok and over["p50"] <= TARGET_P50_MS,
        "pass_p99": ok and over["p99"] <= TARGET_P99_MS,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    mark, g, c, o = {True: "PASS", False: "MISS"}, r["generator"], r["cpu_cores"], r["overhead_ms"]
    if r["smoke"]:
        mark = dict.fromkeys((True, False), "not judged (--smoke)")
    print(f"\nbalance look-ups: {r['settings']}")
    print(f"  direct = {' -> '.join(r['direct_calls'])}")
    m = r["master_calls_per_lookup"]
    print(
        f"  like with like: direct replays the {m['direct']} requests the bridge's connector"
        f" sent on a warm look-up; in this run the master served {m['bridge']:.2f} per bridge"
        f" look-up: {'same' if r['same_master_calls'] else 'NOT THE SAME'}"
    )
    for stream in STREAMS:
        f = r[stream]
        print(
            f"  {stream:<7} {f['per_second']:>7.1f}/s  p50 {f['p50_ms']:>7.3f} ms"
            f"  p99 {f['p99_ms']:>8.3f} ms  max {f['max_ms']:>8.3f} ms  errors {f['errors']}"
        )
        for reason, count in f["error_kinds"].items():
            print(f"      {count} x {reason}")
    print(f"  overhead (bridge - direct)  p50 {o['p50']:+.3f} ms  p99 {o['p99']:+.3f} ms")
    print(
        f"  generator {g['sent_per_second']:.1f} sends/s; behind schedule p99"
        f" {g['lag']['p99_ms']:.3f} ms, max {g['lag']['max_ms']:.3f} ms"
    )
    print(
        f"  CPU cores: bench {c['bench']:.2f}, bridge {c['bridge']:.2f}, emulator (+ floor)"
        f" {c['emulator']:.2f}; bridge CPU per look-up {r['bridge_cpu_ms_per_lookup']:.3f} ms"
    )
    print(f"  exits {r['exits']}")
    print(f"  target  overhead p50 <= {TARGET_P50_MS:g} ms: {mark[r['pass_p50']]}")
    print(f"  target  overhead p99 <= {TARGET_P99_MS:g} ms: {mark[r['pass_p99']]}")


def main() -> int:
    """Parse options, run, print; exit 1 if any look-up failed, the streams differed or a
    child did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--master", choices=["onec", "onec-soap", "retailcrm"], default="onec")
    parser.add_argument("--rate", type=float, default=0, help="look-ups/s (200; retailcrm 10)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds (30)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (3)")
    parser.add_argument("--interleave", choices=["block", "request"], default="block")
    parser.add_argument("--block", type=float, default=1, help="seconds per block (1)")
    parser.add_argument("--crm-rate-limit", type=float, default=100, help="the bridge's (100)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 20 look-ups/s (retailcrm 10), 1.5 s measured in 0.5-s blocks after"
        " 1.5 s of warm-up, same checks, targets not judged",
    )
    args = parser.parse_args()
    if args.smoke:  # the warm-up still gives the bridge a block of its own (see drive)
        args.rate = args.rate or (10 if args.master == "retailcrm" else 20)
        args.seconds, args.warmup, args.block = 1.5, 1.5, 0.5
    args.rate = args.rate or (10 if args.master == "retailcrm" else 200)
    if args.interleave == "block" and args.seconds < len(STREAMS) * args.block:
        parser.error(f"--seconds must be at least {len(STREAMS)} blocks, one per stream")
    # The backstop: emulator start and capture, the daemon's start, the run, the stops.
    with Deadline(args.warmup + args.seconds + 180, "bench/balance.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    failed = sum(result[s]["errors"] for s in STREAMS) or not result["same_master_calls"]
    return 1 if failed or set(result["exits"].values()) != {0} else 0


if __name__ == "__main__":
    raise SystemExit(main())
