"""``bridge status``: queue depth per target, oldest waiting, event counts, cursors."""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import FAILURE, OK, out, print_json, print_table, short_time
from bridge.store import Store
from bridge.views import cursor_view, queue_view


def register(commands: Commands) -> None:
    """Add ``status``."""
    parser = add_command(
        commands,
        "status",
        "queue depth per target and status, oldest pending age, cursors, reservations by state",
        "bridge status --json | jq '.queues[] | select(.status == \"dead\")'",
        run,
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


async def gather_status(store: Store) -> dict[str, Any]:
    """Everything ``bridge status`` shows."""
    now = time.time()
    return {
        "queues": queue_view(await store.queue_depth(), now),
        "events": {k.value: v for k, v in sorted((await store.count_events()).items())},
        "cursors": [cursor_view(c) for c in await store.list_cursors()],
        "reservations": dict(sorted((await store.count_reservations()).items())),
    }


def run(args: argparse.Namespace) -> int:
    """Print the status."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    data = asyncio.run(with_store(loaded, gather_status))
    if args.json:
        print_json(data)
        return OK
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
    held = ", ".join(f"{k} {v}" for k, v in data["reservations"].items()) or "none yet"
    out.print(f"Reservations: {held}", markup=False)
    if data["cursors"]:
        print_table(
            "Cursors",
            ["SOURCE", "NAME", "VALUE", "UPDATED"],
            [
                (c["source"], c["name"], c["value"], short_time(c["updated_at"]))
                for c in data["cursors"]
            ],
        )
    return OK


def _age(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
