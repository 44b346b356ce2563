"""What every intake measurement shares: the webhook bodies, the senders, the daemon's
config and life, the blackhole target, where the CPU went, and the figures' summary.

The senders speak HTTP/1.1 over raw asyncio streams (one kept-alive connection each, the
request bytes built once): an aiohttp client costs about as much CPU per request as the
server it measures, and on a 2-core machine that cost was taken from the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-onec-webhook-token-0001"
PCTS = (("p50", 0.50), ("p99", 0.99), ("max", 1.0))
TICK = os.sysconf("SC_CLK_TCK")  # /proc's CPU times are in these
# One order change, about 300 bytes of JSON in ``data``; ``%(i)d`` makes each one distinct.
ORDER = (
    '{"number":"A-%(i)08d","status":"confirmed","customer":{"id":"c-%(i)d","phone":'
    '"+79161234567","card":"77%(i)010d"},"items":[{"sku":"SKU-100245","name":"Milk 3.2%% 1l",'
    '"qty":2,"price":"89.90"},{"sku":"SKU-200918","name":"Rye bread","qty":1,"price":"54.00"}],'
    '"total":"233.80","store":"MSK-014","updated_at":"2025-01-15T10:22:31+03:00"}'
)
BODY = '{"event_id":"%(eid)s","entity":"order","id":"%(i)d","action":"changed","data":%(data)s}'
HOOK = "/hooks/onec"


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


class Blackhole:
    """A loopback port that accepts connections and never answers: the routed target (and
    the source 1C a delivery re-reads) of the measured daemon. A delivery waits there for
    its timeout, one at a time, as deliveries to a target slower than intake do (RetailCRM
    at 10 requests/s takes 500 orders/s at most), so the deliveries intake writes pile up
    and the dispatcher stays nearly idle, as in a burst."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(4096)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"

    def close(self) -> None:
        """Stop listening."""
        self._sock.close()


def write_config(
    tmp: Path, port: int, store: dict[str, Any], hole: Blackhole, name: str = "bench"
) -> Path:
    """The production shape of intake: a 1C webhook and a route of 1C orders into RetailCRM
    through the committed mapping, so each event is stored with its delivery (JSON is valid
    YAML). Both systems are at the blackhole; polling is off."""
    wsdl = ROOT / "connectors" / "onec" / "wsdl" / "BridgeLoyalty.wsdl"
    onec = {
        "type": "onec",
        "webhook": {"auth": "bearer", "token": TOKEN},
        "options": {
            "wsdl": str(wsdl),
            "address": f"{hole.url}/base/ws/BridgeLoyalty.1cws",
            "poll_interval": 0,
        },
    }
    crm = {
        "type": "retailcrm",
        "delivery": {"concurrency": 1, "timeout_seconds": 30},
        "options": {"url": hole.url, "api_key": "bench-key-0001", "poll_interval": 0},
    }
    route = {
        "source": "onec",
        "entity": "order",
        "targets": ["retailcrm"],
        "mapping": str(ROOT / "mappings" / "onec_order_to_retailcrm.yaml"),
    }
    config = {
        "store": store,
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "warning", "format": "json"},
        "systems": {"onec": onec, "retailcrm": crm},
        "mirror": {"routes": [route]},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


def start_daemon(config: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """Run ``python -m bridge serve`` and wait until ``GET /health`` answers 200."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "bridge", "--config", str(config), "serve"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
    wait_healthy(proc, port, log_path, "the bridge")
    return proc


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log_path: Path, what: str) -> None:
    """Wait up to 30 s for ``GET /health`` to answer 200; exit with the log if it does not."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    sys.stderr.write(log_path.read_text(errors="replace"))
    raise SystemExit(f"{what} did not answer /health within 30 s (exit {proc.returncode})")


def stop_daemon(proc: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM, then its exit code (None: killed after 30 s)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def make_bodies(count: int) -> tuple[list[str], list[bytes]]:
    """``count`` distinct webhook bodies of this run, and their event ids."""
    run_id = uuid.uuid4().hex[:8]
    eids = [f"{run_id}-{i}" for i in range(count)]
    bodies = [
        (BODY % {"eid": eid, "i": i, "data": ORDER % {"i": i}}).encode()
        for i, eid in enumerate(eids)
    ]
    return eids, bodies


def request_bytes(port: int, body: bytes) -> bytes:
    """One POST of ``body`` to the 1C webhook, keep-alive."""
    head = (
        f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


class Exchange:
    """One kept-alive connection: send a request, read the status and the whole answer."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """The answer's status and body; a closed connection is opened again once."""
        if self._conn is None:
            self._conn = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._conn
        writer.write(request)
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            key = name.strip().lower()
            if key == b"content-length":
                length = int(value)
            elif key == b"transfer-encoding":
                raise ConnectionError("chunked answers are not read by the bench")
            elif key == b"connection" and value.strip().lower() == b"close":
                close = True
        body = await reader.readexactly(length)
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        """Close the connection (the next post opens another)."""
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None


async def send_all(
    port: int | Sequence[int], bodies: list[bytes], senders: int, acked: list[int] | None = None
) -> dict[str, Any]:
    """Post every body with ``senders`` concurrent senders, sender k to the k-th port in
    turn; time each until its 202 is read. ``acked`` gets the index of every body acked."""
    ports = [port] if isinstance(port, int) else list(port)
    lat: list[float] = []
    errors: Counter[str] = Counter()
    todo = iter(enumerate(bodies))

    async def sender(exchange: Exchange) -> None:
        for i, body in todo:
            request = request_bytes(exchange.port, body)
            t0 = time.perf_counter()
            try:
                status, raw = await asyncio.wait_for(exchange.post(request), 30)
                t1 = time.perf_counter()
                if status != 202:
                    errors[f"HTTP {status}: {raw[:120].decode(errors='replace')}"] += 1
                elif json.loads(raw).get("duplicate") is not False:
                    errors["202 without duplicate=false"] += 1
                else:
                    lat.append(t1 - t0)
                    if acked is not None:
                        acked.append(i)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as exc:
                exchange.close()
                errors[f"{type(exc).__name__}: {exc}"[:160]] += 1
        exchange.close()

    exchanges = [Exchange(ports[k % len(ports)]) for k in range(senders)]
    t0 = time.perf_counter()
    await asyncio.gather(*(sender(x) for x in exchanges))
    result = summary(time.perf_counter() - t0, lat, errors.total())
    return result | {"errors": dict(errors.most_common(5))}


def proc_ticks(pid: int) -> int:
    """CPU (user + system) a process has used, in clock ticks; 0 once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2 :].split()  # the fields after "pid (comm) "
    return int(fields[11]) + int(fields[12])  # utime and stime, fields 14 and 15 of proc(5)


def machine_ticks() -> tuple[int, int]:
    """(busy, all) clock ticks of every core since boot, from /proc/stat's ``cpu`` line."""
    user, nice, system, idle, iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


class CpuMeter:
    """Where the CPU went during one phase: the servers measured, the senders (this
    process), and how busy the whole machine was."""

    def __init__(self, servers: Sequence[int], others: Sequence[int] = ()) -> None:
        self._servers = {pid: proc_ticks(pid) for pid in servers}
        self._others = {pid: proc_ticks(pid) for pid in others}
        self._senders = time.process_time()
        self._machine = machine_ticks()
        self._t0 = time.perf_counter()

    def stop(self, events: int) -> dict[str, float]:
        """Cores used by each side over the phase, CPU ms per event of the servers, and the
        machine's load average."""
        elapsed = time.perf_counter() - self._t0
        servers = sum(proc_ticks(p) - t for p, t in self._servers.items()) / TICK
        others = sum(proc_ticks(p) - t for p, t in self._others.items()) / TICK
        senders = time.process_time() - self._senders
        busy, every = (b - a for a, b in zip(self._machine, machine_ticks(), strict=True))
        return {
            "servers_cores": round(servers / elapsed, 2),
            "others_cores": round(others / elapsed, 2),
            "senders_cores": round(senders / elapsed, 2),
            "machine_busy_cores": round(busy / max(every, 1) * (os.cpu_count() or 1), 2),
            "servers_ms_per_event": round(servers * 1000 / max(events, 1), 3),
            "others_ms_per_event": round(others * 1000 / max(events, 1), 3),
            "load_1min": round(os.getloadavg()[0], 2),
        }


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
