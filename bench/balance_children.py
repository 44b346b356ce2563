"""The processes bench/balance.py runs beside the bridge: the master's emulator, and the
floor — a bare aiohttp proxy that makes, per look-up, the same master calls the bridge
makes on a warm look-up (replayed as captured) and answers a small JSON.

Each child prints its URLs as one JSON line once it listens and serves until its stdin
closes, so a bench that dies takes its children with it.
"""

from __future__ import annotations

import base64
import json
import os
import select
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TAG = "X-Bench-Stream"  # on the direct and floor streams' master calls: not the bridge's

# The emulator plus a tiny counter: GET /count answers how many master requests the
# emulator has served that carry no stream tag (the bridge's), and how many it refused
# with 503 for its rate limit (RetailCRM).
EMULATOR = """
import asyncio, json, sys
from aiohttp import web

served = [0]
TAG = "X-Bench-Stream"

def counted(gate):
    # Counts every master request (not the emulator's admin paths) in front of the
    # emulator's own middleware; set before start(), which builds the app with it.
    @web.middleware
    async def middleware(request, handler):
        if not request.path.startswith("/__emulator__/") and TAG not in request.headers:
            served[0] += 1
        return await gate(request, handler)
    return middleware

async def main() -> None:
    if sys.argv[1] == "retailcrm":
        from connectors.retailcrm.emulator import RetailcrmEmulator
        emulator = RetailcrmEmulator(rate_limit=float(sys.argv[2]))
    else:
        from connectors.onec.emulator import OnecEmulator
        emulator = OnecEmulator(username="bridge", password="sandbox")
    emulator._gate = counted(emulator._gate)
    await emulator.start()

    async def count(request: web.Request) -> web.Response:
        refused = getattr(emulator, "stats", {}).get("rateLimited", 0)
        return web.json_response({"served": served[0], "rate_limited": refused})

    app = web.Application()
    app.router.add_get("/count", count)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    count_url = f"http://127.0.0.1:{runner.addresses[0][1]}/count"
    urls = {"url": emulator.url, "hs_url": getattr(emulator, "hs_url", ""), "count": count_url}
    print(json.dumps(urls), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await emulator.stop()

asyncio.run(main())
"""

# The floor: what any proxy in front of the master has to do at least. It reads the
# till's JSON, makes the captured calls one after another over one keep-alive pool (the
# bytes the bridge's connector sent, so no envelope is built and no answer parsed beyond
# its status), and answers a JSON about the size of the bridge's answer.
PROXY = """
import asyncio, base64, json, sys
import aiohttp
from aiohttp import web

CALLS = [
    (c["method"], c["url"], c["headers"], base64.b64decode(c["body"]))
    for c in json.loads(open(sys.argv[1]).read())
]
PAD = "x" * 250

async def main() -> None:
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))

    async def balance(request: web.Request) -> web.Response:
        asked = await request.json()
        for method, url, headers, body in CALLS:
            async with session.request(method, url, data=body, headers=headers) as r:
                answer = await r.read()
            if r.status != 200:
                return web.json_response({"master": r.status, "answer": answer[:100].decode()},
                                         status=502)
        return web.json_response({"customer": asked.get("customer"), "pad": PAD})

    app = web.Application()
    app.router.add_post("/balance", balance)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(json.dumps({"url": f"http://127.0.0.1:{runner.addresses[0][1]}/balance"}), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await runner.cleanup()
    await session.close()

asyncio.run(main())
"""


def start_bridge(config: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """``python -m bridge serve`` with ``config``, once ``GET /health`` answers 200 (30 s)."""
    cmd = [sys.executable, "-m", "bridge", "--config", str(config), "serve"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    proc.wait()
    sys.stderr.write(log_path.read_text(errors="replace"))
    raise SystemExit(f"the bridge did not answer /health within 30 s (exit {proc.returncode})")


def child_env() -> dict[str, str]:
    """This environment with the project root on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def start_child(what: str, script: str, *args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
    """Run ``script`` in a child process; the URLs it prints once it listens."""
    cmd = [sys.executable, "-c", script, *args]
    pipe = subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(), stdin=pipe, stdout=pipe, text=True)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line:
        stop(proc)
        raise SystemExit(f"the {what} did not start within 30 s (exit {proc.returncode})")
    return proc, dict(json.loads(line))


def write_calls(path: Path, calls: list[Any]) -> Path:
    """The calls (method, url, headers, body) as the floor proxy reads them."""
    rows = [
        {"method": m, "url": u, "headers": h, "body": base64.b64encode(b).decode()}
        for m, u, h, b in calls
    ]
    path.write_text(json.dumps(rows))
    return path


def stop(proc: subprocess.Popen[Any]) -> int | None:
    """Close the child's stdin (its signal to stop) or SIGTERM it; its exit code."""
    if proc.stdin is not None:
        proc.stdin.close()
    elif proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return None


def reap(*procs: subprocess.Popen[Any] | None) -> None:
    """Kill whichever of ``procs`` still runs (a bench that failed half-way) and wait."""
    for proc in procs:
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
