"""bench/onec_calls.py's human-readable block per transport, and its verdicts."""

from __future__ import annotations

import os
from typing import Any

TARGET = 1.10  # issue 14: the declaration layer adds no more than 10 % CPU per call


def verdict(x: float, smoke: bool) -> str:
    """PASS or FAIL of a CPU ratio against the target; smoke runs are not judged."""
    if smoke:
        return f"target <= {TARGET:.2f}: not judged (--smoke)"
    return f"target <= {TARGET:.2f}: {'PASS' if x <= TARGET else 'FAIL'}"


def report(r: dict[str, Any], transport: str, smoke: bool) -> None:
    """Print one transport's block."""
    s, t = r["settings"], r["transports"][transport]
    v, c, vers = t["variants"], t["canned"], r["versions"]
    print(
        f"\n1C GetBalance, reference contract, transport {transport}: {s['calls']} calls per"
        f" variant after {s['warmup']} warm-up, in {s['rounds']} rounds (each variant its share"
        f" back to back, in an order shuffled each round, seed {s['seed']}); emulator in its"
        f" own process ({r['date_utc']} UTC,"
        f" Python {vers['python']}, zeep {vers['zeep']}, aiohttp {vers['aiohttp']},"
        f" {os.cpu_count()} CPUs, load {r['load_before']}, {t['measured_seconds']} s measured)"
    )
    head = f"{'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'max ms':>8} {'CPU us':>7}"
    print(f"  {'variant':<40} {head}")
    for f in v.values():
        print(
            f"  {f['label']:<40} {f['p50_ms']:>8.3f} {f['p99_ms']:>8.3f}"
            f" {f['mean_ms']:>8.3f} {f['max_ms']:>8.3f} {f['cpu_us_per_call']:>7.1f}"
        )
    o = t["overhead"]
    print(
        f"  overhead connector - raw: p50 {o['p50_ms']:+.3f} ms (x{o['p50_ratio']:.3f}),"
        f" p99 {o['p99_ms']:+.3f} ms (x{o['p99_ratio']:.3f}),"
        f" mean {o['mean_ms']:+.3f} ms (x{o['mean_ratio']:.3f}),"
        f" CPU {o['cpu_us_per_call']:+.1f} us/call"
    )
    print("  CPU per call (this process: client, wire, event loop), today / before issue 14:")
    zeep_path = "declared_zeep" in v  # SOAP: the layer is judged on zeep's path, as before
    pairs = (
        ("wire", "declared_zeep" if zeep_path else "declared", "baseline", "(judged)"),
        ("connector", "connector_zeep" if zeep_path else "connector", "old_connector", ""),
    )
    for what, a, b, judged in pairs:
        print_ratio(
            v,
            a,
            b,
            t["cpu_ratio"][what],
            f"{judged} {verdict(t['cpu_ratio'][what]['ratio'], smoke)}",
        )
    if "compiled" in t:
        print("  issue 16, CPU per call: compiled envelopes / zeep's path, and each / raw zeep:")
        q = t["compiled"]["net"]
        print_ratio(v, "declared", "declared_zeep", q["wire"], "")
        print_ratio(v, "connector", "connector_zeep", q["connector"], "")
        print_ratio(v, "declared", "raw", q["wire_over_raw"], "")
        print_ratio(v, "declared_zeep", "raw", q["zeep_over_raw"], "")
    print(f"  the same with the network taken out ({c['raw']['count']} runs each, in rounds)")
    print(f"    {'variant':<62} {'p50 us':>8} {'p99 us':>8} {'CPU us':>8}")
    for f in c.values():
        print(
            f"    {f['label']:<62} {f['p50_ms'] * 1000:>8.1f} {f['p99_ms'] * 1000:>8.1f}"
            f" {f['cpu_us_per_call']:>8.1f}"
        )
    q = t["canned_ratio"]
    print(
        f"    today / before issue 14, CPU: wire layer x{q['wire']['ratio']:.3f}"
        f" ({q['wire']['cpu_us_delta']:+.1f} us), connector x{q['connector']['ratio']:.3f}"
        f" ({q['connector']['cpu_us_delta']:+.1f} us), renaming alone"
        f" x{q['rules']['ratio']:.3f} ({q['rules']['cpu_us_delta']:+.1f} us)"
    )
    if "compiled" in t:
        q = t["compiled"]["canned"]
        print(
            f"    compiled / zeep's path, CPU: wire layer x{q['wire']['ratio']:.3f}"
            f" ({q['wire']['cpu_us_delta']:+.1f} us), connector x{q['connector']['ratio']:.3f}"
            f" ({q['connector']['cpu_us_delta']:+.1f} us); compiled / raw zeep"
            f" x{q['wire_over_raw']['ratio']:.3f}"
        )
    own = (c["connector"]["p50_ms"] - c["raw"]["p50_ms"]) * 1000
    print(
        f"    connector - raw client, both without the network, p50 {own:+.1f} us;"
        f" measured connector - raw {o['p50_ms'] * 1000:+.1f} us"
    )
    if t["profile"]:
        print(t["profile"])


def print_ratio(v: dict[str, Any], a: str, b: str, q: dict[str, Any], judged: str) -> None:
    """One CPU ratio line: ``a`` over ``b``, the whole run and by round."""
    lo, hi = q["round_middle_half"]
    print(
        f"    {v[a]['label']} {v[a]['cpu_us_per_call']:.1f} us / {v[b]['label']}"
        f" {v[b]['cpu_us_per_call']:.1f} us = x{q['ratio']:.3f} ({q['cpu_us_delta']:+.1f} us;"
        f" by round: median x{q['round_median']:.3f}, middle half x{lo:.3f}..x{hi:.3f})"
        f" {judged}".rstrip()
    )
