"""Intake beside retention on SQLite: a 1,000,000-event log pruned to the last day against an
empty log, in the same run (issue 15: within 10 %, ratio >= 0.90)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sqlite3
import statistics
import subprocess
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

from guard import Deadline  # bench/ is on sys.path when run as a script
from intake_load import BODY, ORDER, ROOT, TOKEN, free_port, send_all, start_daemon

from bridge.store.migrate import migrate_sqlite

TARGET_RATIO = 0.90
DAY = 86_400.0
SPAN_DAYS = 30  # the big log's events were done over the last 30 days: 29/30 are prunable

# The set-up writes the log straight into the bridge's own schema with SQL (a recursive
# counter, one statement per table): a million events through HTTP would take ~10 min and
# measure nothing this bench is about. Each event is done, with one delivery, its link and
# one attempt in history: what a routed, delivered change leaves in the log.
BUILD = [
    """
    WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :count)
    INSERT INTO events (id, source, source_key, entity, entity_id, action, payload, status,
                        reason, received_at, updated_at)
    SELECT i, 'onec', 'old-' || i, 'order', 'o' || i, 'changed', :payload, 'done', NULL,
           :start + i * :step, :start + i * :step + 1
    FROM n
    """,
    """
    INSERT INTO deliveries (id, target, source, entity, entity_id, entity_key, status,
                            attempts, due_at, created_at, updated_at)
    SELECT id, 'crm', 'onec', 'order', entity_id, 'onec/order/' || entity_id, 'done', 1,
           received_at, received_at, updated_at
    FROM events
    """,
    "INSERT INTO delivery_events (delivery_id, event_id) SELECT id, id FROM events",
    """
    INSERT INTO history (at, kind, delivery_id, event_id, attempt, outcome, duration_ms, actor)
    SELECT updated_at, 'attempt', id, NULL, 1, 'done', 12.5, 'bench' FROM events
    """,
]


def build_log(path: Path, count: int, now: float) -> dict[str, Any]:
    """A log of ``count`` done events spread over the last SPAN_DAYS days."""
    t0 = time.perf_counter()
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate_sqlite(conn)
        conn.execute("PRAGMA journal_mode=OFF")  # set-up only: nothing to recover from
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-262144")
        conn.execute("BEGIN")
        start = now - SPAN_DAYS * DAY
        values = {"count": count, "payload": ORDER % {"i": 0}, "start": start}
        values["step"] = SPAN_DAYS * DAY / count
        for statement in BUILD:
            conn.execute(statement, {k: v for k, v in values.items() if f":{k}" in statement})
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")
        prunable = conn.execute(
            "SELECT count(*) FROM events WHERE status = 'done' AND updated_at < ?",
            (now - DAY,),
        ).fetchone()[0]
    return {
        "events": count,
        "prunable": int(prunable),
        "bytes": path.stat().st_size,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def write_config(tmp: Path, name: str, port: int, args: argparse.Namespace) -> Path:
    """bench/intake.py's intake-only config (one onec webhook, no routes) on ``name``.db,
    with retention on: done events older than a day go, in batches of ``--batch``."""
    wsdl = ROOT / "connectors" / "onec" / "wsdl" / "BridgeLoyalty.wsdl"
    nowhere = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    retention = {"done_after": "1d", "batch": args.batch, "pause_seconds": args.pause}
    config = {
        "store": {"url": f"sqlite:///{tmp / name}.db", "retention": retention},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "info", "format": "json"},
        "systems": {
            "onec": {
                "type": "onec",
                "webhook": {"auth": "bearer", "token": TOKEN},
                "options": {
                    "wsdl": str(wsdl),
                    "address": f"{nowhere}/base/ws/BridgeLoyalty.1cws",
                    "poll_interval": 0,
                },
            }
        },
        "mirror": {"routes": []},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def count_events(db: Path) -> int:
    """Rows in ``events``, read beside the daemon through a read-only connection."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def measure(tmp: Path, name: str, args: argparse.Namespace, label: int) -> dict[str, Any]:
    """Start a daemon on ``name``.db, send warm-up then measured events, stop it."""
    port = free_port()
    db = tmp / f"{name}.db"
    before = count_events(db) if db.exists() else 0
    proc = start_daemon(write_config(tmp, name, port, args), port, tmp / f"{name}.log")
    run_id = f"{uuid.uuid4().hex[:8]}-{label}"
    bodies = [
        (BODY % {"eid": f"{run_id}-{i}", "i": i, "data": ORDER % {"i": i}}).encode()
        for i in range(args.warmup + args.events)
    ]
    try:
        time.sleep(args.settle)  # the pruner is under way before the first event
        warm = asyncio.run(send_all(port, bodies[: args.warmup], args.senders))
        result = asyncio.run(send_all(port, bodies[args.warmup :], args.senders))
        after = count_events(db)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            exit_code: int | None = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_code = None
    sent = warm["count"] + result["count"]
    # Rows that left the log while this daemon ran: what its pruner took meanwhile.
    pruned = before + sent - after
    return result | {
        "warmup_failures": warm["failures"],
        "pruned": pruned,
        "daemon_exit": exit_code,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Build the big log, then alternate rounds: empty log, big log (its pruner running)."""
    with tempfile.TemporaryDirectory(prefix="bridge-bench-retention-") as name:
        tmp = Path(name)
        built = build_log(tmp / "big.db", args.log_events, time.time())
        rounds: list[dict[str, Any]] = []
        for i in range(args.rounds):
            (tmp / "empty.db").unlink(missing_ok=True)
            for suffix in ("-wal", "-shm", ".lock"):
                Path(f"{tmp / 'empty.db'}{suffix}").unlink(missing_ok=True)
            empty = measure(tmp, "empty", args, i)
            big = measure(tmp, "big", args, i)
            rounds.append({"empty": empty, "big": big})
        left = count_events(tmp / "big.db")
        size = (tmp / "big.db").stat().st_size
    empty_rate = statistics.median(r["empty"]["per_second"] for r in rounds)
    big_rate = statistics.median(r["big"]["per_second"] for r in rounds)
    ratio = round(big_rate / empty_rate, 3)
    return {
        "settings": {
            k: getattr(args, k)
            for k in ("log_events", "events", "senders", "rounds", "batch", "pause")
        },
        "built": built,
        "rounds": rounds,
        "empty_per_second": empty_rate,
        "big_per_second": big_rate,
        "ratio": ratio,
        "pruned": sum(r["big"]["pruned"] for r in rounds),
        "left_in_big_log": left,
        "big_log_bytes_after": size,
        "pass": ratio >= TARGET_RATIO,
        "smoke": args.smoke,
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    b = r["built"]
    print(f"\nbridge intake beside retention: {r['settings']}")
    print(
        f"  big log       {b['events']} done events built by SQL in {b['seconds']} s,"
        f" {b['bytes'] / 1e6:.0f} MB, {b['prunable']} older than a day"
    )
    for i, rnd in enumerate(r["rounds"], 1):
        for label in ("empty", "big"):
            f = rnd[label]
            print(
                f"  round {i} {label:<5} {f['per_second']:>8.1f} events/s"
                f"  p50 {f['p50_ms']:>7.2f} ms  p99 {f['p99_ms']:>7.2f} ms"
                f"  failures {f['failures']}  pruned meanwhile {f['pruned']}"
                f"  daemon exit {f['daemon_exit']}"
            )
    print(f"  empty log     {r['empty_per_second']:.1f} events/s (median of rounds)")
    print(f"  big log       {r['big_per_second']:.1f} events/s while pruning (median of rounds)")
    print(f"  pruned        {r['pruned']} events during the big-log rounds")
    print(f"  ratio         big / empty = {r['ratio']:.3f}  (judged)")
    verdict = "PASS" if r["pass"] else "FAIL"
    if r["smoke"]:
        verdict = "not judged (--smoke)"
    print(f"  target        ratio >= {TARGET_RATIO:.2f}: {verdict}")


def main() -> int:
    """Parse options, run, print; exit 1 if a request failed, the pruner took nothing or a
    daemon did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--log-events", type=int, default=1_000_000, help="big log (1000000)")
    parser.add_argument("--events", type=int, default=10_000, help="measured per round")
    parser.add_argument("--rounds", type=int, default=3, help="empty/big rounds (3)")
    parser.add_argument("--senders", type=int, default=50, help="concurrent senders (50)")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured events per round")
    parser.add_argument("--batch", type=int, default=500, help="store.retention.batch (500)")
    parser.add_argument("--pause", type=float, default=1.0, help="pause_seconds (1.0)")
    parser.add_argument("--settle", type=float, default=2.0, help="s before sending (2)")
    parser.add_argument("--timeout", type=float, default=1200, help="give up after (1200 s)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 20000-event log, no verdict"
    )
    args = parser.parse_args()
    if args.smoke:
        args.log_events, args.events, args.rounds, args.warmup = 20_000, 500, 1, 50
        args.settle, args.timeout = 1.0, 90
    if min(args.log_events, args.events, args.rounds, args.senders) < 1:
        parser.error("--log-events, --events, --rounds and --senders must be at least 1")
    with Deadline(args.timeout, "bench/retention.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    rounds = [r[k] for r in result["rounds"] for k in ("empty", "big")]
    failed = sum(f["failures"] + f["warmup_failures"] for f in rounds)
    clean = all(f["daemon_exit"] == 0 for f in rounds)
    return 1 if failed or not clean or result["pruned"] < 1 else 0


if __name__ == "__main__":
    raise SystemExit(main())
