"""The files connector: sales reports dropped in a folder or on an FTP server.

It lists, reads, parses and puts aside report files (``bridge.files.source.ReportFiles``);
what a report's documents earn, and owing their accruals, is the core's
(``bridge.files.watcher``). Folder errors are classified here, at one boundary: a 4xx FTP
reply or a socket error is transient, a 5xx one a permanent refusal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.files.documents import ParsedReport
from bridge.files.source import ReportFile
from bridge.settings import SystemSettings
from connectors.files.client import FolderError, FtpFolder, LocalFolder
from connectors.files.options import FilesOptions
from connectors.files.rows import parse_csv

T = TypeVar("T")


class FilesConnector:
    """One folder of sales reports."""

    def __init__(self, name: str, options: FilesOptions) -> None:
        self.name = name
        self.options = options
        self.poll_interval = options.poll_interval
        self.settle_seconds = options.settle_seconds
        parts = urlsplit(options.url)
        password = None if options.password is None else options.password.get_secret_value()
        self._folder: LocalFolder | FtpFolder = (
            LocalFolder(unquote(parts.path))
            if parts.scheme == "file"
            else FtpFolder(options.url, password, options.timeout_seconds)
        )

    async def list_reports(self) -> list[ReportFile]:
        """The files matching the pattern, by name (finished ones are moved or marked, so
        the pattern no longer finds them)."""
        entries = await self._call(self._folder.list, self.options.pattern)
        return [ReportFile(e.name, e.size) for e in entries]

    async def read_report(self, name: str) -> bytes:
        """One file's bytes."""
        return await self._call(self._folder.read, name)

    def parse_report(self, name: str, data: bytes) -> ParsedReport:
        """Rows → documents (only CSV: the options refuse xml)."""
        return parse_csv(data, self.options)

    async def finish_report(self, name: str) -> str:
        """Moved to ``done_dir``, or renamed with ``mark``; the new name."""
        done = self.options.done_dir
        to = f"{done.strip('/')}/{name}" if done else f"{name}{self.options.mark}"
        await self._call(self._folder.move, name, to)
        return to

    async def probe(self) -> str:
        """``bridge check --probe``: the folder is listed."""
        found = await self.list_reports()
        return f"{len(found)} file(s) matching {self.options.pattern!r}"

    def features(self) -> list[str]:
        """``bridge check``: what this source does (the url carries no password)."""
        aside = (
            f"moved to {self.options.done_dir}/"
            if self.options.done_dir
            else (f"renamed with {self.options.mark}")
        )
        return [
            f"sales reports {self.options.pattern!r} at {self.options.url} every"
            f" {self.options.poll_interval:g} s: each document accrues at the bonus master"
            f" by the rules; finished files {aside}"
        ]

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(call, *args)
        except FolderError as exc:
            error: DeliveryError = (
                TransientError(str(exc)) if exc.transient else PermanentError(str(exc))
            )
            raise error from exc


class FilesType:
    """Entry-point object for ``type: files``."""

    options_model: type[FilesOptions] = FilesOptions

    def create(self, name: str, system: SystemSettings, options: FilesOptions) -> FilesConnector:
        """A files connector for system ``name``."""
        return FilesConnector(name, options)


FILES = FilesType()
