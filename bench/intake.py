"""Durable webhook intake on SQLite against the floor of plain SQLite commits, in one run;
with ``--store postgresql``, SQLite beside one, two and three instances on one PostgreSQL.
"""

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
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
from guard import Deadline  # bench/ is on sys.path when run as a script
from psycopg import sql

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
# --store postgresql: the server that makes and drops a scratch database per configuration.
SERVER = os.environ.get("BRIDGE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
INSTANCES = (1, 2, 3)  # bridge serve processes on one PostgreSQL database
TICK = os.sysconf("SC_CLK_TCK")  # /proc's CPU times are in these


def summary(elapsed: float, lat: list[float], failures: int) -> dict[str, Any]:
    """Rate and nearest-rank latency percentiles (ms); only successes count towards the rate."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    ms = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 2) for k, q in PCTS}
    rate = {"count": n, "seconds": round(elapsed, 3), "per_second": round(n / elapsed, 1)}
    return rate | ms | {"failures": failures}


def free_port() -> int:
    """A loopback port free now (bound to 0, read, let go)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def closed_port() -> int:
    """A loopback port nothing listens on: a call there is refused."""
    return free_port()


def write_config(
    tmp: Path,
    port: int,
    args: argparse.Namespace,
    store: dict[str, Any] | None = None,
    name: str = "bench",
) -> Path:
    """An intake-only config: one onec webhook, no routes (JSON is valid YAML); the store is
    ``<tmp>/bench.db`` unless given."""
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
        "store": store or sqlite_store(tmp / "bench.db", args),
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "systems": {"onec": system},
        "mirror": {"routes": []},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def sqlite_store(db: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The ``store:`` section of a SQLite file."""
    return {"url": f"sqlite:///{db}", "synchronous": args.synchronous}


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


def stop_daemon(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, then its exit code (None: killed after 30 s)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


async def send_all(
    port: int | Sequence[int],
    bodies: list[bytes],
    senders: int,
    acked: list[int] | None = None,
) -> dict[str, Any]:
    """Post every body with ``senders`` concurrent senders, sender k to the k-th port in
    turn; time each until its 202 is read. ``acked`` gets the index of every body acked."""
    ports = [port] if isinstance(port, int) else list(port)
    urls = [f"http://127.0.0.1:{p}/hooks/onec" for p in ports]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    lat: list[float] = []
    errors: Counter[str] = Counter()
    todo = iter(enumerate(bodies))

    async def sender(session: aiohttp.ClientSession, url: str) -> None:
        for i, body in todo:
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
                    if acked is not None:
                        acked.append(i)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                errors[f"{type(exc).__name__}: {exc}"[:160]] += 1

    connector = aiohttp.TCPConnector(limit=senders)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(sender(session, urls[k % len(urls)]) for k in range(senders)))
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


def make_bodies(count: int) -> tuple[list[str], list[bytes]]:
    """``count`` distinct webhook bodies of this run, and their event ids."""
    run_id = uuid.uuid4().hex[:8]
    eids = [f"{run_id}-{i}" for i in range(count)]
    bodies = [
        (BODY % {"eid": eid, "i": i, "data": ORDER % {"i": i}}).encode()
        for i, eid in enumerate(eids)
    ]
    return eids, bodies


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The bridge first, then the floors, in one temp dir removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
        tmp, port = Path(name), free_port()
        _, bodies = make_bodies(args.warmup + args.events)
        proc = start_daemon(write_config(tmp, port, args), port, tmp / "daemon.log")
        try:
            warm = asyncio.run(send_all(port, bodies[: args.warmup], args.senders))
            bridge = asyncio.run(send_all(port, bodies[args.warmup :], args.senders))
            with closing(sqlite3.connect(f"file:{tmp / 'bench.db'}?mode=ro", uri=True)) as db:
                rows = int(db.execute("SELECT count(*) FROM events").fetchone()[0])
        finally:
            exit_code = stop_daemon(proc)
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


# -- --store postgresql: SQLite beside one, two and three instances on one PostgreSQL -----


def proc_ticks(pid: int) -> int:
    """CPU (user + system) a process has used, in clock ticks; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()  # the fields after "pid (comm) "
    return int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)


def postgres_pids() -> list[int]:
    """Every PostgreSQL server process on the machine (other users' backends too)."""
    pids = []
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            name = comm.read_text().strip()
        except OSError:  # gone meanwhile
            continue
        if name == "postgres":
            pids.append(int(comm.parent.name))
    return pids


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat's ``cpu`` line."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


class CpuMeter:
    """Where the CPU went during one phase: the bridges, every PostgreSQL process on the
    machine, the senders (this process), and how busy the whole machine was."""

    def __init__(self, bridges: Sequence[int]) -> None:
        self._bridges = {pid: proc_ticks(pid) for pid in bridges}
        self._postgres = {pid: proc_ticks(pid) for pid in postgres_pids()}
        self._senders = time.process_time()
        self._machine = machine_ticks()
        self._t0 = time.perf_counter()

    def stop(self, events: int) -> dict[str, float]:
        """Cores used by each side over the phase, and CPU ms per event of the two servers."""
        elapsed = time.perf_counter() - self._t0
        bridges = sum(proc_ticks(p) - t for p, t in self._bridges.items()) / TICK
        postgres = sum(proc_ticks(p) - self._postgres.get(p, 0) for p in postgres_pids()) / TICK
        senders = time.process_time() - self._senders
        busy, every = (b - a for a, b in zip(self._machine, machine_ticks(), strict=True))
        cores = os.cpu_count() or 1
        per_event = 1000 / max(events, 1)
        return {
            "bridges_cores": round(bridges / elapsed, 2),
            "postgres_cores": round(postgres / elapsed, 2),
            "senders_cores": round(senders / elapsed, 2),
            "machine_busy_cores": round(busy / max(every, 1) * cores, 2),
            "bridges_ms_per_event": round(bridges * per_event, 3),
            "postgres_ms_per_event": round(postgres * per_event, 3),
        }


def database_url(server: str, name: str) -> str:
    """The server's URL with another database."""
    parts = urllib.parse.urlsplit(server)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def on_server(server: str, statement: sql.Composed) -> None:
    """Run one statement on the server's maintenance database (CREATE / DROP DATABASE)."""
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            conn.execute(statement)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL at {server}: {exc}") from exc


def describe_server(server: str) -> str:
    """The server's version and the setting every commit waits on."""
    try:
        with psycopg.connect(server, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('synchronous_commit')"
            ).fetchone()
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL at {server}: {exc}") from exc
    assert row is not None
    return f"PostgreSQL {row[0]}, synchronous_commit {row[1]}"


def sqlite_keys(db: Path) -> list[str]:
    """The source key of every stored event (a read-only connection)."""
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [str(row[0]) for row in conn.execute("SELECT source_key FROM events")]


def postgres_keys(url: str) -> list[str]:
    """The source key of every stored event."""
    with psycopg.connect(url, connect_timeout=5) as conn:
        return [str(row[0]) for row in conn.execute("SELECT source_key FROM events")]


def stored_once(keys: list[str], acked: set[str]) -> dict[str, Any]:
    """Every acknowledged event stored exactly once: the rows against the acks, by key."""
    counts = Counter(keys)
    missing = len(acked - counts.keys())
    duplicated = sum(1 for n in counts.values() if n > 1)
    ok = not missing and not duplicated and len(keys) == len(acked)
    return {
        "acked": len(acked),
        "rows": len(keys),
        "missing": missing,
        "duplicated": duplicated,
        "ok": ok,
    }


def measure_store(
    tmp: Path,
    label: str,
    store: dict[str, Any],
    instances: int,
    events: tuple[list[str], list[bytes]],
    args: argparse.Namespace,
    stored: Callable[[], list[str]],
) -> dict[str, Any]:
    """``instances`` daemons on one store, the senders spread over them: the warm-up, then
    the measured events; the rows read while the daemons still run."""
    (eids, bodies), ports = events, list[int]()
    while len(ports) < instances:
        port = free_port()
        ports += [] if port in ports else [port]
    procs: list[subprocess.Popen[bytes]] = []
    warm_acked: list[int] = []
    acked: list[int] = []
    try:
        for k, port in enumerate(ports):
            config = write_config(tmp, port, args, store, f"{label}-{k}")
            procs.append(start_daemon(config, port, tmp / f"{label}-{k}.log"))
        warm = asyncio.run(send_all(ports, bodies[: args.warmup], args.senders, warm_acked))
        meter = CpuMeter([p.pid for p in procs])
        result = asyncio.run(send_all(ports, bodies[args.warmup :], args.senders, acked))
        cpu = meter.stop(result["count"])
        keys = stored()
    finally:
        exits = [stop_daemon(p) for p in procs]
    acks = {eids[i] for i in warm_acked} | {eids[args.warmup + i] for i in acked}
    return result | {
        "instances": instances,
        "warmup_failures": warm["failures"],
        "durability": stored_once(keys, acks),
        "daemon_exits": exits,
        "cpu": cpu,
    }


def run_postgres(args: argparse.Namespace) -> dict[str, Any]:
    """SQLite with one instance, then PostgreSQL with one, two and three, each on a fresh
    database dropped afterwards; the same events and senders every time."""
    events = make_bodies(args.warmup + args.events)
    run_id = events[0][0].split("-", 1)[0]
    server = describe_server(args.postgres)
    configs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
        tmp = Path(name)
        db = tmp / "bench.db"
        configs["sqlite x1"] = measure_store(
            tmp, "sqlite", sqlite_store(db, args), 1, events, args, partial(sqlite_keys, db)
        )
        for n in INSTANCES:
            database = f"bench_intake_{run_id}_{n}"
            on_server(args.postgres, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
            url = database_url(args.postgres, database)
            try:
                configs[f"postgresql x{n}"] = measure_store(
                    tmp,
                    f"postgresql-{n}",
                    {"url": url},
                    n,
                    events,
                    args,
                    partial(postgres_keys, url),
                )
            finally:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                on_server(args.postgres, drop.format(sql.Identifier(database)))

    def ratio(a: str, b: str) -> float:
        return round(float(configs[a]["per_second"]) / float(configs[b]["per_second"]), 3)

    return {
        "settings": {k: getattr(args, k) for k in ("events", "senders", "warmup", "synchronous")}
        | {"connector_type": args.connector_type, "server": server, "cores": os.cpu_count()},
        "configs": configs,
        "ratios": {
            "postgresql x2 / x1": ratio("postgresql x2", "postgresql x1"),
            "postgresql x3 / x1": ratio("postgresql x3", "postgresql x1"),
            "postgresql x1 / sqlite x1": ratio("postgresql x1", "sqlite x1"),
        },
        "smoke": args.smoke,
    }


def report_postgres(r: dict[str, Any]) -> None:
    """Print the human-readable block of ``--store postgresql``."""
    s, configs = r["settings"], r["configs"]
    print(f"\nbridge intake, SQLite beside PostgreSQL: {s}")
    for label, c in configs.items():
        d, cpu = c["durability"], c["cpu"]
        print(
            f"  {label:<15} {c['per_second']:>8.1f} events/s  p50 {c['p50_ms']:>7.2f} ms"
            f"  p99 {c['p99_ms']:>7.2f} ms  max {c['max_ms']:>8.2f} ms  failures {c['failures']}"
        )
        for reason, n in c["errors"].items():
            print(f"      {n} x {reason}")
        print(
            f"      stored once: {d['rows']} rows for {d['acked']} acks (warm-up included),"
            f" missing {d['missing']}, duplicated {d['duplicated']}:"
            f" {'OK' if d['ok'] else 'MISMATCH'}; warm-up failures {c['warmup_failures']};"
            f" daemon exits {c['daemon_exits']}"
        )
        print(
            f"      cpu: bridges {cpu['bridges_cores']:.2f} + postgres {cpu['postgres_cores']:.2f}"
            f" + senders {cpu['senders_cores']:.2f} cores, machine {cpu['machine_busy_cores']:.2f}"
            f" of {s['cores']} busy; per event: bridges {cpu['bridges_ms_per_event']:.3f} ms,"
            f" postgres {cpu['postgres_ms_per_event']:.3f} ms"
        )
    bad = [label for label, c in configs.items() if not c["durability"]["ok"]]
    verdict = f"MISMATCH in {', '.join(bad)}" if bad else "OK"
    print(f"  durability    every ack stored exactly once in all {len(configs)}: {verdict}")
    for name, value in r["ratios"].items():
        print(f"  ratio         {name} = {value:.3f}")
    print(
        f"  note          {s['cores']} cores: the senders (this process), PostgreSQL and every"
        " bridge share them, so two and three instances compete with each other and with the"
        " senders and PostgreSQL for the same CPU (machine busy above); the 2/1 and 3/1 ratios"
        " measure that contention, not what instances on their own hosts would give."
        " postgres cores count every PostgreSQL process on the machine."
    )
    judged = "not judged (--smoke)" if r["smoke"] else None
    checks = {
        f">= {TARGET_RATE:.0f} events/s": [
            c["per_second"] >= TARGET_RATE for c in configs.values()
        ],
        f"p99 <= {TARGET_P99_MS:.0f} ms": [c["p99_ms"] <= TARGET_P99_MS for c in configs.values()],
    }
    for what, passed in checks.items():
        marks = ", ".join(
            f"{label} {'PASS' if ok else 'MISS'}" for label, ok in zip(configs, passed, strict=True)
        )
        print(f"  target        {what}: {judged or marks}")


def failed_postgres(r: dict[str, Any]) -> bool:
    """A failed request, an ack not stored exactly once, or a daemon that did not exit 0."""
    return any(
        c["failures"]
        or c["warmup_failures"]
        or not c["durability"]["ok"]
        or any(code != 0 for code in c["daemon_exits"])
        for c in r["configs"].values()
    )


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
    parser.add_argument(
        "--store",
        choices=["sqlite", "postgresql"],
        default="sqlite",
        help="postgresql: SQLite beside 1, 2 and 3 instances on one PostgreSQL, no floors",
    )
    parser.add_argument(
        "--postgres", default=SERVER, help=f"the server for --store postgresql ({SERVER})"
    )
    parser.add_argument(
        "--timeout", type=float, default=0, help="give up after (300 s; postgresql 900 s)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 500 events, targets not judged"
    )
    args = parser.parse_args()
    compare = args.store == "postgresql"
    if args.smoke:  # the whole path, a few seconds: 500 events, 50 senders, no verdict
        args.events, args.warmup, args.floor_events = 500, 50, 500
        args.timeout = args.timeout or (120 if compare else 60)
    args.timeout = args.timeout or (900 if compare else 300)
    if args.events < 1 or args.senders < 1:
        parser.error("--events and --senders must be at least 1")
    if compare:
        with Deadline(args.timeout, "bench/intake.py --store postgresql"):
            result = run_postgres(args)
        report_postgres(result)
        if args.json:
            print(json.dumps(result, indent=2))
        return 1 if failed_postgres(result) else 0
    with Deadline(args.timeout, "bench/intake.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2))
    failed = result["bridge"]["failures"] + result["warmup_failures"]
    return 1 if failed or not result["durability"]["ok"] or result["daemon_exit"] != 0 else 0


if __name__ == "__main__":
    raise SystemExit(main())
