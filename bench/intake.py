"""Durable webhook intake on SQLite, judged against the group-commit peer it competes with
(``bench/intake_peer.py``) in the same run; with ``--store postgresql``, SQLite beside one,
two and three instances on one PostgreSQL (``bench/intake_postgres.py``).

The daemon runs as production does: a 1C webhook and a route of 1C orders into RetailCRM,
so every event is stored with its delivery; the target is a blackhole (a delivery waits
there for its timeout, one at a time), so the deliveries pile up as in a burst. Rounds
alternate bridge and peer, so a change in the machine's load falls on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

from guard import Deadline  # bench/ is on sys.path when run as a script
from intake_load import (
    ROOT,
    Blackhole,
    CpuMeter,
    free_port,
    make_bodies,
    send_all,
    start_daemon,
    stop_daemon,
    wait_healthy,
    write_config,
)
from intake_postgres import SERVER, failed_postgres, report_postgres, run_postgres

TARGET_RATE, TARGET_P99_MS = 5000.0, 20.0  # issue 16, at 32 senders, synchronous=FULL
PEER = Path(__file__).resolve().parent / "intake_peer.py"


def rows_in(db: Path) -> tuple[int, int]:
    """(events, deliveries) stored in a SQLite file, read-only."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        events = int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        deliveries = int(conn.execute("SELECT count(*) FROM delivery_events").fetchone()[0])
    return events, deliveries


def start_peer(db: Path, port: int, synchronous: str, log: Path) -> subprocess.Popen[bytes]:
    """The group-commit peer in its own process, answering /health."""
    cmd = [sys.executable, str(PEER), "--db", str(db), "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "--synchronous", synchronous], stdout=out, stderr=out)
    wait_healthy(proc, port, log, "the group-commit peer")
    return proc


def measure(
    kind: str, tmp: Path, n: int, bodies: list[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    """One server (the bridge or the peer) on a fresh file: warm-up, then the measured
    events with the CPU metered; every ack checked against the rows."""
    port, db = free_port(), tmp / f"{kind}-{n}.db"
    if kind == "bridge":
        store = {"url": f"sqlite:///{db}", "synchronous": args.synchronous}
        config = write_config(tmp, port, store, args.hole, f"bridge-{n}")
        proc = start_daemon(config, port, tmp / f"bridge-{n}.log")
    else:
        proc = start_peer(db, port, args.synchronous, tmp / f"peer-{n}.log")
    try:
        warm = asyncio.run(send_all(port, bodies[: args.warmup], args.senders))
        meter = CpuMeter([proc.pid])
        result = asyncio.run(send_all(port, bodies[args.warmup :], args.senders))
        cpu = meter.stop(result["count"])
        events, linked = rows_in(db)
    finally:
        exit_code = stop_daemon(proc)
    acked = warm["count"] + result["count"]
    ok = events == acked and linked == acked
    return result | {
        "warmup_failures": warm["failures"],
        "durability": {"acked": acked, "events": events, "deliveries": linked, "ok": ok},
        "exit": exit_code,
        "cpu": cpu,
    }


def floor_commits(path: Path, rows: int, synchronous: str) -> dict[str, Any]:
    """For reference: one INSERT + COMMIT at a time, no server: what the disk allows."""
    from bridge.store.migrate import migrate_sqlite

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
    migrate_sqlite(conn)
    t0 = time.perf_counter()
    for i in range(rows):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "INSERT INTO events (source, source_key, entity, entity_id, action, payload, status,"
            " received_at, updated_at) VALUES ('onec', ?, 'order', ?, 'changed', '{}', 'done',"
            " 0, 0)",
            (f"floor-{i}", str(i)),
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return {"per_second": round(rows / elapsed, 1)}


def run(args: argparse.Namespace) -> dict[str, Any]:
    """``--rounds`` rounds of bridge and peer, alternating who goes first."""
    sys.path.insert(0, str(ROOT))
    runs: dict[str, list[dict[str, Any]]] = {"bridge": [], "peer": []}
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
        tmp = Path(name)
        for n in range(args.rounds):
            order = ("bridge", "peer") if n % 2 == 0 else ("peer", "bridge")
            for kind in order:
                _, bodies = make_bodies(args.warmup + args.events)
                runs[kind].append(measure(kind, tmp, n, bodies, args))
        disk = floor_commits(tmp / "floor.db", min(args.events, 5000), args.synchronous)
    rates = {k: [r["per_second"] for r in v] for k, v in runs.items()}
    ratios = [b / p for b, p in zip(rates["bridge"], rates["peer"], strict=True)]
    bridge_p99 = statistics.median(r["p99_ms"] for r in runs["bridge"])
    return {
        "settings": {
            k: getattr(args, k) for k in ("events", "senders", "warmup", "synchronous", "rounds")
        }
        | {"cores": os.cpu_count()},
        "runs": runs,
        "floor_commits": disk,
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "pass_rate": statistics.median(rates["bridge"]) >= TARGET_RATE,
        "pass_p99": bridge_p99 <= TARGET_P99_MS,
        "smoke": args.smoke,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    print(f"\nbridge intake (SQLite): {r['settings']}")
    for kind, label in (("bridge", "bridge"), ("peer", "group-commit peer")):
        for n, f in enumerate(r["runs"][kind]):
            d, cpu = f["durability"], f["cpu"]
            print(
                f"  {label:<17} #{n} {f['per_second']:>8.1f} ev/s  p50 {f['p50_ms']:>6.2f} ms"
                f"  p99 {f['p99_ms']:>6.2f} ms  max {f['max_ms']:>7.2f} ms  failures"
                f" {f['failures'] + f['warmup_failures']}  exit {f['exit']}"
            )
            for reason, count in f.get("errors", {}).items():
                print(f"      {count} x {reason}")
            print(
                f"      {d['events']} events, {d['deliveries']} delivery links for {d['acked']}"
                f" acks: {'OK' if d['ok'] else 'MISMATCH'}; server {cpu['servers_cores']:.2f}"
                f" cores ({cpu['servers_ms_per_event']:.3f} ms CPU per event), senders"
                f" {cpu['senders_cores']:.2f}, machine {cpu['machine_busy_cores']:.2f} of"
                f" {r['settings']['cores']} busy, load {cpu['load_1min']:.2f}"
            )
    print(f"  floor commits     {r['floor_commits']['per_second']:>8.1f} commits/s (reference)")
    print(f"  ratio             bridge / peer = {r['ratio']:.3f} (median of {r['ratios']})")
    mark = {True: "PASS", False: "MISS"}
    if r["smoke"]:
        mark = dict.fromkeys((True, False), "not judged (--smoke)")
    print(f"  target            >= {TARGET_RATE:.0f} events/s: {mark[r['pass_rate']]}")
    print(f"  target            p99 <= {TARGET_P99_MS:.0f} ms: {mark[r['pass_p99']]}")


def failed(r: dict[str, Any]) -> bool:
    """A failed request, an ack without its rows, or a server that did not exit 0."""
    return any(
        f["failures"] or f["warmup_failures"] or not f["durability"]["ok"] or f["exit"] != 0
        for runs in r["runs"].values()
        for f in runs
    )


def main() -> int:
    """Parse options, run, print; exit 1 if a request failed, an ack has no row or a
    server did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="measured events (20000)")
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders (32)")
    parser.add_argument("--warmup", type=int, default=1000, help="unmeasured warm-up events")
    parser.add_argument("--rounds", type=int, default=2, help="bridge/peer rounds (2)")
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--postgres", default=SERVER, help=f"for --store postgresql ({SERVER})")
    parser.add_argument("--timeout", type=float, default=0, help="give up after (300 s; pg 900)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--smoke", action="store_true", help="a few seconds, targets not judged")
    args = parser.parse_args()
    compare = args.store == "postgresql"
    if args.smoke:  # the whole path, a few seconds: 500 events, no verdict
        args.events, args.warmup, args.rounds = 500, 50, 1
        args.timeout = args.timeout or (120 if compare else 60)
    args.timeout = args.timeout or (900 if compare else 300)
    if args.events < 1 or args.senders < 1 or args.rounds < 1:
        parser.error("--events, --senders and --rounds must be at least 1")
    args.hole = Blackhole()
    try:
        with Deadline(args.timeout, f"bench/intake.py --store {args.store}"):
            result = run_postgres(args) if compare else run(args)
    finally:
        args.hole.close()
    (report_postgres if compare else report)(result)
    if args.json:
        print(json.dumps(result, indent=2))
    return 1 if (failed_postgres if compare else failed)(result) else 0


if __name__ == "__main__":
    raise SystemExit(main())
