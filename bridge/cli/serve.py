"""``bridge serve``: the daemon."""

from __future__ import annotations

import argparse

from aiohttp import web

from bridge.cli.common import Commands, add_command, load
from bridge.cli.output import FAILURE, OK, fail
from bridge.errors import SettingsError
from bridge.http.app import build_app
from bridge.logs import configure_logging, get_logger
from bridge.runtime import build_runtime

log = get_logger("bridge.serve")


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
    app = build_app(runtime)
    host, port = settings.http.host, settings.http.port

    async def announce(_app: web.Application) -> None:
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
