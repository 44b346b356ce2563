"""``bench/intake.py --store postgresql``: SQLite with one instance beside one, two and
three ``bridge serve`` on one PostgreSQL database, the same events and senders each time."""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import tempfile
import urllib.parse
from collections.abc import Callable
from contextlib import closing
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from intake_load import (  # bench/ is on sys.path when run as a script
    CpuMeter,
    free_port,
    make_bodies,
    send_all,
    start_daemon,
    stop_daemon,
    stored_once,
    write_config,
)
from psycopg import sql

SERVER = os.environ.get("BRIDGE_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
INSTANCES = (1, 2, 3)  # bridge serve processes on one PostgreSQL database
TARGET_RATE, TARGET_P99_MS = 2000.0, 50.0  # issue 15's figures for several instances


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


def sqlite_store(db: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The ``store:`` section of a SQLite file."""
    return {"url": f"sqlite:///{db}", "synchronous": args.synchronous}


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
            config = write_config(tmp, port, store, args.hole, f"{label}-{k}")
            procs.append(start_daemon(config, port, tmp / f"{label}-{k}.log"))
        warm = asyncio.run(send_all(ports, bodies[: args.warmup], args.senders, warm_acked))
        meter = CpuMeter([p.pid for p in procs], postgres_pids())
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
        | {"server": server, "cores": os.cpu_count()},
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
            f"      cpu: bridges {cpu['servers_cores']:.2f} + postgres {cpu['others_cores']:.2f}"
            f" + senders {cpu['senders_cores']:.2f} cores, machine {cpu['machine_busy_cores']:.2f}"
            f" of {s['cores']} busy (load {cpu['load_1min']:.2f}); per event: bridges"
            f" {cpu['servers_ms_per_event']:.3f} ms, postgres {cpu['others_ms_per_event']:.3f} ms"
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
