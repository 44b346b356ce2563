"""``bridge status``: queue depth per target, oldest waiting, event counts, the log's size
and oldest entry, cursors."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import urllib.error
import urllib.request
from typing import Any

from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import FAILURE, OK, fail, out, print_json, print_table, short_time
from bridge.settings import HttpSettings
from bridge.store import Store
from bridge.store.owed import owed_store_of
from bridge.views import backfill_view, cursor_view, iso, queue_view


def register(commands: Commands) -> None:
    """Add ``status``."""
    parser = add_command(
        commands,
        "status",
        "queue depth per target and status, oldest pending age, the log's size and oldest"
        " event, cursors, reservations by state, calls owed per system and status, breaker"
        " states (asked of the running daemon)",
        "bridge status --json | jq '.queues[] | select(.status == \"dead\")'",
        run,
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


async def gather_status(store: Store) -> dict[str, Any]:
    """Everything ``bridge status`` shows; the log's figures come from counts the store
    keeps and from index ends, so they cost the same at a million events as at a thousand."""
    now = time.time()
    stats = await store.log_stats()
    return {
        "queues": queue_view(await store.queue_depth(), now),
        "log": {
            "events": sum(stats.events.values()),
            "deliveries": stats.deliveries,
            "oldest": iso(stats.oldest_at),
            "newest": iso(stats.newest_at),
            "size_bytes": stats.size_bytes,
        },
        "events": {k.value: v for k, v in sorted(stats.events.items())},
        "cursors": [cursor_view(c) for c in await store.list_cursors()],
        "reservations": dict(sorted((await store.count_reservations()).items())),
        "backfills": [backfill_view(b) for b in await store.list_backfills(open_only=True)],
        "owed": [
            {"system": system, "status": str(status), "count": count}
            for (system, status), count in sorted((await owed_store_of(store).count_owed()).items())
        ],
    }


def daemon_systems(http: HttpSettings) -> dict[str, str] | str:
    """Each system's state as the running daemon sees it (breakers live in its memory), or
    why it could not be asked."""
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host  # noqa: S104
    url = f"http://{host}:{http.port}/ready"
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:  # 503: not ready, but it answered
        body = json.loads(exc.read() or b"{}")
    except (OSError, ValueError) as exc:
        return f"the daemon at {url} does not answer ({_reason(exc)}); is bridge serve running?"
    systems = body.get("systems") if isinstance(body, dict) else None
    return {str(k): str(v) for k, v in systems.items()} if isinstance(systems, dict) else {}


def run(args: argparse.Namespace) -> int:
    """Print the status."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    data = asyncio.run(with_store(loaded, gather_status))
    data["systems"] = daemon_systems(loaded.settings.http)
    if args.json:
        print_json(data)
        return _daemon_answered(data)
    if data["queues"]:
        print_table(
            "Deliveries (done not shown)",
            ["TARGET", "STATUS", "COUNT", "OLDEST WAITING"],
            [
                (q["target"], q["status"], q["count"], _age(q["oldest_age_s"]))
                for q in data["queues"]
            ],
        )
    else:
        out.print("Deliveries: nothing waiting, nothing dead.")
    counts = ", ".join(f"{k} {v}" for k, v in data["events"].items()) or "none yet"
    out.print(f"Events: {counts}", markup=False)
    out.print(f"Log: {_log_line(data['log'])}", markup=False)
    held = ", ".join(f"{k} {v}" for k, v in data["reservations"].items()) or "none yet"
    out.print(f"Reservations: {held}", markup=False)
    owed = ", ".join(f"{o['system']} {o['status']} {o['count']}" for o in data["owed"])
    out.print(f"Owed calls: {owed or 'none yet'}", markup=False)
    for b in data["backfills"]:
        total = f" of {b['total']}" if b["total"] is not None else ""
        out.print(
            f"Backfill {b['id']} ({b['entity']}s {b['source']} → {','.join(b['targets'])}):"
            f" {b['status']}, {b['listed']}{total} listed, {b['delivered']} delivered,"
            f" {b['dead']} dead" + (f"; last error: {b['error']}" if b["error"] else ""),
            markup=False,
        )
    if not isinstance(data["systems"], str):
        states = ", ".join(f"{k} {v}" for k, v in data["systems"].items())
        out.print(f"Systems: {states or 'none'}", markup=False)
    if data["cursors"]:
        print_table(
            "Cursors",
            ["SOURCE", "NAME", "VALUE", "UPDATED"],
            [
                (c["source"], c["name"], c["value"], short_time(c["updated_at"]))
                for c in data["cursors"]
            ],
        )
    return _daemon_answered(data)


def _daemon_answered(data: dict[str, Any]) -> int:
    """The store's figures are shown either way; a daemon that does not answer is one clear
    line on stderr and exit 1 (breakers and the work itself live in that process)."""
    if isinstance(data["systems"], str):
        return fail(data["systems"])
    return OK


def _reason(exc: Exception) -> str:
    """``[Errno 111] Connection refused`` → ``connection refused``, for one readable line."""
    reason = getattr(exc, "reason", exc)
    text = getattr(reason, "strerror", None) or str(reason)
    return str(text).lower()


def _log_line(log: dict[str, Any]) -> str:
    """``1,204,311 events, the oldest received 2026-11-05 10:00:01, 1.1 GB on disk``."""
    if not log["events"]:
        return "empty"
    line = f"{log['events']:,} events, the oldest received {short_time(log['oldest'])} UTC"
    size = log["size_bytes"]
    if size is not None:
        line += f", {size / 1e9:.1f} GB" if size >= 1e9 else f", {size / 1e6:.1f} MB"
        line += " on disk"
    return line


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
