"""Balance look-ups at a fixed rate via the bridge, straight to the master, and through a
bare proxy making the same master calls (the floor), in one run."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

from balance_children import (
    EMULATOR,
    PROXY,
    TAG,
    start_bridge,
    start_child,
    stop,
    write_calls,
)
from balance_figures import CRM_LOOKUPS, CRM_RATE, figures, report
from balance_load import STREAMS, drive
from balance_setup import capture, master_system, write_config
from guard import Deadline  # bench/ is on sys.path when run as a script


def free_port() -> int:
    """A free loopback port: bind to 0, read it, let it go."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Emulator, capture, floor proxy, bridge, the load; every child stopped afterwards."""
    kind = "retailcrm" if args.master == "retailcrm" else "onec"
    load_before = os.getloadavg()
    emulator, urls = start_child("emulator", EMULATOR, kind, str(args.crm_emulator_rate))
    floor_exit = daemon_exit = None
    try:
        with tempfile.TemporaryDirectory(prefix="bridge-bench-") as name:
            tmp, port = Path(name), free_port()
            system = master_system(args.master, urls, args.crm_rate_limit)
            calls = asyncio.run(capture(kind, system, args.cart))
            tagged = [c._replace(headers=c.headers | {TAG: "floor"}) for c in calls]
            floor, floor_urls = start_child(
                "floor proxy", PROXY, str(write_calls(tmp / "c", tagged))
            )
            urls["floor"] = floor_urls["url"]
            try:
                daemon = start_bridge(write_config(tmp, port, kind, system), port, tmp / "d.log")
                urls["bridge"] = f"http://127.0.0.1:{port}/api/v1/bonus/balance"
                try:
                    pids = [daemon.pid, floor.pid, emulator.pid]
                    done = asyncio.run(drive(args, urls, calls, pids))
                finally:
                    daemon_exit = stop(daemon)
            finally:
                floor_exit = stop(floor)
    finally:
        emulator_exit = stop(emulator)
    names = {
        os.getpid(): "bench",
        daemon.pid: "bridge",
        floor.pid: "floor",
        emulator.pid: "emulator",
    }
    return figures(args, calls, done, names) | {
        "exits": {"bridge": daemon_exit, "emulator": emulator_exit},
        "floor_exit": floor_exit,
        "load": {"before": load_before, "after": os.getloadavg()},
    }


def cart_total(text: str) -> Decimal | None:
    """``--cart``: a total, or ``none`` for a look-up without a cart."""
    if text.lower() == "none":
        return None
    try:
        return Decimal(text)
    except ArithmeticError:
        raise SystemExit(f"--cart: {text!r} is neither a total (300.00) nor none") from None


def main() -> int:
    """Parse options, run, print; exit 1 if any look-up failed, the streams differed or a
    child did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--master", choices=["onec-soap", "onec", "retailcrm"], default="onec-soap")
    parser.add_argument("--rate", type=float, default=0, help="look-ups/s (200; retailcrm 8)")
    parser.add_argument("--seconds", type=float, default=30, help="measured seconds (30)")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured seconds first (3)")
    parser.add_argument("--interleave", choices=["block", "request"], default="block")
    parser.add_argument("--block", type=float, default=1, help="seconds per block (1)")
    parser.add_argument("--cart", default="", help="cart total, or none (300.00; retailcrm none)")
    parser.add_argument("--crm-rate-limit", type=float, default=CRM_RATE, help="the bridge's (10)")
    parser.add_argument(
        "--crm-emulator-rate", type=float, default=CRM_RATE, help="RetailCRM's (10; 0: none)"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 20 look-ups/s (retailcrm 8), 1.5 s measured in 0.5-s blocks after"
        " 1.5 s of warm-up, same checks, targets not judged",
    )
    args = parser.parse_args()
    crm = args.master == "retailcrm"
    # RetailCRM without a cart: the cap is a second request (/loyalty/calculate), and the
    # target is 8 look-ups/s at 10 requests/s.
    args.cart = cart_total(args.cart or ("none" if crm else "300.00"))
    if args.smoke:
        args.rate = args.rate or (CRM_LOOKUPS if crm else 20)
        args.seconds, args.warmup, args.block = 1.5, 1.5, 0.5
    args.rate = args.rate or (CRM_LOOKUPS if crm else 200)
    if args.interleave == "block" and args.seconds < len(STREAMS) * args.block:
        parser.error(f"--seconds must be at least {len(STREAMS)} blocks, one per stream")
    # The backstop: emulator start and capture, the daemon's start, the run, the stops.
    with Deadline(args.warmup + args.seconds + 180, "bench/balance.py"):
        result = run(args)
    report(result)
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    failed = sum(result[s]["errors"] for s in STREAMS) or not result["same_master_calls"]
    exits = [*result["exits"].values(), result["floor_exit"]]
    return 1 if failed or set(exits) != {0} else 0


if __name__ == "__main__":
    raise SystemExit(main())
