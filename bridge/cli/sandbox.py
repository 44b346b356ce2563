"""``bridge sandbox``: the configured systems' emulators in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from bridge.cli.common import Commands, add_command, load
from bridge.cli.output import FAILURE, OK, fail, out
from bridge.errors import SettingsError
from bridge.registry import build_connectors


def register(commands: Commands) -> None:
    """Add ``sandbox``."""
    add_command(
        commands,
        "sandbox",
        "run the emulators of the configured systems in the foreground (for integrators"
        " building their side against our reference contracts)",
        "bridge --config config.yaml sandbox",
        run,
    )


def run(args: argparse.Namespace) -> int:
    """Start every emulator the configured connectors ship and wait for Ctrl-C."""
    loaded = load(args)
    if loaded is None:
        return FAILURE
    connectors, problems = build_connectors(loaded.settings)
    if problems:
        for problem in problems:
            fail(str(loaded.document.problem(problem.path, problem.message)))
        return FAILURE
    emulators = connectors.emulators(loaded.settings)
    if not emulators:
        return fail("none of the configured systems has an emulator")

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started = []
        try:
            for name, emulator in emulators.items():
                await emulator.start()
                started.append(emulator)
                out.print(f"{name}: {emulator.url}", markup=False)
            out.print("Emulators running; Ctrl-C stops them.", markup=False)
            await stop.wait()
        finally:
            for emulator in started:
                with contextlib.suppress(Exception):
                    await emulator.stop()

    try:
        asyncio.run(serve())
    except (OSError, SettingsError) as exc:
        return fail(f"cannot start the emulators: {exc}")
    return OK
