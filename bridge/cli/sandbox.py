"""``bridge sandbox``: the configured systems' emulators in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from bridge.bonus.phones import PhoneError, normalize_phone
from bridge.cli.common import Commands, add_command, load, with_store
from bridge.cli.output import FAILURE, OK, USAGE, fail, out, print_json, print_table, short_time
from bridge.errors import SettingsError
from bridge.registry import build_connectors
from bridge.views import message_view


def register(commands: Commands) -> None:
    """Add ``sandbox``."""
    parser = add_command(
        commands,
        "sandbox",
        "run the emulators of the configured systems in the foreground (for integrators"
        " building their side against our reference contracts)",
        "bridge --config config.yaml sandbox",
        run,
    )
    sub = parser.add_subparsers(dest="sandbox_command", metavar="SUBCOMMAND", required=False)
    messages = add_command(
        sub,
        "messages",
        "the SMS messages the sandbox gateway received, newest first (sandbox only)",
        "bridge sandbox messages --phone '+7 900 000-00-01' --json",
        run_messages,
    )
    messages.add_argument("--phone", help="only messages to this phone (any notation)")
    messages.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    messages.add_argument("--json", action="store_true", help="print JSON")


def run_messages(args: argparse.Namespace) -> int:
    """Print what the sandbox SMS gateway received."""
    if not 1 <= args.limit <= 1000:
        return fail("--limit: must be 1 to 1000", USAGE)
    phone = None
    if args.phone is not None:
        try:
            phone = normalize_phone(args.phone)
        except PhoneError as exc:
            return fail(f"--phone: {exc}", USAGE)
    loaded = load(args)
    if loaded is None:
        return FAILURE
    if not loaded.settings.sandbox.enabled:
        return fail("sandbox.enabled is false: there is no sandbox SMS outbox")
    found = asyncio.run(
        with_store(loaded, lambda store: store.list_sandbox_messages(phone, args.limit))
    )
    views = [message_view(m) for m in found]
    if args.json:
        print_json({"messages": views})
        return OK
    if not views:
        out.print("No messages yet.")
        return OK
    print_table(
        "Sandbox SMS",
        ["AT", "PHONE", "TEXT", "RESERVATION"],
        [(short_time(v["at"]), v["phone"], v["text"], v["reference"]) for v in views],
    )
    return OK


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
