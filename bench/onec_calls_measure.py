"""How bench/onec_calls.py measures: variants of the balance call timed back to back in
rounds shuffled afresh each round, the process CPU over each block, and the figures and
same-run CPU ratios made of them."""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
Call = Callable[[], Awaitable[object]]


@dataclass
class Variant:
    """One way of making the balance call (a coroutine function) and what it measured."""

    key: str
    label: str
    call: Call
    lat: list[float] = field(default_factory=list)
    cpu: float = 0.0  # process CPU seconds over its blocks
    cpu_rounds: list[float] = field(default_factory=list)  # CPU s per call, each round


def stats(lat: list[float]) -> dict[str, Any]:
    """Nearest-rank p50/p99/max and the mean of latencies in seconds, as ms."""
    ordered, n = sorted(lat) or [float("nan")], len(lat)
    ms = {f"{k}_ms": round(ordered[max(0, round(q * n) - 1)] * 1000, 4) for k, q in PCTS}
    return {"count": n, "mean_ms": round(sum(lat) / max(n, 1) * 1000, 4)} | ms


async def measure(call: Call, n: int) -> list[float]:
    """Call ``call`` ``n`` times one after another; the latency of each call."""
    lat: list[float] = []
    clock = time.perf_counter
    for _ in range(n):
        t0 = clock()
        await call()
        lat.append(clock() - t0)
    return lat


async def run_rounds(variants: list[Variant], calls: int, rounds: int, seed: int) -> float:
    """``calls`` calls of each variant in ``rounds`` rounds; within a round each variant makes
    its share back to back, timed, with the process CPU over its block. The order is shuffled
    afresh each round (seeded): a fixed rotation would leave each variant after the same
    neighbour most of the time, and what ran just before shows in the CPU figures by a few
    µs. The wall time of the whole."""
    sizes = [calls // rounds + (i < calls % rounds) for i in range(rounds)]
    order, shuffle = list(variants), random.Random(seed).shuffle
    t0 = time.perf_counter()
    for size in sizes:
        shuffle(order)
        for v in order:
            c0 = time.process_time()
            v.lat += await measure(v.call, size)
            spent = time.process_time() - c0
            v.cpu += spent
            v.cpu_rounds.append(spent / size)
    return time.perf_counter() - t0


def figures(v: Variant) -> dict[str, Any]:
    """A variant's latency percentiles and CPU per call."""
    return stats(v.lat) | {
        "label": v.label,
        "cpu_us_per_call": round(v.cpu / max(len(v.lat), 1) * 1e6, 1),
    }


def ratio(variants: dict[str, Variant], a: str, b: str) -> dict[str, Any]:
    """CPU per call of ``a`` over ``b`` (same run, same rounds), and its spread by round."""
    va, vb = variants[a], variants[b]
    per_round = sorted(x / y for x, y in zip(va.cpu_rounds, vb.cpu_rounds, strict=True) if y)
    quarter = max(len(per_round) // 4, 0)
    return {
        "ratio": round((va.cpu / len(va.lat)) / (vb.cpu / len(vb.lat)), 4),
        "cpu_us_delta": round((va.cpu / len(va.lat) - vb.cpu / len(vb.lat)) * 1e6, 1),
        "round_median": round(statistics.median(per_round), 4),
        "round_middle_half": [round(per_round[quarter], 4), round(per_round[-1 - quarter], 4)],
    }


def compiled_ratios(variants: dict[str, Variant]) -> dict[str, Any]:
    """Issue 16: the compiled path's CPU per call over zeep's, and over a raw zeep client."""
    return {
        "wire": ratio(variants, "declared", "declared_zeep"),
        "connector": ratio(variants, "connector", "connector_zeep"),
        "wire_over_raw": ratio(variants, "declared", "raw"),
        "zeep_over_raw": ratio(variants, "declared_zeep", "raw"),
    }


def overhead(c: dict[str, Any], r: dict[str, Any]) -> dict[str, float]:
    """``c`` minus ``r`` at p50, p99 and mean, in ms and as ratios, and in CPU per call."""
    keys = ("p50", "p99", "mean")
    return (
        {f"{k}_ms": round(c[f"{k}_ms"] - r[f"{k}_ms"], 4) for k in keys}
        | {f"{k}_ratio": round(c[f"{k}_ms"] / r[f"{k}_ms"], 3) for k in keys}
        | {"cpu_us_per_call": round(c["cpu_us_per_call"] - r["cpu_us_per_call"], 1)}
    )
