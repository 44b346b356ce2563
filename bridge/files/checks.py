"""What a files source needs of the rest of the config (``bridge check`` and at start): a
bonus master that accrues exactly once, and a rules file to price documents by."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.files.source import ReportFiles
from bridge.ledger import not_supported
from bridge.settings import Settings

Problem = tuple[tuple[str | int, ...], str]


def files_problems(settings: Settings, by_system: Mapping[str, object]) -> list[Problem]:
    """Each files system's unmet needs, at its ``type`` key."""
    problems: list[Problem] = []
    master = settings.bonus.master
    for name, connector in by_system.items():
        if not isinstance(connector, ReportFiles):
            continue
        at: tuple[str | int, ...] = ("systems", name, "type")
        if master is None or master not in by_system:
            problems.append((at, "a files source accrues at the bonus master: set bonus.master"))
            continue
        refused = not_supported(by_system[master], "accrue")
        if refused is not None:
            # RetailCRM's manual credit has no operation id: a retried accrual could land
            # twice, and a file's documents must accrue once.
            problems.append(
                (at, f"the bonus master {master!r} cannot accrue exactly once: {refused.detail}")
            )
        if settings.bonus.rules.file is None:
            problems.append(
                (at, "a files source prices documents by the rules: set bonus.rules.file")
            )
    return problems
