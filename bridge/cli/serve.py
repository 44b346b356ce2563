"""``bridge serve``: the daemon."""

from __future__ import annotations

import argparse
import gc
import sys

from aiohttp import web

from bridge.cli.common import Commands, add_command, load
from bridge.cli.output import FAILURE, OK, fail
from bridge.errors import SettingsError
from bridge.http.app import build_app
from bridge.logs import configure_logging, get_logger
from bridge.runtime import build_runtime

log = get_logger("bridge.serve")

# How long a thread may hold the GIL while another waits for it (CPython's default: 5 ms).
# The SQLite writer thread releases the GIL around every statement and must take it back
# from the event loop; at 5 ms a batch of intake's inserts waited for the loop's whole
# interval again and again (a convoy), so intake acknowledged ~10 % less with the writer
# mostly waiting. 0.5 ms hands it back sooner; bench/intake.py measures both ways alike.
GIL_SWITCH_SECONDS = 0.0005


def register(commands: Commands) -> None:
    """Add ``serve``."""
    add_command(
        commands,
        "serve",
        "run the daemon: HTTP server, dispatchers, pollers",
        "BRIDGE__HTTP__PORT=9000 bridge --config config.yaml serve",
        run,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; queued writes commit before exit."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    settings = loaded.settings
    configure_logging(settings.log)
    try:
        runtime = build_runtime(loaded)
    except SettingsError as exc:
        for problem in exc.problems:
            fail(problem)
        return FAILURE
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    app = build_app(runtime)
    host, port = settings.http.host, settings.http.port

    async def announce(_app: web.Application) -> None:
        # What start-up built (settings, mappings, schemas, the app) lives as long as the
        # process: out of the collector's sight, so its full passes do not walk it again
        # and again under load (gc.freeze, Python 3.7+).
        gc.collect()
        gc.freeze()
        log.info(
            "bridge_started",
            host=host,
            port=port,
            store=settings.store.url,
            systems=sorted(settings.systems),
            owner=runtime.owner,
        )

    app.on_startup.append(announce)
    try:
        web.run_app(
            app,
            host=host,
            port=port,
            print=None,
            access_log=None,
            handle_signals=True,
            shutdown_timeout=15,
        )
    except OSError as exc:
        return fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}")
    except Exception as exc:  # start-up failures (store locked, connector refused)
        return fail(str(exc))
    log.info("bridge_stopped")
    return OK
