"""How the CLI prints: rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

OK, FAILURE, USAGE = 0, 1, 2

# Piped output is read by scripts and support tickets: never wrap lines there.
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A readable table; ``-`` for missing values."""
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not str: values come from senders and must never be read as rich markup.
        table.add_row(*(Text("-" if v is None or v == "" else str(v)) for v in row))
    out.print(table)


def short_time(iso_text: str | None) -> str | None:
    """``2026-11-22T10:00:01.123Z`` → ``2026-11-22 10:00:01``."""
    return iso_text[:19].replace("T", " ") if iso_text else None


def fail(message: str, code: int = FAILURE) -> int:
    """Print an error line to stderr and return the exit code."""
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    return code


def fail_all(messages: Sequence[str], code: int = FAILURE) -> int:
    """Print every error line, then return the exit code."""
    for message in messages:
        fail(message)
    return code
