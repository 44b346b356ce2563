"""Reading mapping files: every problem at once, each as ``file:line: key.path: message``."""

from __future__ import annotations

from pathlib import Path

from bridge.errors import SettingsError
from bridge.mapping.compiler import Compiled, compile_document
from bridge.mapping.engine import FlowMapping
from bridge.settings_loader import load_document


def inspect_mapping(path: Path) -> Compiled:
    """Read and compile one file; problems (sorted by line) instead of exceptions."""
    document, problems = load_document(path)
    if document.data is None and problems:
        return Compiled(None, None, None, None, problems)
    compiled = compile_document(document, path)
    problems = sorted(problems + compiled.problems, key=lambda p: p.line or 0)
    if not problems:
        return compiled
    return Compiled(None, compiled.source, compiled.entity, compiled.target, problems)


def check_mapping(path: Path) -> list[str]:
    """The problem lines of one mapping file; empty when it is valid."""
    return [str(p) for p in inspect_mapping(path).problems]


def load_mapping(path: Path) -> FlowMapping:
    """The compiled mapping; raises :class:`SettingsError` listing every problem."""
    compiled = inspect_mapping(path)
    if compiled.mapping is None:
        raise SettingsError([str(p) for p in compiled.problems])
    return compiled.mapping
