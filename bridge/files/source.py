"""What a files connector offers the core: list, read, parse and put aside report files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bridge.files.documents import ParsedReport


@dataclass(frozen=True)
class ReportFile:
    """A file on the server matching the pattern."""

    name: str
    size: int


@runtime_checkable
class ReportFiles(Protocol):
    """A place report files are dropped (``type: files``)."""

    name: str
    poll_interval: float
    settle_seconds: float  # a file whose size changes within this is still being written

    async def list_reports(self) -> list[ReportFile]:
        """The files matching the pattern, not yet put aside, oldest name first."""
        ...

    async def read_report(self, name: str) -> bytes:
        """One file's bytes."""
        ...

    def parse_report(self, name: str, data: bytes) -> ParsedReport:
        """Rows → documents by the configured columns; bad rows reported, never raised."""
        ...

    async def finish_report(self, name: str) -> str:
        """Put a file aside (moved to the done folder, or renamed with the mark); where."""
        ...
