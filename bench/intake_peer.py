"""The floor intake competes with: a minimal aiohttp server that stores each webhook durably
before its 202, through one group-committing writer thread, into the bridge's own schema.

Per request it does what durable intake cannot skip: check the bearer token, parse the
JSON, name a missing field, serialise the payload, and insert the event, its delivery and
the link between them (the bridge's migrations: the same tables, indexes and triggers),
then wake the event loop once per committed batch. It skips what makes the bridge a
product: routing through config, coalescing deliveries per entity, logs, metrics, the
problem documents. Run as a child of ``bench/intake.py``:
``python bench/intake_peer.py --db FILE --port N --synchronous full``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import queue
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bridge.store.migrate import migrate_sqlite  # noqa: E402  (after the path is set)

TOKEN = "Bearer bench-onec-webhook-token-0001"
MAX_BATCH = 512
NAMED = ("event_id", "entity", "id")
INSERT_EVENT = (
    "INSERT INTO events (source, source_key, entity, entity_id, action, payload, status,"
    " reason, received_at, updated_at, backfill) VALUES ('onec', ?, ?, ?, ?, ?, 'pending',"
    " NULL, ?, ?, NULL) ON CONFLICT (source, source_key) DO NOTHING RETURNING id"
)
INSERT_DELIVERY = (
    "INSERT INTO deliveries (target, source, entity, entity_id, entity_key, status, due_at,"
    " created_at, updated_at, priority) VALUES ('retailcrm', 'onec', ?, ?, ?, 'pending', ?, ?,"
    " ?, 0) RETURNING id"
)
LINK = "INSERT INTO delivery_events (delivery_id, event_id) VALUES (?, ?)"
Job = tuple[tuple[str, str, str, str, str], "asyncio.Future[bool]"]


class GroupWriter:
    """One thread, one connection: the jobs queued during a commit go in the next one."""

    def __init__(self, path: Path, synchronous: str, loop: asyncio.AbstractEventLoop) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._conn.execute("PRAGMA foreign_keys=ON")
        migrate_sqlite(self._conn)
        self._loop = loop
        self._queue: queue.SimpleQueue[Job] = queue.SimpleQueue()
        threading.Thread(target=self._run, daemon=True).start()

    def submit(self, row: tuple[str, str, str, str, str]) -> asyncio.Future[bool]:
        """Queue one event; the future is True once committed (False: a duplicate)."""
        future = self._loop.create_future()
        self._queue.put((row, future))
        return future

    def _run(self) -> None:
        conn = self._conn
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            now = time.time()
            done: list[tuple[asyncio.Future[bool], Any]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for (key, entity, entity_id, action, payload), future in batch:
                    row = conn.execute(
                        INSERT_EVENT, (key, entity, entity_id, action, payload, now, now)
                    ).fetchone()
                    if row is None:
                        done.append((future, False))
                        continue
                    entity_key = f"onec/{entity}/{entity_id}"
                    did = conn.execute(
                        INSERT_DELIVERY, (entity, entity_id, entity_key, now, now, now)
                    ).fetchone()[0]
                    conn.execute(LINK, (did, row[0]))
                    done.append((future, True))
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                done = [(future, exc) for _row, future in batch]
            self._loop.call_soon_threadsafe(settle, done)


def settle(done: list[tuple[asyncio.Future[bool], Any]]) -> None:
    """Give each waiting request its outcome (on the event loop)."""
    for future, outcome in done:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def problem(status: int, detail: str) -> web.Response:
    """A short JSON error."""
    return web.json_response({"status": status, "detail": detail}, status=status)


def make_app(writer_box: list[GroupWriter]) -> web.Application:
    """One route, the webhook, plus /health."""

    async def hook(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != TOKEN:
            return problem(401, "bad token")
        try:
            doc = json.loads(await request.read())
        except ValueError:
            return problem(400, "body is not JSON")
        if not isinstance(doc, dict):
            return problem(400, "body is not a JSON object")
        missing = [k for k in NAMED if not isinstance(doc.get(k), str)]
        if missing:
            return problem(400, f"{missing[0]} is missing")
        fields = [str(doc[k]) for k in NAMED]
        payload = json.dumps(doc.get("data"), ensure_ascii=False, separators=(",", ":"))
        action = str(doc.get("action") or "changed")
        try:
            fresh = await writer_box[0].submit((fields[0], fields[1], fields[2], action, payload))
        except sqlite3.Error as exc:
            return problem(503, f"not stored: {exc}")
        return web.json_response({"event_id": fields[0], "duplicate": not fresh}, status=202)

    async def health(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/hooks/onec", hook)
    app.router.add_get("/health", health)
    return app


def main() -> None:
    """Serve until SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--synchronous", choices=["full", "normal"], default="full")
    args = parser.parse_args()
    sys.setswitchinterval(0.0005)  # as `bridge serve` does (bridge/cli/serve.py)
    box: list[GroupWriter] = []

    async def start(_app: web.Application) -> None:
        box.append(GroupWriter(args.db, args.synchronous, asyncio.get_running_loop()))

    app = make_app(box)
    app.on_startup.append(start)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
