"""`bridge events list` (a first and a deep page, each filter) and `bridge status` on a log of
1,000,000 events against the same on 1,000, in the same run (issue 16: <= 50 ms a page).

Each log is written straight into the store's own schema (its migrations, then one bulk
SQL statement per table: a million events through HTTP would take ~10 min and measure
nothing this bench is about), with a realistic mix: 60 % from 1C, 40 % from RetailCRM;
97 % done, 1 % dead, 0.5 % in retry, the newest 0.5 % waiting or in flight, 0.2 % rejected;
each routed one way, every fourth 1C change to the bonus ledger too. Every query is timed
two ways: the store call the CLI makes, in this process on the store opened once (p50 and
max of ``--repeats``), and the real CLI command in a subprocess (p50 and max of ``--cli``
runs: Python's start-up included, so judge its growth from 1K to 1M, not its size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from guard import Deadline  # bench/ is on sys.path when run as a script
from psycopg import sql

from bridge.cli.status import gather_status
from bridge.settings_loader import read_settings
from bridge.store import Store, open_store
from bridge.store.migrate import migrate_sqlite
from bridge.store.records import EventFilter, Status

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 50.0
SPAN = 30 * 86_400.0  # the log's events were received over 30 days
SERVER = os.environ.get("BRIDGE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PAYLOAD = (
    '{"number":"A-00000042","status":"confirmed","customer":{"id":"c-42","phone":"+79161234567"'
    ',"card":"770000000042"},"items":[{"sku":"SKU-100245","name":"Milk 3.2% 1l","qty":2,'
    '"price":"89.90"},{"sku":"SKU-200918","name":"Rye bread","qty":1,"price":"54.00"}],'
    '"total":"233.80","store":"MSK-014","updated_at":"2025-01-15T10:22:31+03:00"}'
)
QUERIES: list[tuple[str, dict[str, str]]] = [
    ("events list", {}),
    ("events list --status done", {"status": "done"}),
    ("events list --status dead", {"status": "dead"}),
    ("events list --target retailcrm", {"target": "retailcrm"}),
    ("events list --source retailcrm", {"source": "retailcrm"}),
]

# The log in SQL both engines take ({n} events, {start} the first reception, {step} apart).
STATUS = """CASE WHEN i % 500 = 0 THEN 'rejected' WHEN i % 100 = 1 THEN 'dead'
  WHEN i % 200 = 3 THEN 'retry'
  WHEN i > {n} - {n} / 200 THEN CASE WHEN i % 20 = 0 THEN 'in_flight' ELSE 'pending' END
  ELSE 'done' END"""
BUILD = [
    f"""INSERT INTO events (id, source, source_key, entity, entity_id, action, payload, status,
                        reason, received_at, updated_at)
    SELECT i, CASE WHEN i % 5 < 3 THEN 'onec' ELSE 'retailcrm' END, 'k' || i, 'order',
           'o' || i, 'changed', '{PAYLOAD}', {STATUS}, NULL, {{start}} + i * {{step}},
           {{start}} + i * {{step}} + 1
    FROM {{numbers}}""",
    """INSERT INTO deliveries (id, target, source, entity, entity_id, entity_key, status,
                            attempts, due_at, created_at, updated_at)
    SELECT 2 * id, CASE source WHEN 'onec' THEN 'retailcrm' ELSE 'onec' END, source, 'order',
           entity_id, source || '/order/' || entity_id, status, 1, received_at, received_at,
           updated_at
    FROM events WHERE status != 'rejected'
    UNION ALL
    SELECT 2 * id + 1, '_bonus', source, 'order', entity_id, source || '/order/' || entity_id,
           'done', 1, received_at, received_at, updated_at
    FROM events WHERE status != 'rejected' AND source = 'onec' AND id % 4 = 0""",
    """INSERT INTO delivery_events (delivery_id, event_id, target, status, received_at)
    SELECT id, id / 2, target, status, created_at FROM deliveries""",
]


PG_COUNTS = """
INSERT INTO log_counts
SELECT 0, 'events', '', status, count(*) FROM events GROUP BY status
UNION ALL
SELECT 0, 'deliveries', target, status, count(*) FROM deliveries GROUP BY target, status
"""


def build_statements(n: int, start: float, numbers: str) -> list[str]:
    """BUILD for ``n`` events, ``numbers`` a row source of i = 1..n in the engine's words."""
    values = {"n": str(n), "start": repr(start), "step": repr(SPAN / n), "numbers": numbers}
    out = []
    for template in BUILD:
        statement = template
        for key, value in values.items():
            statement = statement.replace("{" + key + "}", value)
        out.append(statement)
    return out


def build_sqlite(path: Path, n: int, start: float) -> None:
    """A SQLite log of ``n`` events, through the store's migrations and its triggers."""
    numbers = (
        f"(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {n})"
        " SELECT i FROM c)"
    )
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate_sqlite(conn)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-524288"):
            conn.execute(f"PRAGMA {pragma}")  # set-up only: nothing to recover from
        conn.execute("BEGIN")
        for statement in build_statements(n, start, numbers):
            conn.execute(statement)
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=WAL")


async def build_postgres(url: str, n: int, start: float) -> None:
    """A PostgreSQL log of ``n`` events, through the store's migrations."""
    store = open_store(read_settings_for(url).settings.store)
    await store.open()  # migrates
    await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.transaction():
            # Triggers off for the load (a million row triggers in one transaction would
            # each update one session's count row: slow, and nothing this bench is about);
            # the counts are then summed once, as migration 0003 does for a log it finds.
            conn.execute("SET LOCAL session_replication_role = replica")
            for statement in build_statements(n, start, "generate_series(1, " + str(n) + ") i"):
                conn.execute(statement.encode())
            conn.execute(PG_COUNTS)
            for table in ("events", "deliveries"):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
                )
        conn.execute("VACUUM ANALYZE")  # as autovacuum leaves a settled log


def read_settings_for(url: str) -> Any:
    """Settings of a throwaway config on ``url`` (for opening the store as the CLI does)."""
    folder = Path(tempfile.mkdtemp(prefix="bridge-bench-events-"))
    return read_settings(write_config(folder, url))


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, let go): `status` asks no daemon."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, url: str) -> Path:
    """A config naming the systems the log's events come from and go to, on ``url``."""
    nowhere = f"http://127.0.0.1:{closed_port()}"
    onec = {
        "type": "onec",
        "options": {
            "wsdl": str(ROOT / "connectors" / "onec" / "wsdl" / "BridgeLoyalty.wsdl"),
            "address": f"{nowhere}/base/ws/BridgeLoyalty.1cws",
            "poll_interval": 0,
        },
    }
    crm = {
        "type": "retailcrm",
        "options": {"url": nowhere, "api_key": "k-0001", "poll_interval": 0},
    }
    config = {
        "store": {"url": url},
        "http": {"host": "127.0.0.1", "port": closed_port()},
        "log": {"level": "warning", "format": "json"},
        "systems": {"onec": onec, "retailcrm": crm},
        "mirror": {"routes": []},
    }
    path = folder / "config.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


async def timed(call: Callable[[], Awaitable[Any]], repeats: int) -> tuple[list[float], Any]:
    """Milliseconds of each of ``repeats`` calls, and the last answer."""
    times, answer = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        answer = await call()
        times.append((time.perf_counter() - t0) * 1000)
    return times, answer


def run_cli(config: Path, words: list[str], runs: int) -> list[float]:
    """Milliseconds of each run of the real CLI (``status`` exits 1: no daemon to ask)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "bridge", "--config", str(config), *words, "--json"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, timeout=120, check=False)
        times.append((time.perf_counter() - t0) * 1000)
        if done.returncode not in (0, 1) or not json.loads(done.stdout):
            raise SystemExit(f"{' '.join(words)}: exit {done.returncode}: {done.stderr[-500:]!r}")
    return times


async def measure(config: Path, n: int, start: float, args: argparse.Namespace) -> dict[str, Any]:
    """Every query on one log: store call and CLI, first and deep page, and ``status``."""
    store: Store = open_store(read_settings(config).settings.store)
    await store.open()
    rows: list[dict[str, Any]] = []
    try:
        for label, options in QUERIES:
            status = Status(options["status"]) if "status" in options else None
            flt = EventFilter(status, options.get("source"), options.get("target"))
            # The deep page goes on after an event among the oldest tenth of the log.
            oldest_tenth = EventFilter(status, flt.source, flt.target, until=start + SPAN / 10)
            old = await store.list_events(oldest_tenth)
            for page, after in (("first", None), ("deep", old[0].id if old else None)):
                times, listed = await timed(partial(store.list_events, flt, after), args.repeats)
                if after is not None and any(e.id == after for e in listed):
                    raise SystemExit(f"{label} after {after}: the page repeats it")
                words = label.split() + (["--after", after] if after else [])
                # --smoke runs the CLI for one page only (each run is a Python start-up).
                sampled = not args.smoke or (label, page) == (QUERIES[1][0], "first")
                cli = run_cli(config, words, args.cli) if sampled else []
                rows.append(
                    {"query": label, "page": page, "rows": len(listed), "store": times, "cli": cli}
                )
        times, shown = await timed(lambda: gather_status(store), args.repeats)
        if shown["log"]["events"] != n:
            raise SystemExit(f"status counts {shown['log']['events']} events of {n}")
        cli = run_cli(config, ["status"], args.cli)
        rows.append({"query": "status", "page": "", "rows": n, "store": times, "cli": cli})
    finally:
        await store.close()
    return {"events": n, "rows": rows}


async def run_sqlite(args: argparse.Namespace, n: int, folder: Path) -> dict[str, Any]:
    """Build a SQLite log of ``n`` events in ``folder`` and measure it."""
    start = time.time() - SPAN
    path = folder / f"log{n}.db"
    t0 = time.perf_counter()
    build_sqlite(path, n, start)
    built = time.perf_counter() - t0
    config = write_config(folder, f"sqlite:///{path}")
    result = await measure(config, n, start, args)
    return result | {"built_s": built, "bytes": path.stat().st_size}


async def run_postgres(args: argparse.Namespace, n: int) -> dict[str, Any]:
    """Build a PostgreSQL log of ``n`` events in a database of its own, measure, drop it."""
    name = f"bridge_bench_{secrets.token_hex(4)}"
    server = args.postgres
    url = server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        start = time.time() - SPAN
        t0 = time.perf_counter()
        await build_postgres(url, n, start)
        built = time.perf_counter() - t0
        with psycopg.connect(url, autocommit=True) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        config = write_config(Path(tempfile.mkdtemp(prefix="bridge-bench-events-")), url)
        result = await measure(config, n, start, args)
        return result | {"built_s": built, "bytes": int(size[0]) if size else 0}
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(name)))


def ms(times: list[float]) -> tuple[float, float]:
    """p50 and max (NaN when not measured)."""
    if not times:
        return float("nan"), float("nan")
    return statistics.median(times), max(times)


def report(args: argparse.Namespace, small: dict[str, Any], big: dict[str, Any]) -> bool:
    """Print both logs side by side, the ratios and the verdict; whether it passed."""
    n, k = f"{big['events']:,}", f"{small['events']:,}"
    print(f"\nbridge events list and status, {args.store}: {n} events against {k}, same run")
    print(f"store call p50/max of {args.repeats}; CLI p50/max of {args.cli} (start-up included)")
    for log in (small, big):
        built, size = log["built_s"], log["bytes"] / 1e6
        print(f"log {log['events']:>9,} events built in {built:.1f} s, {size:.1f} MB")
    head = ["query", "page", "rows", "store p50", "max", "1K p50", "ratio", "cli p50", "max"]
    print(f"{head[0]:<31} {head[1]:<5} {head[2]:>4} " + " ".join(f"{h:>9}" for h in head[3:]))
    passed, ratios, growth = True, [], []
    for row, base in zip(big["rows"], small["rows"], strict=True):
        (p50, top), (base50, _) = ms(row["store"]), ms(base["store"])
        (cli50, cli_top), (base_cli, _) = ms(row["cli"]), ms(base["cli"])
        ratios.append(p50 / base50)
        if row["cli"]:
            growth.append(cli50 - base_cli)
        ok = p50 <= TARGET_MS and top <= TARGET_MS
        passed = passed and ok
        verdict = "not judged (--smoke)" if args.smoke else ("PASS" if ok else "MISS")
        figures = [p50, top, base50, p50 / base50, cli50, cli_top]
        print(
            f"{row['query']:<31} {row['page']:<5} {min(row['rows'], 9999):>4} "
            + " ".join(f"{f:>9.2f}" for f in figures)
            + f"  {verdict}"
        )
    print(
        f"ratio {n}/{k} store p50: median {statistics.median(ratios):.2f}, max {max(ratios):.2f};"
        f" CLI p50 growth: median {statistics.median(growth):+.0f} ms, max {max(growth):+.0f} ms"
    )
    judged = "not judged (--smoke)" if args.smoke else ("PASS" if passed else "MISS")
    print(f"target every page and status <= {TARGET_MS:g} ms at {n} (store p50, max): {judged}")
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine load average {load}, {os.cpu_count()} cores")
    return passed or args.smoke


def main() -> int:
    """Build both logs, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres", default=SERVER, help="server (maintenance database URL)")
    parser.add_argument("--events", type=int, default=1_000_000, help="the big log")
    parser.add_argument("--small", type=int, default=1_000, help="the small log")
    parser.add_argument("--repeats", type=int, default=21, help="store calls per query")
    parser.add_argument("--cli", type=int, default=3, help="CLI runs per query")
    parser.add_argument("--json", action="store_true", help="print the raw figures too")
    parser.add_argument("--smoke", action="store_true", help="small logs, a few seconds")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.small, args.repeats, args.cli = 5_000, 500, 3, 1
    with (
        Deadline(1800, "bench/events_list.py"),
        tempfile.TemporaryDirectory(prefix="bridge-bench-events-") as name,
    ):
        if args.store == "sqlite":
            small = asyncio.run(run_sqlite(args, args.small, Path(name)))
            big = asyncio.run(run_sqlite(args, args.events, Path(name)))
        else:
            small = asyncio.run(run_postgres(args, args.small))
            big = asyncio.run(run_postgres(args, args.events))
    if args.json:
        print(json.dumps({"small": small, "big": big}))
    return 0 if report(args, small, big) else 1


if __name__ == "__main__":
    sys.exit(main())
