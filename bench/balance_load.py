"""bench/balance.py's load: look-ups sent open loop at a fixed rate to the bridge, straight
to the master and to the floor proxy, in blocks or request by request; per stream what
happened."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import aiohttp
from balance_children import TAG, cpu_seconds  # bench/ is on sys.path when run as a script
from balance_setup import PHONE, TOKEN, Call

STREAMS = ("bridge", "direct", "floor")


async def counted(session: aiohttp.ClientSession, url: str) -> tuple[int, int]:
    """The bridge's master requests the emulator served so far, and its 503s for its rate."""
    async with session.get(url) as r:
        got = await r.json()
        return int(got["served"]), int(got["rate_limited"])


def plans_of(
    cart: Decimal | None, urls: dict[str, str], calls: list[Call]
) -> dict[str, list[Call]]:
    """Per stream, the requests of one look-up, in order."""
    asked: dict[str, Any] = {"customer": {"phone": PHONE}}
    if cart is not None:
        asked["cart"] = {"total": str(cart)}
    body = json.dumps(asked).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    return {
        "bridge": [Call("POST", urls["bridge"], headers, body)],
        "direct": [c._replace(headers=c.headers | {TAG: "direct"}) for c in calls],
        "floor": [Call("POST", urls["floor"], {"Content-Type": "application/json"}, body)],
    }


async def drive(
    args: argparse.Namespace, urls: dict[str, str], calls: list[Call], pids: list[int]
) -> dict[str, Any]:
    """The open-loop schedule: warm-up, then the measured run; per stream what happened."""
    lat: dict[str, list[float]] = {s: [] for s in STREAMS}
    errors: dict[str, Counter[str]] = {s: Counter() for s in STREAMS}
    lags: list[float] = []
    timeout = aiohttp.ClientTimeout(total=10)
    sessions = [  # one keep-alive pool each: the bridge, the emulator, the floor proxy
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout)
        for _ in STREAMS
    ]
    plans = plans_of(args.cart, urls, calls)

    async def one(stream: str, measured: bool) -> None:
        t0, problem, session = time.perf_counter(), None, sessions[STREAMS.index(stream)]
        try:
            for c in plans[stream]:
                async with session.request(c.method, c.url, data=c.body, headers=c.headers) as r:
                    raw = await r.read()
                if r.status != 200:
                    problem = f"{c.method} {c.url.split('?')[0]} HTTP {r.status}: {raw[:100]!r}"
                    break
        except (aiohttp.ClientError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}"[:160]
        if not measured:
            return
        if problem is None:
            lat[stream].append(time.perf_counter() - t0)
        else:
            errors[stream][problem] += 1

    for stream in STREAMS:  # one look-up each first: the bridge finds the customer here
        await one(stream, measured=False)
    await asyncio.sleep(1.1)  # RetailCRM's one-second window empty again
    blocks, n = args.interleave == "block", len(STREAMS)
    tick = args.rate if blocks else n * args.rate  # "request": each stream at --rate
    warm, total = int(args.warmup * tick), int((args.warmup + args.seconds) * tick)
    tasks: set[asyncio.Task[None]] = set()
    cpu0: dict[int, float] = {}
    sent: Counter[str] = Counter()
    started = measured = time.perf_counter()
    for i in range(total):
        if i == warm:  # CPU time of this process and the children, from here on
            cpu0 = {pid: cpu_seconds(pid) for pid in [os.getpid(), *pids]}
            counts0 = asyncio.create_task(counted(sessions[-1], urls["count"]))
            measured = time.perf_counter()
        due = started + i / tick
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lags.append(time.perf_counter() - due)
        k = int((i - warm) // (tick * args.block)) if blocks else i  # block 0: first measured
        stream = STREAMS[(k + k // n) % n]  # in blocks, each stream goes first in turn
        sent[stream] += i >= warm
        task = asyncio.create_task(one(stream, i >= warm))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    sending = time.perf_counter() - measured
    await asyncio.gather(*tasks)
    (served1, refused1), (served0, refused0) = (
        await counted(sessions[-1], urls["count"]),
        await counts0,
    )
    wall = time.perf_counter() - measured
    cpu = {pid: cpu_seconds(pid) - used for pid, used in cpu0.items()}
    for session in sessions:
        await session.close()
    span = {s: sending * (sent[s] / (total - warm) if blocks else 1) for s in STREAMS}
    return {
        "lat": lat,
        "errors": errors,
        "lags": lags[warm:],
        "sent_rate": (total - warm) / sending,
        "rates": {s: len(lat[s]) / span[s] if span[s] else 0.0 for s in STREAMS},
        "cpu": cpu,
        "wall": wall,
        "master_requests": served1 - served0,
        "rate_limited": refused1 - refused0,
    }
