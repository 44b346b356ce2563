"""Durable webhook intake on SQLite against the floor of plain SQLite commits, in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
from guard import Deadline  # bench/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-onec-webhook-token-0001"
TARGET_RATE, TARGET_P99_MS = 2000.0, 50.0
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
# The floor writes the bridge's own ``events`` table, created from its migration files.
MIGRATIONS = ROOT / "bridge" / "store" / "migrations" / "sqlite"
FLOOR_INSERT = (
    "INSERT INTO events (source, source_key, entity, entity_id, action, payload, status,"
    " reason, received_at, updated_at)"
    " VALUES ('onec', ?, 'order', ?, 'changed', ?, 'done', 'no route', ?, ?)"
)
# One order change, about 300 bytes of JSON in ``data``; ``%(i)d`` makes each one distinct.
ORDER = (
    '{"number":"A-%(i)08d","status":"confirmed","customer":{"id":"c-%(i)d","phone":'
    '"+79161234567","card":"77%(i)010d"},"items":[{"sku":"SKU-100245","name":"Milk 3.2%% 1l",'
    '"qty":2,"price":"89.90"},{"sku":"SKU-200918","name":"Rye bread","qty":1,"price":"54.00"}],'
    '"total":"233.80","store":"MSK-014","updated_at":"2025-01-15T10:22:31+03:00"}'
)
BODY = '{"event_id":"%(eid)s","entity":"order","id":"%(i)d","action":"changed","data":%(data)s}'


def summary(elapsed: float, lat: list[float], failures: int) -> dict[str, Any]:
    """Rate and nearest-rank latency percentiles (ms); only successes count towards the rate."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    ms = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 2) for k, q in PCTS}
    rate = {"count": n, "seconds": round(elapsed, 3), "per_second": round(n / elapsed, 1)}
    return rate | ms | {"failures": failures}


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, let go): a call there is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp: Path, port: int, args: argparse.Namespace) -> Path:
    """An intake-only config: one onec webhook, no routes (JSON is valid YAML)."""
    system: dict[str, Any] = {
        "type": args.connector_type,
        "webhook": {"auth": "bearer", "token": TOKEN},
    }
    nowhere = f"http://127.0.0.1:{closed_port()}"
    if args.connector_type == "recorder":  # the test connector, see bench/README.md
        system["options"] = {"url": nowhere}
    elif args.connector_type == "onec":
        # The options 1C needs (an endpoint): the reference WSDL from the repository and an
        # endpoint nobody listens at, polling off. Intake alone never calls 1C (no routes),
        # and the WSDL is read from the file, so the daemon starts without any network.
        wsdl = ROOT / "connectors" / "onec" / "wsdl" / "BridgeLoyalty.wsdl"
        where = {"wsdl": str(wsdl), "address": f"{nowhere}/base/ws/BridgeLoyalty.1cws"}
        system["options"] = where | {"poll_interval": 0}
    config = {
        "store": {"url": f"sqlite:///{tmp / 'bench.db'}", "synchronous": args.synchronous},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "systems": {"onec": system},
        "mirror": {"routes": []},
    }
    path = tmp / "bench.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_daemon(config: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``python -m bridge serve`` and wait until ``GET /health`` answers 200."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "bridge", "--config", str(config), "serve"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    sys.stderr.write(log_path.read_text(errors="replace"))
    raise SystemExit(f"the bridge did not answer /health within 30 s (exit {proc.returncode})")


async def send_all(port: int, bodies: list[bytes], senders: int) -> dict[str, Any]:
    """Post every body with ``senders`` concurrent senders; time each until its 202 is read."""
    url = f"http://127.0.0.1:{port}/hooks/onec"
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    lat: list[float] = []
    errors: Counter[str] = Counter()
    todo = iter(bodies)

    async def sender(session: aiohttp.ClientSession) -> None:
        for body in todo:
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    raw = await resp.read()
                t1 = time.perf_counter()
                if resp.status != 202:
                    errors[f"HTTP {resp.status}: {raw[:120].decode(errors='replace')}"] += 1
                elif json.loads(raw).get("duplicate") is not False:
                    errors["202 without duplicate=false"] += 1
                else:
                    lat.append(t1 - t0)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors[f"{type(exc).__name__}: {exc}"[:160]] += 1

    connector = aiohttp.TCPConnector(limit=senders)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(session) for _ in range(senders)))
        result = summary(time.perf_counter() - t0, lat, errors.total())
    return result | {"errors": dict(errors.most_common(5))}


def floor(path: Path, rows: int, synchronous: str, threads: int) -> dict[str, Any]:
    """Plain INSERT + COMMIT per row; ``threads`` connections, one thread each."""
    setup = sqlite3.connect(path)
    setup.executescript("\n".join(f.read_text() for f in sorted(MIGRATIONS.glob("*.sql"))))
    setup.close()
    payload = ORDER % {"i": 0}
    lat: list[float] = []
    failures: list[str] = []
    todo, lock = iter(range(rows)), threading.Lock()

    def work() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA busy_timeout=5000")  # the bridge's default busy_timeout_ms
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(FLOOR_INSERT, (f"floor-{i}", str(i), payload, t0, t0))
                conn.execute("COMMIT")
                lat.append(time.perf_counter() - t0)
            except sqlite3.OperationalError as exc:  # "database is locked" past busy_timeout
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                failures.append(str(exc))
        conn.close()

    workers = [threading.Thread(target=work) for _ in range(threads)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return summary(time.perf_counter() - t0, lat, len(failures))


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The bridge first, then the floors, in one temp dir removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
        tmp = Path(name)
        with socket.socket() as sock:  # a free port: bind to 0, read it, let it go
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        run_id = uuid.uuid4().hex[:8]
        bodies = [
            (BODY % {"eid": f"{run_id}-{i}", "i": i, "data": ORDER % {"i": i}}).encode()
            for i in range(args.warmup + args.events)
        ]
        proc = start_daemon(write_config(tmp, port, args), port, tmp / "daemon.log")
        try:
            warm = asyncio.run(send_all(port, bodies[: args.warmup], args.senders))
            bridge = asyncio.run(send_all(port, bodies[args.warmup :], args.senders))
            with closing(sqlite3.connect(f"file:{tmp / 'bench.db'}?mode=ro", uri=True)) as db:
                rows = int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                exit_code: int | None = proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                exit_code = None
        rows_floor = args.floor_events or args.events
        seq = floor(tmp / "floor_seq.db", rows_floor, args.synchronous, 1)
        thr = floor(tmp / "floor_thr.db", rows_floor, args.synchronous, args.senders)
    acked = warm["count"] + bridge["count"]
    return {
        "settings": {k: getattr(args, k) for k in ("events", "senders", "synchronous")}
        | {"connector_type": args.connector_type, "floor_events": rows_floor},
        "bridge": bridge,
        "warmup_failures": warm["failures"],
        "durability": {"acked": acked, "rows": rows, "ok": acked == rows},
        "daemon_exit": exit_code,
        "floor_sequential": seq,
        "floor_threads": thr,
        "ratio": round(bridge["per_second"] / seq["per_second"], 3),
        "ratio_threads": round(bridge["per_second"] / thr["per_second"], 3),
        "pass_rate": bridge["per_second"] >= TARGET_RATE,
        "pass_p99": bridge["p99_ms"] <= TARGET_P99_MS,
        "smoke": args.smoke,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    mark, d = {True: "PASS", False: "MISS"}, r["durability"]
    print(f"\nbridge intake: {r['settings']}")
    for label, key, unit in (
        ("bridge", "bridge", "events/s"),
        ("floor seq", "floor_sequential", "rows/s"),
        (f"floor {r['settings']['senders']} thr", "floor_threads", "rows/s"),
    ):
        f = r[key]
        print(
            f"  {label:<13} {f['per_second']:>8.1f} {unit:<8}  p50 {f['p50_ms']:>7.2f} ms"
            f"  p99 {f['p99_ms']:>7.2f} ms  max {f['max_ms']:>8.2f} ms  failures {f['failures']}"
        )
        for reason, n in f.get("errors", {}).items():
            print(f"      {n} x {reason}")
    print(
        f"  durability    {d['rows']} rows in events for {d['acked']} acks (warm-up included):"
        f" {'OK' if d['ok'] else 'MISMATCH'}; warm-up failures {r['warmup_failures']};"
        f" daemon exit {r['daemon_exit']}"
    )
    print(f"  ratio         bridge / floor seq = {r['ratio']:.3f}  (judged)")
    print(f"                bridge / floor thr = {r['ratio_threads']:.3f}  (for reference)")
    if r["smoke"]:
        mark = dict.fromkeys((True, False), "not judged (--smoke)")
    print(f"  target        >= {TARGET_RATE:.0f} events/s: {mark[r['pass_rate']]}")
    print(f"  target        p99 <= {TARGET_P99_MS:.0f} ms: {mark[r['pass_p99']]}")


def main() -> int:
    """Parse options, run, print; exit 1 if a request failed, an ack has no row or the
    daemon did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="measured events (20000)")
    parser.add_argument("--senders", type=int, default=50, help="concurrent senders (50)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured warm-up events")
    parser.add_argument("--floor-events", type=int, default=0, help="floor rows (--events)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--connector-type", default="onec", help="type: of system onec")
    parser.add_argument("--timeout", type=float, default=300, help="give up after (300 s)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 500 events, targets not judged"
    )
    args = parser.parse_args()
    if args.smoke:  # the whole path, a few seconds: 500 events, 50 senders, no verdict
        args.events, args.warmup, args.floor_events, args.timeout = 500, 50, 500, 60
    if args.events < 1 or args.senders < 1:
        parser.error("--events and --senders must be at least 1")
    with Deadline(args.timeout, "bench/intake.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    failed = result["bridge"]["failures"] + result["warmup_failures"]
    return 1 if failed or not result["durability"]["ok"] or result["daemon_exit"] != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
