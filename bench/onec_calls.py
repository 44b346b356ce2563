"""CPU and latency of one 1C balance call through the declaration layer (issue 14) against
the connector as it was before it, and against a raw client, over SOAP and the HTTP service;
over SOAP also the compiled envelopes (issue 16) against zeep's path: the same run, the
same emulator process, the variants interleaved in rounds."""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
from datetime import UTC, datetime
from importlib.metadata import version
from typing import Any

import aiohttp
from guard import Deadline  # bench/ is on sys.path when run as a script
from onec_calls_clients import (
    CART,
    CONCURRENCY,
    PASSWORD,
    TIMEOUT,
    USER,
    make_connector,
    start_emulator,
    stop_emulator,
)
from onec_calls_measure import (
    Variant,
    compiled_ratios,
    figures,
    measure,
    overhead,
    ratio,
    run_rounds,
)
from onec_calls_report import report
from onec_calls_setup import Setup, canned_wire, set_up

from connectors.onec.client import SoapClient


async def canned_phase(s: Setup, calls: int, rounds: int, seed: int) -> dict[str, Variant]:
    """The same variants with the network taken out (the raw client answers its last real
    reply), and the renaming steps alone, in rounds as the calls over the network."""
    async with canned_wire(s) as body:
        variants = [Variant(v.key, v.label, v.call) for v in s.variants() if v.key != "raw"]
        variants.insert(0, Variant("raw", "raw client", lambda: s.raw_canned(body)))
        variants += s.pure_steps()
        for v in variants:
            await measure(v.call, max(calls // 20, 5))  # warm
        await run_rounds(variants, calls, rounds, seed)
    return {v.key: v for v in variants}


async def profile(s: Setup, calls: int, top: int) -> str:
    """cProfile of the declared call and of the call before issue 14, wire layer and
    connector, network canned: the ``top`` functions of each by own and cumulative time."""
    out = io.StringIO()
    paths = {v.key: v for v in s.variants()}
    async with canned_wire(s):
        keys = ["declared", "baseline", "connector", "old_connector"]
        keys += ["declared_zeep"] if s.zeep is not None else []
        for key in keys:
            v = paths[key]
            await measure(v.call, 50)
            prof = cProfile.Profile()
            prof.enable()
            await measure(v.call, calls)
            prof.disable()
            for order in ("tottime", "cumulative"):
                print(f"\n=== {v.label}, {calls} calls, network canned, by {order} ===", file=out)
                pstats.Stats(prof, stream=out).sort_stats(order).print_stats(top)
    return out.getvalue()


async def bench_transport(
    args: argparse.Namespace, transport: str, urls: dict[str, str]
) -> dict[str, Any]:
    """One transport: warm up, the calls over the network in rounds, then without it."""
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)  # as the connector's wire has
    auth = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
    connector = make_connector(transport, urls)
    twin = None
    if transport == "soap":  # the same connector on zeep's path: before issue 16
        twin = make_connector(transport, urls)
        assert isinstance(twin._client, SoapClient)
        twin._client._compile = False  # read by load(), in start()
    try:
        async with aiohttp.ClientSession(headers=auth, timeout=timeout) as http:
            s = await set_up(connector, transport, urls, http, twin)
            variants = s.variants()
            for v in variants:
                await measure(v.call, args.warmup)
            elapsed = await run_rounds(variants, args.calls, args.rounds, args.seed)
            canned = await canned_phase(s, args.calls, args.rounds, args.seed)
            profiled = await profile(s, args.profile, args.profile_top) if args.profile else ""
    finally:
        await connector.close()
        if twin is not None:
            await twin.close()
    net = {v.key: v for v in variants}
    # Issue 14 judges the declaration layer on zeep's path, as before 14 (SOAP compiled
    # since issue 16: its own pairs below).
    layered, layered_connector = (
        ("declared_zeep", "connector_zeep") if twin else ("declared", "connector")
    )
    result: dict[str, Any] = {
        "measured_seconds": round(elapsed, 2),
        "variants": {k: figures(v) for k, v in net.items()},
        "cpu_ratio": {
            "wire": ratio(net, layered, "baseline"),
            "connector": ratio(net, layered_connector, "old_connector"),
        },
        "overhead": overhead(figures(net["connector"]), figures(net["raw"])),
        "canned": {k: figures(v) for k, v in canned.items()},
        "canned_ratio": {
            "wire": ratio(canned, layered, "baseline"),
            "connector": ratio(canned, layered_connector, "old_connector"),
            "rules": ratio(canned, "declared_rules", "old_rename"),
        },
        "profile": profiled,
    }
    if twin is not None:
        result["compiled"] = {
            "net": compiled_ratios(net),
            "canned": compiled_ratios(canned),
        }
    return result


def main() -> int:
    """Parse options, start the emulator, run each transport, print; a failed call ends the
    run with its traceback (exit 1), and so does an emulator that did not exit cleanly."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per variant")
    parser.add_argument("--warmup", type=int, default=100, help="unmeasured calls per variant")
    parser.add_argument("--rounds", type=int, default=60, help="rounds to interleave (60)")
    parser.add_argument("--seed", type=int, default=1, help="of the order in each round (1)")
    parser.add_argument("--transport", choices=["soap", "http", "both"], default="both")
    parser.add_argument("--timeout", type=float, default=600, help="give up after (600 s)")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="also cProfile N canned calls of the declared and the old path (0: off)",
    )
    parser.add_argument("--profile-top", type=int, default=25, help="functions shown (25)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds: 40 calls per variant in 4 rounds"
    )
    args = parser.parse_args()
    if args.smoke:
        args.calls, args.warmup, args.rounds, args.timeout = 40, 10, 4, 60
    if args.calls < args.rounds or args.rounds < 1:
        parser.error("--calls must be at least --rounds, and --rounds at least 1")
    transports = ["soap", "http"] if args.transport == "both" else [args.transport]
    result: dict[str, Any] = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M"),
        "settings": {
            "calls": args.calls,
            "warmup": args.warmup,
            "rounds": args.rounds,
            "seed": args.seed,
            "cart_total": str(CART),
            "delivery": {"timeout_seconds": TIMEOUT, "concurrency": CONCURRENCY},
        },
        "versions": {
            "python": platform.python_version(),
            "zeep": version("zeep"),
            "aiohttp": version("aiohttp"),
        },
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "transports": {},
    }
    with Deadline(args.timeout, "bench/onec_calls.py"):
        proc, urls = start_emulator()
        try:
            for transport in transports:
                result["transports"][transport] = asyncio.run(
                    bench_transport(args, transport, urls)
                )
        finally:
            code = stop_emulator(proc)
    result["emulator_exit"] = code
    for transport in transports:
        report(result, transport, args.smoke)
    print(f"\nemulator exit {code}")
    if args.json:
        for t in result["transports"].values():
            t.pop("profile")
        print(json.dumps(result, indent=2))
    return 0 if code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
