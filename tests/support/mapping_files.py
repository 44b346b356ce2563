"""Mapping files a test writes, and the problems ``check_mapping`` finds in one."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

from bridge.mapping import FlowMapping, check_mapping, load_mapping

HEADER = "version: 1\nsource: shop\nentity: order\ntarget: crm\n"


def write_flow(folder: Path, body: str) -> Path:
    """``folder/shop_order_to_crm.yaml``: ``HEADER`` and then ``body``, dedented."""
    path = folder / "shop_order_to_crm.yaml"
    path.write_text(HEADER + textwrap.dedent(body), encoding="utf-8")
    return path


def load_flow(folder: Path, body: str) -> FlowMapping:
    """The mapping :func:`write_flow` writes, loaded."""
    return load_mapping(write_flow(folder, body))


def findings(path: Path) -> list[tuple[int, str, str]]:
    """(line, key path, message) of every problem, checking the line format on the way."""
    out = []
    for problem in check_mapping(path):
        match = re.fullmatch(rf"{re.escape(str(path))}:(\d+): ([^:]+): (.+)", problem)
        assert match, problem
        out.append((int(match[1]), match[2], match[3]))
    return out
