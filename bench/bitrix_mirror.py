"""A backlog of writes into Bitrix24 drained by the real daemon, against the portal's limit.

Issue 7, acceptance 5: "a backlog of 1,000 Bitrix writes never trips the emulator's 503 and
uses batch; prints achieved writes/s against the limit's ceiling (target >= 80 %)".

The backlog: ``--writes`` orders entered in the 1C emulator before the bridge starts, so
its first ``GetChanges`` poll finds them all; the route sends each to Bitrix as a deal.
The Bitrix emulator meters requests with the cloud's leaky bucket (bitrix.md §1.6: 50
deep, 2 requests/s; a request above it gets 503 QUERY_LIMIT_EXCEEDED).

The ceiling: from an empty bucket, the portal admits at most ``50 + 2 T`` requests in ``T``
seconds, and one ``batch`` request carries at most 50 writes (§1.5), so at most
``50 (50 + 2 T)`` writes. ``T`` runs from the first write the portal stored to the last.
A backlog that fits in the burst (1,000 writes = 20 batch requests) never meets the limit,
so its share says little; the default 10,000 writes (200 requests) is where the limit binds.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from balance import free_port  # bench/ is on sys.path when run as a script
from balance_children import reap
from guard import Deadline, Stall
from intake_load import start_daemon
from retailcrm_mirror import ask, child_env

ROOT = Path(__file__).resolve().parent.parent
BURST, LEAK, PER_BATCH = 50, 2.0, 50  # the portal's bucket (§1.6) and batch size (§1.5)
TARGET_SHARE = 0.95  # issue 16 (issue 7 asked 80 %)

# Both emulators in one child process, on free ports. The 1C emulator holds the backlog
# before it prints its URLs; the Bitrix emulator notes when each deal the bridge wrote was
# stored (CLOCK_MONOTONIC, shared with the bench). A status line per line read on stdin.
EMULATORS = """
import asyncio, json, os, sys, time
from connectors.bitrix.emulator import BitrixEmulator
from connectors.onec.emulator import OnecEmulator

async def main():
    portal, onec, n = BitrixEmulator(burst=50, leak=2.0), OnecEmulator(), int(sys.argv[1])
    for i in range(n):
        onec.ledger.enter_order({"number": f"B-{i}", "total": "1990.00", "items": []}, "Новый")
    added, add = [], portal.crm.add

    def counted_add(kind, values, caller):
        row = add(kind, values, caller)
        if values.get("ORIGINATOR_ID") == "bridge":
            added.append(time.monotonic())
        return row

    portal.crm.add = counted_add
    await portal.start()
    await onec.start()
    print(json.dumps({"bitrix": portal.webhook_url, "onec": onec.hs_url}), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        stats = portal.snapshot()["stats"]
        out = {"written": len(added), "first": added[0] if added else None}
        out |= {"last": added[-1] if added else None, "stats": stats}
        out["deals"] = len(portal.snapshot()["deals"])
        print(json.dumps(out), flush=True)
        if not line:
            break
    await portal.stop()
    await onec.stop()
    os._exit(0)

asyncio.run(main())
"""

MAPPING = """
version: 1
source: onec
entity: order
target: bitrix
description: bench - every 1C order as a new deal
tables:
  stages: {values: {Новый: NEW, Выполнен: WON}, unknown: default, default: NEW}
fields:
  - {to: title, from: document.number}
  - {to: opportunity, from: document.total, transform: number}
  - {to: stageId, from: status, transform: lookup, table: stages}
  - {to: currencyId, transform: const, value: RUB}
"""


def write_config(tmp: Path, port: int, urls: dict[str, str]) -> Path:
    """1C (HTTP service) and Bitrix (inbound webhook) at the child's emulators, one route."""
    (tmp / "onec_order_to_bitrix.yaml").write_text(MAPPING, encoding="utf-8")
    config: dict[str, Any] = {
        "store": {"url": f"sqlite:///{tmp / 'bench.db'}"},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "systems": {
            "onec": {
                "type": "onec",
                "options": {
                    "transport": "http",
                    "url": urls["onec"],
                    "username": "bridge",
                    "password": "sandbox",
                    "poll_interval": 0.5,
                },
            },
            "bitrix": {"type": "bitrix", "options": {"url": urls["bitrix"], "poll_interval": 0}},
        },
        "mirror": {
            "routes": [
                {
                    "source": "onec",
                    "entity": "order",
                    "targets": ["bitrix"],
                    "mapping": str(tmp / "onec_order_to_bitrix.yaml"),
                }
            ]
        },
    }
    path = tmp / "bench.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Emulators with the backlog, the daemon, wait until every write is in Bitrix."""
    pipe = subprocess.PIPE
    cmd = [sys.executable, "-c", EMULATORS, str(args.writes)]
    emu = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdin=pipe, stdout=pipe, text=True)
    tmp_dir = tempfile.TemporaryDirectory(prefix="bridge-bitrix-bench-")
    tmp, daemon, r = Path(tmp_dir.name), None, dict[str, Any]()
    try:
        urls, port = ask(emu, ""), free_port()
        daemon = start_daemon(write_config(tmp, port, urls), port, tmp / "daemon.log")
        t0, r["stopped"] = time.monotonic(), None
        stall = Stall(args.stall, "writes stored in Bitrix", tmp / "bench.db")
        now = ask(emu)
        while now["written"] < args.writes and not r["stopped"]:
            if time.monotonic() - t0 > args.timeout:
                r["stopped"] = stall.why(
                    f"{now['written']} of {args.writes} writes in {args.timeout:g} s"
                )
                break
            time.sleep(0.5)
            now = ask(emu)
            r["stopped"] = stall.stuck(now["written"])
        r["now"], r["wall_s"] = now, time.monotonic() - t0
        daemon.send_signal(signal.SIGTERM)
        r["daemon_exit"] = daemon.wait(timeout=30)
        r["final"] = ask(emu, None)
    finally:
        reap(daemon, emu)
        tmp_dir.cleanup()
    return figures(args, r)


def figures(args: argparse.Namespace, r: dict[str, Any]) -> dict[str, Any]:
    """The judged figures from the raw observations."""
    final, n = r["final"], args.writes
    stats = final["stats"]
    done = final["written"] >= n
    span = (final["last"] - final["first"]) if done and final["first"] else r["wall_s"]
    span = max(span, 1e-6)
    ceiling = PER_BATCH * (BURST + LEAK * span)
    batches = stats["by_method"].get("batch", 0)
    return {
        "writes": n,
        "in_bitrix": final["written"],
        "deals": final["deals"],
        "drain_s": round(span, 2),
        "writes_per_s": round(final["written"] / span, 1),
        "ceiling_writes": round(ceiling),
        "ceiling_writes_per_s": round(ceiling / span, 1),
        "share_of_ceiling": round(min(n, final["written"]) / ceiling, 3),
        "requests": stats["requests"],
        "by_method": stats["by_method"],
        "writes_per_batch": round(final["written"] / batches, 1) if batches else None,
        "rate_limited_503": stats["rate_limited"],
        "done": done,
        "daemon_exit": r["daemon_exit"],
        "stopped": r["stopped"],
    }


def report(f: dict[str, Any], smoke: bool) -> None:
    """Print the figures and the verdict."""
    print(json.dumps(f, indent=2, ensure_ascii=False))
    share_ok = f["share_of_ceiling"] >= TARGET_SHARE
    verdict = "not judged (--smoke)" if smoke else "PASS" if share_ok else "MISS"
    print(
        f"\n{f['in_bitrix']} of {f['writes']} writes in {f['drain_s']} s:"
        f" {f['writes_per_s']} writes/s against a ceiling of {f['ceiling_writes_per_s']}/s"
        f" over that time = {f['share_of_ceiling']:.1%} (target {TARGET_SHARE:.0%}:"
        f" {verdict}); 503s: {f['rate_limited_503']}"
        f" ({'PASS' if f['rate_limited_503'] == 0 else 'MISS'}); requests by method:"
        f" {f['by_method']}, {f['writes_per_batch']} writes per batch; daemon exit"
        f" {f['daemon_exit']}"
    )
    if f["stopped"]:
        print(f"STOPPED: {f['stopped']}")


def main() -> int:
    """``python bench/bitrix_mirror.py [--writes N] [--smoke]``; exit 1 unless every write
    landed without a 503 and the daemon exited cleanly."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=10_000, help="the backlog (default 10000)")
    parser.add_argument("--timeout", type=float, default=400, help="give up after (s)")
    parser.add_argument(
        "--stall", type=float, default=30, help="give up when no write lands for (30 s)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 200 writes, short timeouts"
    )
    args = parser.parse_args()
    if args.smoke:
        args.writes, args.timeout, args.stall = 200, 30, 15
    if args.writes < 1:
        parser.error("--writes must be at least 1")
    with Deadline(args.timeout + 120, "bench/bitrix_mirror.py"):
        figures_ = run(args)
    report(figures_, args.smoke)
    ok = figures_["done"] and figures_["rate_limited_503"] == 0 and not figures_["stopped"]
    return 0 if ok and figures_["daemon_exit"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
