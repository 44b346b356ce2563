"""Orders created in RetailCRM mirrored into 1C by the real daemon, end to end, in one run."""

from __future__ import annotations

import argparse
import json
import math
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import yaml
from balance import free_port  # bench/ is on sys.path when run as a script
from balance_children import cpu_seconds, reap
from guard import Deadline, Stall
from intake_load import start_daemon
from retailcrm_mirror import ask, child_env

from connectors.bitrix.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET
from connectors.retailcrm.ratelimit import DEFAULT_MARGIN as MARGIN

ROOT = Path(__file__).resolve().parent.parent
MANAGER_KEY, UPLOAD_MAX = "sandbox-manager-key-0001", 50  # a RetailCRM user, not the bridge
BRIDGE_KEY, BITRIX_REFRESH = "sandbox-bridge-key-0001", "sandbox-bitrix-refresh-token"
TARGET_SHARE, TARGET_RSS_MB = 0.80, 200.0
# The three emulators in one child process (its own event loop and GIL, so neither the
# daemon's RSS and CPU nor the bench's load generator carry them), on free ports, with the
# key names and credentials the committed config uses. Bitrix is there because the
# committed config names it (routes from RetailCRM to the shop): unseeded, so it reports
# nothing of its own, and on a free port, so a `make run` sandbox on 8093 is never touched.
# It prints its URLs as a JSON line, then a status line per line read on stdin and a last
# one, with every counter, at EOF. It shares the bench's CLOCK_MONOTONIC: the moment 1C
# stored the last order is exact. It counts RetailCRM calls by key, path and status, and 1C
# saves of this run's orders.
EMULATORS = """
import asyncio, json, os, sys, time
from collections import Counter
from connectors.bitrix.emulator import BitrixEmulator
from connectors.onec.emulator import OnecEmulator
from connectors.retailcrm.emulator import RetailcrmEmulator

async def main():
    crm, onec = RetailcrmEmulator(rate_limit=float(sys.argv[1])), OnecEmulator()
    portal = BitrixEmulator(seed=False)
    portal.app.accept_refresh_token(sys.argv[3])
    prefix, api, save = sys.argv[2], crm._api, onec.ledger.save_order
    calls, saves, first = Counter(), Counter(), {}

    async def counted_api(request):
        response = await api(request)
        parts = request.path.removeprefix("/api/v5/").split("/")
        if len(parts) > 1 and parts[1].isdigit():
            parts[1] = "{id}"
        name = crm.api_keys.get(request.headers.get("X-API-KEY", ""), "?")
        calls[f"{name} {request.method} {'/'.join(parts)} {response.status}"] += 1
        return response

    def counted_save(operation_id, external_id, order):
        saved = save(operation_id, external_id, order)
        if json.loads(order).get("number", "").startswith(prefix):
            saves[external_id] += 1
            first.setdefault(external_id, time.monotonic())
        return saved

    crm._api, onec.ledger.save_order = counted_api, counted_save
    await crm.start()
    await onec.start()
    await portal.start()
    print(json.dumps({"crm": crm.url, "onec": onec.url, "bitrix": portal.url}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        out = {"inOnec": len(first), "last": max(first.values(), default=None)}
        out |= {"byKey": crm.requests_by_key, "rateLimited": crm.stats["rateLimited"]}
        if not line:
            out |= {"calls": calls, "saves": Counter(saves.values())}
            out["onecOrders"] = len(onec.ledger.snapshot()["orders"])
        print(json.dumps(out), flush=True)
        if not line:
            break
    await crm.stop()
    await onec.stop()
    await portal.stop()
    os._exit(0)

asyncio.run(main())
"""


def write_config(tmp: Path, port: int, urls: dict[str, str], rate_limit: float) -> Path:
    """The committed config.yaml with its routes and mappings, pointed at the bench's
    emulators (with the sandbox credentials they accept, whatever the environment says),
    store and port; the in-process sandbox off."""
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["store"]["url"] = f"sqlite:///{tmp / 'bench.db'}"
    config["http"] = {"host": "127.0.0.1", "port": port}
    config["log"] = {"level": "warning", "format": "json"}
    config["sandbox"] = {"enabled": False}
    # The sandbox SMS gateway needs the sandbox; no order sends a code, so: nowhere.
    config["bonus"]["sms"]["gateway"] = {"type": "http", "url": "http://127.0.0.1:9/sms"}
    rules = config["bonus"]["rules"]  # read relative to the config: name the committed one
    rules["file"] = str(ROOT / rules["file"])
    onec = config["systems"]["onec"]["options"]
    onec |= {"address": urls["onec"], "username": "bridge", "password": "sandbox"}
    crm = config["systems"]["retailcrm"]["options"]
    crm |= {"url": urls["crm"], "api_key": BRIDGE_KEY, "rate_limit": rate_limit}
    bitrix = config["systems"]["bitrix"]["options"]
    bitrix["url"] = f"{urls['bitrix']}/rest/"
    bitrix["oauth"] = {
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "refresh_token": BITRIX_REFRESH,
        "token_url": f"{urls['bitrix']}/oauth/token/",
    }
    for route in config["mirror"]["routes"]:
        route["mapping"] = str(ROOT / route["mapping"])
    path = tmp / "bench.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def wait_first_walk(db_path: Path, daemon: subprocess.Popen[bytes], seconds: float) -> float:
    """Wait until the RetailCRM orders poller has walked past the seeded history."""
    t0, query = time.monotonic(), "SELECT value FROM cursors WHERE source=? AND name=?"
    while time.monotonic() - t0 < seconds and daemon.poll() is None:
        if db_path.exists():
            with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
                try:
                    row = db.execute(query, ("retailcrm", "orders")).fetchone()
                except sqlite3.OperationalError:  # not migrated yet
                    row = None
            if row and not str(row[0]).startswith("skip:"):
                return time.monotonic() - t0
        time.sleep(0.1)
    raise SystemExit("the RetailCRM poller did not finish its first walk in time")


def new_order(run_id: str, i: int) -> dict[str, Any]:
    """A small site order, as a manager would enter it."""
    items = [
        {"offer": {"externalId": "SKU-100245"}, "quantity": 2, "initialPrice": 89.9},
        {"offer": {"externalId": "SKU-200918"}, "quantity": 1, "initialPrice": 54},
    ]
    order: dict[str, Any] = {"externalId": f"bench-{run_id}-{i}", "number": f"{run_id}-{i}"}
    order |= {"firstName": "Анна", "lastName": "Кузнецова", "phone": f"+7916{i:07d}"}
    return order | {"status": "new", "items": items, "customerComment": "bench"}


def create_orders(url: str, run_id: str, n: int, rate_limit: float) -> dict[str, Any]:
    """Upload ``n`` orders, 50 per call, paced under the manager key's own limit."""
    spacing, sent, retried = (1 + MARGIN) / math.floor(rate_limit), 0, 0
    endpoint, headers = f"{url}/api/v5/orders/upload", {"X-API-KEY": MANAGER_KEY}
    next_at = time.monotonic()
    while sent < n:
        batch = [new_order(run_id, i) for i in range(sent, min(n, sent + UPLOAD_MAX))]
        body = urllib.parse.urlencode({"site": "shop", "orders": json.dumps(batch)}).encode()
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at = time.monotonic() + spacing
        request = urllib.request.Request(endpoint, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 503:
                raise SystemExit(f"upload answered {exc.code}: {exc.read()[:300]!r}") from exc
            retried += 1  # the manager's own window was full: send the same batch again
            continue
        sent += len(batch)
    return {"uploads": math.ceil(n / UPLOAD_MAX), "manager_503": retried}


class RssSampler(threading.Thread):
    """The daemon's VmRSS every ``period`` seconds, from /proc/<pid>/status."""

    def __init__(self, pid: int, period: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.pid, self.period, self.peak_kb, self.samples = pid, period, 0, 0
        self.done = threading.Event()

    def read(self, field: str) -> int:
        """One ``Vm…`` field in kB (0 once the process is gone)."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def run(self) -> None:
        """Sample until stopped."""
        while not self.done.wait(self.period):
            self.peak_kb, self.samples = max(self.peak_kb, self.read("VmRSS")), self.samples + 1


def read_store(db_path: Path) -> dict[str, Any]:
    """Deliveries and events by status, read once the daemon has stopped."""
    with closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        deliveries = "SELECT target, status, attempts > 1, count(*) FROM deliveries GROUP BY 1,2,3"
        events = "SELECT source, entity, status, count(*) FROM events GROUP BY 1, 2, 3"
        return {
            "deliveries": {
                f"{t} {s}{' retried' if x else ''}": c for t, s, x, c in db.execute(deliveries)
            },
            "events": {f"{s} {e} {st}": c for s, e, st, c in db.execute(events)},
        }


def log_events(log_path: Path) -> dict[str, int]:
    """The daemon's log (warning and above) counted by level and event name."""
    found: Counter[str] = Counter()
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            found[f"{record.get('level', '?')} {record.get('event', '?')}"] += 1
        except (ValueError, AttributeError):
            found["(not JSON)"] += 1
    return dict(found.most_common(8))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Emulators, daemon, first walk, orders in, wait until all are in 1C; clean up."""
    run_id, pipe = uuid.uuid4().hex[:8], subprocess.PIPE
    cmd = [sys.executable, "-c", EMULATORS, str(args.rate_limit), f"{run_id}-", BITRIX_REFRESH]
    emu = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdin=pipe, stdout=pipe, text=True)
    tmp_dir = tempfile.TemporaryDirectory(prefix="bridge-mirror-bench-")
    tmp, daemon, r = Path(tmp_dir.name), None, dict[str, Any]()
    try:
        urls, port = ask(emu, ""), free_port()
        config = write_config(tmp, port, urls, args.rate_limit)
        daemon = start_daemon(config, port, tmp / "daemon.log")
        sampler = RssSampler(daemon.pid)
        sampler.start()
        r["first_walk_s"] = wait_first_walk(tmp / "bench.db", daemon, 60)
        before, cpu0 = ask(emu), cpu_seconds(daemon.pid)
        r["t0"] = time.monotonic()
        r["load"] = create_orders(urls["crm"], run_id, args.orders, args.rate_limit)
        r["load_s"] = time.monotonic() - r["t0"]
        now, r["trace"], r["stopped"] = ask(emu), [], None
        stall = Stall(args.stall, "orders in 1C", tmp / "bench.db")
        while now["inOnec"] < args.orders and not r["stopped"]:
            if time.monotonic() - r["t0"] > args.timeout:
                r["stopped"] = stall.why(
                    f"{now['inOnec']} of {args.orders} orders in 1C in {args.timeout:g} s"
                )
                break
            time.sleep(0.25)
            now = ask(emu)
            r["trace"].append((time.monotonic(), now["inOnec"], now["byKey"].get("bridge", 0)))
            r["stopped"] = stall.stuck(now["inOnec"])
        r["cpu_s"], r["wall_s"] = cpu_seconds(daemon.pid) - cpu0, time.monotonic() - r["t0"]
        r["before"], r["now"] = before, now
        r["rss_hwm_kb"] = sampler.read("VmHWM")
        sampler.done.set()
        sampler.join()
        r["rss_peak_kb"], r["rss_samples"] = sampler.peak_kb, sampler.samples
        daemon.send_signal(signal.SIGTERM)
        r["daemon_exit"] = daemon.wait(timeout=30)
        r["store"], r["log"] = read_store(tmp / "bench.db"), log_events(tmp / "daemon.log")
        r["emulator"] = ask(emu, None)
    finally:
        reap(daemon, emu)
        tmp_dir.cleanup()
    return figures(args, r)


def figures(args: argparse.Namespace, r: dict[str, Any]) -> dict[str, Any]:
    """The judged figures from the raw observations."""
    n, now, e = args.orders, r["now"], r["emulator"]
    done = now["inOnec"] >= n
    elapsed = now["last"] - r["t0"] if done else r["wall_s"]
    # The bridge's RetailCRM calls in the measured window, counted at the emulator.
    bridge_calls = now["byKey"].get("bridge", 0) - r["before"]["byKey"].get("bridge", 0)
    bridge_rate = bridge_calls / elapsed
    # The limiter spaces turns 1/floor(rate) apart; its window rule adds each request's
    # answer time per floor(rate) turns (connectors/retailcrm/ratelimit.py).
    limiter = float(math.floor(args.rate_limit))
    # Steady state: from the first poll that found an order in 1C to the end, which leaves
    # out the wait for the first history poll (up to poll_interval) and the first read.
    start = next((t for t in r["trace"] if t[1] > 0), None)
    steady_s = (now["last"] if done else r["t0"] + r["wall_s"]) - start[0] if start else 0.0
    steady = {"seconds": round(steady_s, 2), "orders_per_s": 0.0, "bridge_req_per_s": 0.0}
    if start and steady_s > 0:
        steady["orders_per_s"] = round((now["inOnec"] - start[1]) / steady_s, 2)
        bridge_now = now["byKey"].get("bridge", 0)
        steady["bridge_req_per_s"] = round((bridge_now - start[2]) / steady_s, 2)
    bridge_503 = sum(c for k, c in e["calls"].items() if k.startswith("bridge ") and "503" in k)
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "settings": {"orders": n, "rate_limit": args.rate_limit},
        "first_walk_s": round(r["first_walk_s"], 2),
        "load_s": round(r["load_s"], 2),
        "load": r["load"],
        "in_onec": now["inOnec"],
        "elapsed_s": round(elapsed, 2),
        "all_in_onec": done,
        "orders_per_s": round(now["inOnec"] / elapsed, 2),
        "bridge_calls": bridge_calls,
        "bridge_calls_per_order": round(bridge_calls / max(1, now["inOnec"]), 3),
        "bridge_req_per_s": round(bridge_rate, 2),
        "share_of_limit": round(bridge_rate / args.rate_limit, 3),
        "limiter_ceiling_per_s": round(limiter, 2),
        "steady": steady,
        "steady_share_of_limit": round(steady["bridge_req_per_s"] / args.rate_limit, 3),
        "share_of_limiter": round(bridge_rate / limiter, 3),
        "bridge_503": bridge_503,
        "calls": dict(sorted(e["calls"].items())),
        "onec_saves_per_order": e["saves"],
        "onec_orders_total": e["onecOrders"],
        "daemon_cpu_s": round(r["cpu_s"], 2),
        "daemon_cpu_share": round(r["cpu_s"] / r["wall_s"], 3),
        "rss_peak_mb": round(r["rss_peak_kb"] / 1024, 1),
        "rss_hwm_mb": round(r["rss_hwm_kb"] / 1024, 1),
        "rss_samples": r["rss_samples"],
        "store": r["store"],
        "log": r["log"],
        "daemon_exit": r["daemon_exit"],
        "stopped": r["stopped"],
        "smoke": args.smoke,
        "pass_share": bridge_rate / args.rate_limit >= TARGET_SHARE,
        "pass_no_503": bridge_503 == 0,
        "pass_rss": max(r["rss_peak_kb"], r["rss_hwm_kb"]) / 1024 <= TARGET_RSS_MB,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    mark, s, load, st = {True: "PASS", False: "MISS"}, r["settings"], r["load"], r["steady"]
    speed = dict.fromkeys((True, False), "not judged (--smoke)") if r["smoke"] else mark
    print(
        f"\nRetailCRM -> 1C mirroring ({r['date_utc']} UTC): {s['orders']} orders, RetailCRM"
        f" limit {s['rate_limit']:g} req/s per key (emulator and bridge)\n"
        f"  first walk  {r['first_walk_s']} s after /health\n"
        f"  load        {load['uploads']} uploads of <= {UPLOAD_MAX} as the manager in"
        f" {r['load_s']:.2f} s ({load['manager_503']} manager 503s retried)\n"
        f"  mirrored    {r['in_onec']} of {s['orders']} orders in 1C in {r['elapsed_s']} s ="
        f" {r['orders_per_s']:.2f} orders/s (first upload -> last order saved in 1C)\n"
        f"  RetailCRM   bridge {r['bridge_calls']} calls ({r['bridge_calls_per_order']} per"
        f" order) = {r['bridge_req_per_s']:.2f} req/s: {r['share_of_limit']:.1%} of the"
        f" {s['rate_limit']:g}/s limit ({r['share_of_limiter']:.1%} of its limiter's"
        f" {r['limiter_ceiling_per_s']}/s); 503s caused by the bridge: {r['bridge_503']}\n"
        f"  steady      after the first order reached 1C: {st['orders_per_s']:.2f} orders/s,"
        f" bridge {st['bridge_req_per_s']:.2f} req/s = {r['steady_share_of_limit']:.1%} of"
        f" the limit, over {st['seconds']} s"
    )
    for call, count in r["calls"].items():
        print(f"    {count:>6} x {call}")
    print(
        f"  1C          saves per order {r['onec_saves_per_order']}; orders in 1C"
        f" {r['onec_orders_total']} in all\n"
        f"  daemon      CPU {r['daemon_cpu_s']} s ({r['daemon_cpu_share']:.0%} of a core);"
        f" RSS peak {r['rss_peak_mb']} MB sampled ({r['rss_samples']} samples),"
        f" VmHWM {r['rss_hwm_mb']} MB; exit {r['daemon_exit']}\n"
        f"  store       deliveries {r['store']['deliveries']}\n"
        f"              events {r['store']['events']}\n"
        f"  log         {r['log'] or 'no warnings'}\n"
        f"  target      >= {TARGET_SHARE:.0%} of the RetailCRM limit: {speed[r['pass_share']]}\n"
        f"  target      no 503 caused by the bridge: {mark[r['pass_no_503']]}\n"
        f"  target      RSS <= {TARGET_RSS_MB:.0f} MB: {mark[r['pass_rss']]}"
    )
    if r["stopped"]:
        print(f"  STOPPED     {r['stopped']}")


def main() -> int:
    """Parse options, run, print; exit 1 unless every order reached 1C exactly once and the
    daemon exited cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000, help="orders to create (2000)")
    parser.add_argument(
        "--rate-limit", type=float, default=40.0, help="RetailCRM req/s per key (40)"
    )
    parser.add_argument("--timeout", type=float, default=170, help="give up after (170 s)")
    parser.add_argument(
        "--stall", type=float, default=30, help="give up when no order reaches 1C for (30 s)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 50 orders, short timeouts, same checks, speed target not judged",
    )
    args = parser.parse_args()
    if args.smoke:
        args.orders, args.timeout, args.stall = 50, 30, 15
    if args.orders < 1 or not 1 <= args.rate_limit <= 100:
        parser.error("--orders must be >= 1 and --rate-limit 1..100")
    # The backstop: the first walk (60 s), the run, and the stops (30 s each).
    with Deadline(args.timeout + 180, "bench/mirror.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    once = set(result["onec_saves_per_order"]) <= {"1", 1}
    ok = result["all_in_onec"] and once and result["daemon_exit"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
