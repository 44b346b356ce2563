"""What bench/balance.py reports: the run's figures, the same-run ratios, the verdicts
against issue 16's targets, and the human-readable block."""

from __future__ import annotations

import argparse
import os
from typing import Any

from balance_load import STREAMS  # bench/ is on sys.path when run as a script
from balance_setup import Call

# Issue 16: overhead over direct p50 <= 1 ms and <= 1.3x the floor's, p99 <= 2 ms (200/s);
# RetailCRM: one request per warm look-up, 8 look-ups/s on one key at its 10 requests/s.
TARGET_P50_MS, TARGET_RATIO, TARGET_P99_MS = 1.0, 1.3, 2.0
CRM_RATE = 10.0  # RetailCRM's requests/s per key (retailcrm-api.md §1.6)
CRM_LOOKUPS = 8.0  # look-ups/s one key must sustain
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))


def stats(lat: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p99/max of latencies in seconds, as ms."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    pcts = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 3) for k, q in PCTS}
    return {"count": n} | pcts


def figures(
    args: argparse.Namespace, calls: list[Call], done: dict[str, Any], names: dict[int, str]
) -> dict[str, Any]:
    """What the run measured, the same-run ratios and the verdicts."""
    out: dict[str, Any] = {
        "settings": {k: getattr(args, k) for k in ("master", "rate", "seconds", "interleave")}
        | {"block": args.block, "warmup": args.warmup, "cart": str(args.cart)},
        "direct_calls": [f"{c.method} {c.url.split('?')[0]}" for c in calls],
    }
    lat, errors = done["lat"], done["errors"]
    for stream in STREAMS:  # per_second: answers per second of the stream's share of the run
        out[stream] = stats(lat[stream]) | {
            "per_second": round(done["rates"][stream], 1),
            "errors": errors[stream].total(),
            "error_kinds": dict(errors[stream].most_common(5)),
        }
    b, d, f = out["bridge"], out["direct"], out["floor"]
    over = {k: round(b[f"{k}_ms"] - d[f"{k}_ms"], 3) for k in ("p50", "p99")}
    floor_over = {k: round(f[f"{k}_ms"] - d[f"{k}_ms"], 3) for k in ("p50", "p99")}
    ratio = {k: round(over[k] / floor_over[k], 2) if floor_over[k] > 0 else None for k in over}
    cpu = {names[pid]: used for pid, used in done["cpu"].items()}
    per_lookup = {
        s: round(cpu[s] * 1000 / max(1, out[s]["count"] + out[s]["errors"]), 3)
        for s in ("bridge", "floor")
    }
    # Like with like: what the emulator served over the measured part, less the direct and
    # floor streams' requests (tagged), is what the bridge asked of the master per look-up.
    bridge_calls = done["master_requests"] / max(1, b["count"] + b["errors"])
    same = abs(bridge_calls - len(calls)) < 0.05
    ok = b["errors"] + d["errors"] + f["errors"] == 0 and same  # like with like, or no PASS
    verdicts = {
        f"overhead p50 <= {TARGET_P50_MS:g} ms": ok and over["p50"] <= TARGET_P50_MS,
        f"overhead p50 <= {TARGET_RATIO:g}x the floor's": ok
        and ratio["p50"] is not None
        and ratio["p50"] <= TARGET_RATIO,
        f"overhead p99 <= {TARGET_P99_MS:g} ms": ok and over["p99"] <= TARGET_P99_MS,
    }
    if args.master == "retailcrm":
        sustained = b["per_second"] >= 0.97 * args.rate and args.rate >= CRM_LOOKUPS
        warm_calls = 1 if args.cart is None else 2
        verdicts |= {
            f"{warm_calls} RetailCRM request(s) per warm look-up": same
            and len(calls) == warm_calls,
            f"{CRM_LOOKUPS:g} look-ups/s on one key at {args.crm_emulator_rate:g} req/s, no 503": ok
            and sustained
            and done["rate_limited"] == 0
            and args.crm_emulator_rate <= CRM_RATE,
        }
    return out | {
        "master_calls_per_lookup": {"direct": len(calls), "bridge": round(bridge_calls, 3)},
        "same_master_calls": same,
        "overhead_ms": over,
        "floor_overhead_ms": floor_over,
        "ratio_to_floor": ratio,
        "rate_limited": done["rate_limited"],
        "generator": {"sent_per_second": round(done["sent_rate"], 1), "lag": stats(done["lags"])},
        "cpu_cores": {name: round(used / done["wall"], 3) for name, used in cpu.items()},
        "cpu_ms_per_lookup": per_lookup,
        "smoke": args.smoke,
        "verdicts": verdicts,
        "speed_targets": [name for name in verdicts if name.startswith("overhead")],
    }


def report(r: dict[str, Any]) -> None:
    """Print the human-readable block."""
    mark, g, c, o = {True: "PASS", False: "MISS"}, r["generator"], r["cpu_cores"], r["overhead_ms"]
    unjudged = r["speed_targets"] if r["smoke"] else []  # a few samples say nothing of speed
    print(f"\nbalance look-ups: {r['settings']}")
    print(f"  direct = {' -> '.join(r['direct_calls'])}")
    print("  floor  = a bare aiohttp proxy making those same calls per look-up")
    m = r["master_calls_per_lookup"]
    print(
        f"  like with like: direct and the floor replay the {m['direct']} requests the bridge's"
        f" connector sent on a warm look-up; in this run the master served {m['bridge']:.2f} per"
        f" bridge look-up: {'same' if r['same_master_calls'] else 'NOT THE SAME'}"
    )
    for stream in STREAMS:
        f = r[stream]
        print(
            f"  {stream:<7} {f['per_second']:>7.1f}/s  p50 {f['p50_ms']:>7.3f} ms"
            f"  p99 {f['p99_ms']:>8.3f} ms  max {f['max_ms']:>8.3f} ms  errors {f['errors']}"
        )
        for reason, count in f["error_kinds"].items():
            print(f"      {count} x {reason}")
    fo, ratio = r["floor_overhead_ms"], r["ratio_to_floor"]
    shown = {k: "n/a" if v is None else f"{v:.2f}x" for k, v in ratio.items()}
    print(f"  overhead (bridge - direct)  p50 {o['p50']:+.3f} ms  p99 {o['p99']:+.3f} ms")
    print(f"  overhead (floor - direct)   p50 {fo['p50']:+.3f} ms  p99 {fo['p99']:+.3f} ms")
    print(f"  ratio bridge / floor overhead  p50 {shown['p50']}  p99 {shown['p99']}")
    if r["settings"]["master"] == "retailcrm":
        print(f"  RetailCRM 503s for its rate limit in the measured part: {r['rate_limited']}")
    print(
        f"  generator {g['sent_per_second']:.1f} sends/s; behind schedule p99"
        f" {g['lag']['p99_ms']:.3f} ms, max {g['lag']['max_ms']:.3f} ms"
    )
    per = r["cpu_ms_per_lookup"]
    print(
        f"  CPU cores: bench {c['bench']:.2f}, bridge {c['bridge']:.2f}, floor {c['floor']:.2f},"
        f" emulator {c['emulator']:.2f}; CPU per look-up: bridge {per['bridge']:.3f} ms,"
        f" floor {per['floor']:.3f} ms"
    )
    load = r["load"]
    print(
        "  machine load (1/5/15 min): before "
        + " ".join(f"{x:.2f}" for x in load["before"])
        + ", after "
        + " ".join(f"{x:.2f}" for x in load["after"])
        + f" ({os.cpu_count()} cores)"
    )
    print(f"  exits {r['exits']}, floor proxy {r['floor_exit']}")
    for target, passed in r["verdicts"].items():
        print(
            f"  target  {target}: {'not judged (--smoke)' if target in unjudged else mark[passed]}"
        )
