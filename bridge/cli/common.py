"""What several commands share: loading settings and opening the store."""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from bridge.cli.output import err
from bridge.errors import SettingsError
from bridge.settings import BONUS_TARGET, REGISTRATION_TARGET
from bridge.settings_loader import LoadedSettings, read_settings
from bridge.store import Store, open_store

T = TypeVar("T")
Commands = Any  # argparse's private _SubParsersAction


def add_command(
    commands: Commands, name: str, summary: str, example: str, run: Callable[..., int]
) -> argparse.ArgumentParser:
    """Add a subcommand whose help ends with ``example``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog="example:\n" + textwrap.indent(example.strip(), "  "),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Accepted after the command too (`bridge check --config x.yaml`), as people type it.
    parser.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        metavar="PATH",
        help="configuration file (default: ./config.yaml)",
    )
    parser.set_defaults(run=run)
    return parser


def load(args: argparse.Namespace) -> LoadedSettings | None:
    """Settings from ``--config``; on problems print them all and return None."""
    try:
        return read_settings(Path(args.config))
    except SettingsError as exc:
        for problem in exc.problems:
            err.print(problem, markup=False, highlight=False)
        return None


async def with_store(loaded: LoadedSettings, work: Callable[[Store], Awaitable[T]]) -> T:
    """Open the configured store for one command and close it afterwards."""
    store = open_store(loaded.settings.store)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def unknown_system_problems(loaded: LoadedSettings, args: argparse.Namespace) -> list[str]:
    """``--source`` / ``--target`` values that name no configured system, each with the
    names that exist (a typo like ``--target crm`` would otherwise match nothing, quietly)."""
    systems = set(loaded.settings.systems)
    problems = []
    internal = {BONUS_TARGET, REGISTRATION_TARGET}
    for option, known in (("source", systems), ("target", systems | internal)):
        value = getattr(args, option, None)
        if value is not None and value not in known:
            problems.append(
                f"--{option}: no system is named {value!r}; known: " + ", ".join(sorted(known))
            )
    return problems
