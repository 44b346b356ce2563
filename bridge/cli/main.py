"""``bridge``: the daemon and the support commands. Exit codes: 0 ok, 1 failure, 2 usage."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from bridge import __version__
from bridge.cli import (
    backfill,
    check,
    customers,
    events,
    files,
    notify,
    purge,
    replay,
    reservations,
    sandbox,
    serve,
    status,
)
from bridge.cli import map as map_command
from bridge.cli.output import USAGE, fail
from bridge.errors import BridgeError

EXAMPLES = """examples:
  bridge serve                          run the daemon on ./config.yaml
  bridge check                          validate config.yaml, list every problem
  bridge status                         queues per target, oldest waiting, cursors
  bridge events list --status dead      what is dead-lettered
  bridge events show evt_42             payload, deliveries, every attempt
  bridge replay --status dead --target retailcrm --yes
  bridge purge --status done --before 30d --dry-run
  bridge backfill orders --from retailcrm --to onec --since 2026-01-01
  bridge map mappings/retailcrm_order_to_onec.yaml examples/retailcrm_order.json
  bridge reservations list --status held
  bridge customers show +79000000005    a phone's cards, merges, registration, notices
  bridge notify --template t.txt --phones p.txt --dry-run
  bridge sandbox                        run the emulators of the configured systems
  bridge sandbox messages --json        the SMS codes the sandbox gateway "sent"
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree; every command's help ends with an example."""
    parser = _Parser(
        prog="bridge",
        description="Joins 1C, RetailCRM and Bitrix into one bonus program and order history.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bridge {__version__}")
    parser.add_argument(
        "--config",
        default="config.yaml",
        metavar="PATH",
        help="configuration file (default: ./config.yaml)",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    modules = (
        serve,
        check,
        status,
        events,
        replay,
        purge,
        backfill,
        map_command,
        reservations,
        customers,
        files,
        notify,
        sandbox,
    )
    for module in modules:
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bridge`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] | None = getattr(args, "run", None)
    if run is None:
        parser.print_help(sys.stderr)
        return USAGE
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130
    except BridgeError as exc:  # the store cannot be opened, a file is unreadable, ...
        return fail(str(exc))


if __name__ == "__main__":
    raise SystemExit(main())
