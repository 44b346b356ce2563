"""A backlog of order writes mirrored into the rate-limited RetailCRM emulator, in one run."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from balance_children import cpu_seconds, reap  # bench/ is on sys.path when run as a script
from guard import Deadline, Stall
from intake_load import start_daemon

ROOT = Path(__file__).resolve().parent.parent
TOKEN, KEY = "bench-shop-webhook-token-0001", "sandbox-bridge-key-0001"
UPLOAD_MAX, TARGET = 50, 0.95  # orders per /upload; the share of the ceiling (issue 16)
# The emulator's own process: its URL as a JSON line, then a status line per line read on
# stdin and a last one at EOF, SIGTERM or SIGINT. It shares the bench's CLOCK_MONOTONIC,
# so the moment the last order was stored is exact, not rounded to the polling period. It
# counts calls by key, path and status, upload sizes and upload times by wrapping methods.
EMULATOR = """
import asyncio, json, os, signal, sys, time
from collections import Counter
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.emulator.history import ORDER

async def main():
    crm, prefix = RetailcrmEmulator(rate_limit=float(sys.argv[1])), sys.argv[2]
    state, api, insert, upload = crm.state, crm._api, crm.state.insert, crm.state.upload
    calls, sizes, served, starts = Counter(), Counter(), [], []
    seen = {"first": None, "last": None, "stored": 0}

    async def counted_api(request):
        t0, parts = time.monotonic(), request.path.removeprefix("/api/v5/").split("/")
        response = await api(request)
        if len(parts) > 1 and parts[1] not in ("upload", "create", "history"):
            parts[1] = "{ref}"
        if parts[-1] == "upload" and response.status == 200:
            served.append(round((time.monotonic() - t0) * 1000, 1))
            starts.append(t0)
        name = crm.api_keys.get(request.headers.get("X-API-KEY", ""), "?")
        calls[f"{name} {request.method} {'/'.join(parts)} {response.status}"] += 1
        return response

    def counted_insert(kind, *args):
        entity = insert(kind, *args)
        if kind is ORDER and str(entity.get("externalId", "")).startswith(prefix):
            seen["first"], seen["last"] = seen["first"] or time.monotonic(), time.monotonic()
            seen["stored"] += 1
        return entity

    def counted_upload(kind, *args):
        status, body = upload(kind, *args)
        sizes[len(body.get(f"uploaded{kind.plural.capitalize()}") or [])] += 1
        return status, body

    crm._api, state.insert, state.upload = counted_api, counted_insert, counted_upload
    await crm.start()
    print(json.dumps({"url": crm.url}), flush=True)
    loop, final, stop = asyncio.get_running_loop(), False, asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    line, stopped = loop.run_in_executor(None, sys.stdin.readline), loop.create_task(stop.wait())
    while not final:
        await asyncio.wait([line, stopped], return_when="FIRST_COMPLETED")
        final = stop.is_set() or not line.result()
        line = line if final else loop.run_in_executor(None, sys.stdin.readline)
        out = seen | {k: crm.stats[k] for k in ("requests", "rateLimited")}
        if final:
            ids = (str(o.get("externalId")) for o in state.entities[ORDER.name].values())
            out |= {"byKey": crm.requests_by_key, "calls": calls, "uploadSizes": sizes}
            out |= {"served": served, "starts": starts}
            out["ids"] = Counter(i for i in ids if i.startswith(prefix))
        print(json.dumps(out), flush=True)
    await crm.stop()
    os._exit(0)  # a readline may still block in its thread

asyncio.run(main())
"""

# The shop's 1C, in a process of its own (its reads must not stall the RetailCRM emulator's
# loop, whose request meter is judged): the run's orders saved under the ids the webhooks
# name, since the bridge re-reads each change of a 1C order (GetOrder) before delivering
# it. It prints its HTTP-service root, then a status line per line read on stdin.
SHOP = """
import asyncio, json, os, sys
from connectors.onec.emulator import OnecEmulator

async def main():
    onec, n, prefix = OnecEmulator(), int(sys.argv[1]), sys.argv[2]
    for i in range(n):
        order = {"number": f"{prefix}{i}", "total": "233.80", "items": []}
        onec.ledger.save_order(f"seed-{i}", f"{prefix}{i}", json.dumps(order))
    reads, read = [0], onec.ledger.get_order

    def counted_read(id):
        reads[0] += 1
        return read(id)

    onec.ledger.get_order = counted_read
    await onec.start()
    print(json.dumps({"url": onec.hs_url}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        print(json.dumps({"reads": reads[0]}), flush=True)
        if not line:
            break
    await onec.stop()
    os._exit(0)

asyncio.run(main())
"""


def child_env() -> dict[str, str]:
    """The environment with the repository on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def ask(proc: subprocess.Popen[str], say: str | None = "\n") -> dict[str, Any]:
    """Write ``say`` to the emulator (None: close its stdin, its signal to stop); its answer."""
    assert proc.stdin is not None
    assert proc.stdout is not None
    if say is None:
        proc.stdin.close()
    elif say:
        proc.stdin.write(say)
        proc.stdin.flush()
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise SystemExit("the emulator did not answer within 30 s")
    return dict(json.loads(line))


def write_config(tmp: Path, port: int, urls: dict[str, str], args: argparse.Namespace) -> Path:
    """Webhooks into ``shop`` (type onec, at the 1C child: read, never written), its orders
    routed to ``crm`` without a mapping file (the changes carry RetailCRM's shape)."""
    shop = {
        "type": "onec",
        "webhook": {"auth": "bearer", "token": TOKEN},
        "options": {
            "transport": "http",
            "url": urls["shop"],
            "username": "bridge",
            "password": "sandbox",
            "poll_interval": 0,
        },
    }
    crm = {
        "type": "retailcrm",
        "delivery": {"concurrency": args.concurrency},
        "options": {
            "url": urls["crm"],
            "api_key": KEY,
            "poll_interval": 0,
            "rate_limit": args.rate_limit,
        },
    }
    config = {
        "store": {"url": f"sqlite:///{tmp / 'bench.db'}", "synchronous": "full"},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "systems": {"shop": shop, "crm": crm},
        "mirror": {"routes": [{"source": "shop", "entity": "order", "targets": ["crm"]}]},
    }
    path = tmp / "bench.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def order_event(run_id: str, i: int) -> dict[str, Any]:
    """One generic JSON event carrying a small RetailCRM order."""
    items = [
        {"offer": {"externalId": "SKU-100245"}, "quantity": 2, "initialPrice": 89.9},
        {"offer": {"externalId": "SKU-200918"}, "quantity": 1, "initialPrice": 54},
    ]
    order: dict[str, Any] = {"externalId": f"{run_id}-{i}", "firstName": "Анна"}
    order |= {"lastName": "Кузнецова", "phone": f"+7916{i:07d}", "status": "new", "items": items}
    return {
        "event_id": order["externalId"],
        "entity": "order",
        "id": order["externalId"],  # the external id the shop's 1C holds it under
        "data": {"document": order},
    }


def post_backlog(port: int, run_id: str, n: int, batch: int) -> tuple[float, float]:
    """Post ``n`` events in batches, one after another; monotonic times of first/last 202."""
    url, acks = f"http://127.0.0.1:{port}/hooks/shop", []
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    for start in range(0, n, batch):
        events = [order_event(run_id, i) for i in range(start, min(n, start + batch))]
        body = json.dumps({"events": events}).encode()
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=60) as resp:
            if resp.status != 202:
                raise SystemExit(f"intake answered {resp.status}: {resp.read()[:200]!r}")
        acks.append(time.monotonic())
    return acks[0], acks[-1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Emulators, bridge, backlog, wait until every order is stored; clean up either way."""
    run_id, pipe, env = uuid.uuid4().hex[:8], subprocess.PIPE, child_env()
    cmd = [sys.executable, "-c", EMULATOR, str(args.rate_limit), f"{run_id}-"]
    emu = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=pipe, stdout=pipe, text=True)
    cmd = [sys.executable, "-c", SHOP, str(args.orders), f"{run_id}-"]
    shop = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=pipe, stdout=pipe, text=True)
    tmp_dir = tempfile.TemporaryDirectory(prefix="bridge-crm-bench-")
    tmp, daemon, r = Path(tmp_dir.name), None, dict[str, Any]()
    try:
        urls = {"crm": ask(emu, "")["url"], "shop": ask(shop, "")["url"]}  # once they listen
        with socket.socket() as sock:  # a free port: bind to 0, read it, let it go
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        daemon = start_daemon(write_config(tmp, port, urls, args), port, tmp / "log")
        cpu0 = {n: cpu_seconds(p.pid) for n, p in (("daemon", daemon), ("crm", emu), ("1c", shop))}
        r["first_ack"], r["last_ack"] = post_backlog(port, run_id, args.orders, args.batch)
        deadline = time.monotonic() + args.timeout
        stall = Stall(args.stall, "orders stored in RetailCRM", tmp / "bench.db")
        r["stopped"] = None
        while (stored := ask(emu)["stored"]) < args.orders:
            if time.monotonic() > deadline:
                r["stopped"] = stall.why(f"{stored} of {args.orders} orders in {args.timeout:g} s")
            r["stopped"] = r["stopped"] or stall.stuck(stored)
            if r["stopped"]:
                break
            time.sleep(0.2)
        procs = (("daemon", daemon), ("crm", emu), ("1c", shop))
        r["cpu_s"] = {n: round(cpu_seconds(p.pid) - cpu0[n], 2) for n, p in procs}
        r["load"] = os.getloadavg()
        daemon.send_signal(signal.SIGTERM)
        r["daemon_exit"] = daemon.wait(timeout=30)
        with closing(sqlite3.connect(f"file:{tmp / 'bench.db'}?mode=ro", uri=True)) as db:
            query = "SELECT status, attempts > 1, count(*) FROM deliveries GROUP BY 1, 2"
            r["deliveries"] = {f"{s}{' retried' if x else ''}": c for s, x, c in db.execute(query)}
        r["emulator"], r["shop_reads"] = ask(emu, None), ask(shop, None)["reads"]
    finally:
        reap(daemon, emu, shop)
        tmp_dir.cleanup()
    return figures(args, r)


def median(values: list[float]) -> float | None:
    """The upper median, or None for no values."""
    return sorted(values)[len(values) // 2] if values else None


def figures(args: argparse.Namespace, r: dict[str, Any]) -> dict[str, Any]:
    """The judged figures from the raw observations."""
    n, e, t0 = args.orders, r["emulator"], r["first_ack"]
    elapsed = e["last"] - t0 if e["stored"] >= n else None  # None: not all stored in time
    rate = n / elapsed if elapsed else 0.0
    ceiling = args.rate_limit * UPLOAD_MAX
    served, tenth = e["served"], max(1, len(e["served"]) // 10)
    upload_ms = {
        "first_tenth_p50": median(served[:tenth]),
        "last_tenth_p50": median(served[-tenth:]),
        "max": max(served, default=None),
        "total_s": round(sum(served) / 1000, 2),
    }
    starts = sorted(e["starts"])
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    spacing = 1 / math.floor(args.rate_limit)
    best = (math.ceil(n / UPLOAD_MAX) - 1) * spacing  # every upload evenly at the limit
    span = starts[-1] - starts[0] if len(starts) > 1 else None
    starved = sum(g - spacing for g in gaps if g > 0.2)
    upload_gaps = {
        "p50_ms": round(1000 * (median(gaps) or 0), 1),
        "max_ms": round(1000 * max(gaps, default=0), 1),
        # Time between uploads beyond the limiter's spacing: its window rule (a second
        # after an answer, every n-th turn) and any wait for the bridge to have one ready.
        "idle_beyond_spacing_s": round(sum(max(0.0, g - spacing) for g in gaps), 2),
        "over_0.2s": sum(1 for g in gaps if g > 0.2),
        "over_0.2s_beyond_spacing_s": round(sum(g - spacing for g in gaps if g > 0.2), 2),
        "all_ms": [round(1000 * g, 1) for g in gaps],  # in order, for --json readers
    }
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "upload_gaps": upload_gaps,
        # CPU seconds from the first 202 to the last order stored, by process.
        "cpu_s": r["cpu_s"],
        "load_1m": round(r["load"][0], 2),
        "settings": {k: getattr(args, k) for k in ("orders", "rate_limit", "concurrency", "batch")},
        "intake_s": round(r["last_ack"] - t0, 3),
        "first_stored_after_s": e["first"] and round(e["first"] - t0, 3),
        "elapsed_s": elapsed and round(elapsed, 3),
        "orders_per_s": round(rate, 1),
        "ceiling_per_s": ceiling,
        # The fastest the limit allows: ceil(N / 50) uploads, evenly 1/rate apart.
        "best_s": round(best, 3),
        "ratio": round(rate / ceiling, 3),
        # The first upload's start to the last's against the best: the key's use while
        # the bridge used it (the limiter's pace and any wait for an upload to be ready).
        "uploads_span_s": span and round(span, 3),
        "uploads_ratio": round(best / span, 3) if span else None,
        # The same with the gaps over 0.2 s left out: the limiter's own pace when an upload
        # was ready (a gap that long is the bridge preparing none, or an answer > 0.1 s).
        "uploads_ratio_fed": round(best / (span - starved), 3) if span else None,
        "rate_limited": e["rateLimited"],
        "bridge_requests": int(e["byKey"].get("bridge", 0)),
        "emulator_requests": e["requests"],
        "upload_sizes": e["uploadSizes"],
        "upload_ms": upload_ms,
        "calls": dict(sorted(e["calls"].items())),
        "missing": n - len(e["ids"]),
        "duplicated": sum(c - 1 for c in e["ids"].values()),
        "deliveries": r["deliveries"],
        "shop_reads": r["shop_reads"],
        "daemon_exit": r["daemon_exit"],
        "stopped": r["stopped"],
        "pass_rate": rate / ceiling >= TARGET,
        "pass_no_503": e["rateLimited"] == 0,
        "smoke": args.smoke,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    mark, s, up, g = {True: "PASS", False: "MISS"}, r["settings"], r["upload_ms"], r["upload_gaps"]
    speed = dict.fromkeys((True, False), "not judged (--smoke)") if r["smoke"] else mark
    print(
        f"\nRetailCRM mirroring ({r['date_utc']} UTC): {s['orders']} orders, emulator at"
        f" {s['rate_limit']:g} req/s per key, delivery concurrency {s['concurrency']}\n"
        f"  intake      {s['orders']} events, {s['batch']} per POST, in {r['intake_s']:.2f} s;"
        f" first order stored {r['first_stored_after_s']} s after the first 202\n"
        f"  mirrored    {s['orders'] - r['missing']} orders in {r['elapsed_s']} s ="
        f" {r['orders_per_s']:.1f} orders/s (first 202 -> last order stored;"
        f" at the ceiling {r['best_s']:.2f} s)\n"
        f"  ceiling     {r['ceiling_per_s']:.0f}/s (rate x {UPLOAD_MAX}): ratio {r['ratio']:.3f}"
        f" (judged)\n"
        f"  uploads     first to last start {r['uploads_span_s']} s against {r['best_s']:.2f} s"
        f" evenly at the limit: {r['uploads_ratio']} of the ceiling while in use,"
        f" {r['uploads_ratio_fed']} leaving out gaps over 0.2 s; gaps p50 {g['p50_ms']} ms,"
        f" max {g['max_ms']} ms, {g['over_0.2s']} over 0.2 s ({g['over_0.2s_beyond_spacing_s']}"
        f" s beyond the spacing), {g['idle_beyond_spacing_s']} s beyond it in all\n"
        f"  machine     load {r['load_1m']} (1 min, 2 cores); CPU s {r['cpu_s']} (the 2 cores"
        f" are shared with whatever else runs)\n"
        f"  requests    bridge {r['bridge_requests']} for {s['orders']} orders, emulator total"
        f" {r['emulator_requests']}, 503s {r['rate_limited']}; upload sizes {r['upload_sizes']}"
    )
    for call, count in r["calls"].items():
        print(f"    {count:>6} x {call}")
    print(
        f"  upload time in the emulator: p50 {up['first_tenth_p50']} ms in the first tenth,"
        f" {up['last_tenth_p50']} ms in the last, max {up['max']} ms, {up['total_s']} s in all\n"
        f"  emulator    missing {r['missing']}, duplicated {r['duplicated']};"
        f" deliveries {r['deliveries']}; shop's 1C read {r['shop_reads']} times;"
        f" daemon exit {r['daemon_exit']}\n"
        f"  target      >= {TARGET:.0%} of the ceiling: {speed[r['pass_rate']]}\n"
        f"  target      no 503 from the emulator: {mark[r['pass_no_503']]}"
    )
    if r["stopped"]:
        print(f"  STOPPED     {r['stopped']}")


def main() -> int:
    """Parse options, run, print; exit 1 if an order is missing or duplicated, the run
    stopped early or the daemon did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=10000, help="backlog of orders (10000)")
    parser.add_argument("--rate-limit", type=float, default=10.0, help="emulator req/s (10)")
    parser.add_argument("--concurrency", type=int, default=4, help="delivery concurrency (4)")
    parser.add_argument("--batch", type=int, default=500, help="events per intake POST (500)")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")
    parser.add_argument(
        "--stall", type=float, default=30, help="give up when no order is stored for (30 s)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 200 orders, short timeouts, same checks, targets not judged",
    )
    args = parser.parse_args()
    if args.smoke:
        args.orders, args.timeout, args.stall = 200, 20, 10
    if args.orders < 1 or not 1 <= args.batch <= 500 or args.rate_limit < 1:
        parser.error("--orders must be >= 1, --batch 1..500 and --rate-limit >= 1")
    with Deadline(args.timeout + 120, "bench/retailcrm_mirror.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    bad = result["missing"] or result["duplicated"] or result["stopped"]
    return 1 if bad or result["daemon_exit"] != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
