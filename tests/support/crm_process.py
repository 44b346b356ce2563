"""The RetailCRM emulator in a process of its own, metered, for tests of several bridges.

Several ``bridge serve`` processes share one RetailCRM key; the emulator must count every
request of all of them against its one-second window (retailcrm-api.md §1.6: 10/s per key,
503 beyond). In its own process it never shares an event loop with the test's webhook
sender (a stalled loop would see requests bunched together that were sent apart, as
``bench/retailcrm_mirror.py`` found). Run as ``python -m tests.support.crm_process RATE``:
it prints its URL as a JSON line, then answers each line read on stdin with what it saw
(:func:`observed`), and stops at EOF.

What it records beside the emulator's own ``stats``: the moment each request with a known
key reached the emulator's rate gate (the window it meters), and every history page served
to the bridge's key (the ``sinceId`` asked and the records given), so a test can tell which
polls each history record was read in.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.emulator.history import ORDER, EntityKind, HistoryRecord
from connectors.retailcrm.emulator.wire import filter_of
from tests.support.daemon import ROOT, cli_env

BRIDGE = "bridge"  # the name DEFAULT_KEYS gives the bridge's key


class MeteredEmulator(RetailcrmEmulator):
    """The emulator, noting when each request reached its rate gate and the history pages
    it gave the bridge."""

    def __init__(self, rate_limit: float) -> None:
        super().__init__(rate_limit=rate_limit)
        self.arrivals: dict[str, list[float]] = {}  # key name -> monotonic times
        self.history_reads: list[dict[str, Any]] = []
        self.stall = 0.0  # the longest its event loop was late, in seconds
        history = self.state.history

        def noted_history(kind: EntityKind, params: Mapping[str, Any], key: str | None) -> Any:
            page = history(kind, params, key)
            if kind is ORDER and self.api_keys.get(key or "") == BRIDGE:
                since = filter_of(params).get("sinceId")
                ids = [r["id"] for r in page.get("history") or []]
                self.history_reads.append({"at": time.monotonic(), "sinceId": since, "ids": ids})
            return page

        # The route table calls the state's method when a request comes: wrap that one.
        setattr(self.state, "history", noted_history)  # noqa: B010 - a method, on one object

    def _admit(self, key: str) -> bool:
        self.arrivals.setdefault(self.api_keys.get(key, "?"), []).append(time.monotonic())
        return super()._admit(key)

    async def watch_loop(self, tick: float = 0.01) -> None:
        """Note how late the loop wakes: a stalled emulator would see requests bunched
        that were sent apart (its count would then wrong the bridge)."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(tick)
            self.stall = max(self.stall, time.monotonic() - before - tick)


def record_view(record: HistoryRecord) -> dict[str, Any]:
    """One order history record: who made it and the ``customerComment`` it set."""
    change = record.change
    who = "user" if change.source == "user" else str(change.api_key)
    comment = record.entity.get("customerComment") if record.created else record.new
    return {
        "id": record.id,
        "entity_id": str(record.entity_id),
        "external_id": record.external_id,
        "field": record.field,
        "created": record.created,
        "who": who,
        "comment": comment if record.created or record.field == "customer_comment" else None,
    }


def observed(crm: MeteredEmulator) -> dict[str, Any]:
    """Everything a test judges: counts, arrivals, orders, order history, history reads,
    and the longest stall of the emulator's loop."""
    names = crm.api_keys
    history = []
    for record in crm.state.feeds[ORDER.name].records:
        row = record_view(record)
        row["who"] = names.get(row["who"], row["who"])
        history.append(row)
    orders = [
        {"id": o["id"], "externalId": o.get("externalId"), "comment": o.get("customerComment")}
        for o in crm.state.entities[ORDER.name].values()
    ]
    return {
        "stats": crm.stats,
        "byKey": crm.requests_by_key,
        "arrivals": crm.arrivals,
        "orders": orders,
        "history": history,
        "historyReads": crm.history_reads,
        "stall": crm.stall,
    }


async def serve(rate_limit: float) -> None:
    """Serve until stdin closes, answering each line with :func:`observed`."""
    crm = MeteredEmulator(rate_limit)
    await crm.start()
    print(json.dumps({"url": crm.url}), flush=True)
    loop = asyncio.get_running_loop()
    watcher = loop.create_task(crm.watch_loop())
    while await loop.run_in_executor(None, sys.stdin.readline):
        print(json.dumps(observed(crm), default=str), flush=True)
    watcher.cancel()
    await crm.stop()


def busiest_second(times: Sequence[float]) -> list[float]:
    """The most of ``times`` that fall in one one-second window ``[t, t + 1)``, in order."""
    ordered = sorted(times)
    best: list[float] = []
    for i, t in enumerate(ordered):
        end = bisect.bisect_left(ordered, t + 1.0)
        if end - i > len(best):
            best = ordered[i:end]
    return best


@dataclass
class CrmProcess:
    """The metered emulator's process, seen from the test."""

    proc: asyncio.subprocess.Process
    url: str

    @classmethod
    async def start(cls, rate_limit: float = 10.0) -> CrmProcess:
        """Start it and wait for its URL."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.crm_process",
            str(rate_limit),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=cli_env(),
            cwd=str(ROOT),
            limit=1 << 28,  # one line carries every order and history record
        )
        try:
            first = await cls._line(proc)
        except BaseException:
            proc.kill()
            await proc.wait()
            raise
        return cls(proc, str(first["url"]))

    @staticmethod
    async def _line(proc: asyncio.subprocess.Process) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if not line:
            raise AssertionError("the RetailCRM emulator's process ended")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def observed(self) -> dict[str, Any]:
        """What the emulator saw so far (:func:`observed`)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")
        await self.proc.stdin.drain()
        return await self._line(self.proc)

    async def stop(self) -> None:
        """Close its stdin (its signal to stop); kill it if it does not end in 10 s."""
        if self.proc.returncode is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


if __name__ == "__main__":
    asyncio.run(serve(float(sys.argv[1])))
