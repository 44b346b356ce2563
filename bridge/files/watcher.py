"""Looks at a files source every ``poll_interval``: each new file read, its documents owed
one accrual each, the file put aside, and what happened recorded per file.

A file is known by its system, name and a digest of its bytes (a record of kind
``report_file``), so a file dropped again under its old name after it was put aside is
read again (and owes nothing new: its documents' calls exist already). A file moves::

    (listed) ──read, parsed──► reading ──every document owed──► owed ──put aside──► done

Killed at any point, the next poll finds the file where it was and goes on: owing a
document again is the same owed call, putting a file aside twice finds it gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Mapping
from typing import Any

from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.files.accruals import accrual_call
from bridge.files.documents import ParsedReport
from bridge.files.source import ReportFile, ReportFiles
from bridge.logs import get_logger
from bridge.owed.sweeper import OwedSweeper
from bridge.store.customer_records import CustomerRecord, CustomerRecords, RecordKind
from bridge.store.leases import LEASE_SECONDS, Leases
from bridge.store.reservations import VersionConflict

log = get_logger("bridge.files")

READING, OWED, DONE = "reading", "owed", "done"
OWE_BATCH = 200  # documents per store write: a file of thousands owes in steps
BAD_LINES_KEPT = 1000  # per file, in its record; the count is always whole


def file_key(system: str, name: str, data: bytes) -> str:
    """A file's record key: system, name and 12 hex digits of its bytes."""
    return f"{system}/{name}@{hashlib.sha256(data).hexdigest()[:12]}"


class FileWatcher:
    """One files source, polled in the background."""

    def __init__(
        self,
        source: ReportFiles,
        master: str,
        records: CustomerRecords,
        owed: OwedSweeper,
        leases: Leases | None = None,
        owner: str = "bridge",
    ) -> None:
        self.source, self.master, self.records, self.owed = source, master, records, owed
        # Several instances on one store (PostgreSQL): one polls a source at a time. Two
        # would still owe each document once; they would only race to move the file.
        self.leases, self.owner = leases, owner
        self._task: asyncio.Task[None] | None = None
        self._down = False  # "unavailable" logged once, "recovered" once

    def start(self) -> None:
        """Poll in the background."""
        self._task = asyncio.create_task(self._poll_forever(), name=f"files-{self.source.name}")

    async def stop(self) -> None:
        """Stop polling (a file half owed is taken up again at the next start)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.leases is not None:
            with contextlib.suppress(Exception):  # it lapses by itself otherwise
                await self.leases.let_go(f"files:{self.source.name}", self.owner)

    async def _poll_forever(self) -> None:
        while True:
            try:
                if await self._leading():
                    await self.poll_once()
                if self._down:
                    self._down = False
                    log.info("system_recovered", system=self.source.name)
            except DeliveryError as exc:
                if not self._down:
                    self._down = True
                    log.warning("files_unavailable", system=self.source.name, error=str(exc)[:300])
            except Exception:  # a fault of ours: logged, looked at again next time
                log.exception("files_poll_failed", system=self.source.name)
            await asyncio.sleep(self.source.poll_interval)

    async def _leading(self) -> bool:
        if self.leases is None:
            return True
        lease = f"files:{self.source.name}"
        return await self.leases.hold(lease, self.owner, LEASE_SECONDS + self.source.poll_interval)

    async def poll_once(self) -> list[str]:
        """Take every file matching the pattern whose size held for ``settle_seconds``;
        the keys of the files finished."""
        found = await self.source.list_reports()
        if found and self.source.settle_seconds > 0:
            await asyncio.sleep(self.source.settle_seconds)
            sizes = {f.name: f.size for f in found}
            later = await self.source.list_reports()
            for f in later:
                if f.name in sizes and sizes[f.name] != f.size:
                    log.info("report_file_growing", system=self.source.name, file=f.name)
            found = [f for f in later if sizes.get(f.name) == f.size]
        finished = []
        for f in found:
            try:
                finished.append(await self.take(f))
            except PermanentError as exc:  # this file only (no permission): the others go on
                log.warning(
                    "report_file_refused", system=self.source.name, file=f.name, error=str(exc)
                )
        return finished

    async def take(self, found: ReportFile) -> str:
        """Read one file, owe its documents, put it aside; its record's key."""
        system = self.source.name
        data = await self.source.read_report(found.name)
        key = file_key(system, found.name, data)
        record = await self.records.get_record(RecordKind.REPORT_FILE, key)
        if record is None or record.status == READING:
            parsed = self.source.parse_report(found.name, data)
            record = await self._reading(record, key, found, parsed)
            body = await self._owe(key, parsed)
            record = await self._settle(key, OWED, body)
        if record.status != DONE:
            moved_to = await self._put_aside(found.name)
            record = await self._settle(key, DONE, {"moved_to": moved_to})
            log.info(
                "report_file_done",
                system=system,
                file=found.name,
                documents=record.body.get("documents"),
                bad_lines=record.body.get("bad_line_count"),
            )
        else:  # done before, yet here again: the move was lost (or the same bytes came back)
            await self._put_aside(found.name)
        return key

    async def _reading(
        self, record: CustomerRecord | None, key: str, found: ReportFile, parsed: ParsedReport
    ) -> CustomerRecord:
        if record is not None:
            return record  # a poll cut short: owe them all again, each the same call
        bad = [b.text(found.name) for b in parsed.bad_lines]
        body = {
            "system": self.source.name,
            "name": found.name,
            "size": found.size,
            "documents": len(parsed.documents),
            "bad_line_count": len(bad),
            "bad_lines": bad[:BAD_LINES_KEPT],
        }
        record, _new = await self.records.add_record(
            RecordKind.REPORT_FILE, key, self.source.name, READING, body
        )
        log.info(
            "report_file_received",
            system=self.source.name,
            file=found.name,
            size=found.size,
            documents=len(parsed.documents),
            bad_lines=len(bad),
        )
        for text in bad[:20]:  # the rest: bridge files show
            log.warning("report_file_bad_line", system=self.source.name, line=text[:300])
        return record

    async def _owe(self, key: str, parsed: ParsedReport) -> dict[str, Any]:
        """Owe each document's accrual; how many were new and how many owed before by
        another file (the same document dropped again)."""
        new = before = 0
        docs = parsed.documents
        for start in range(0, len(docs), OWE_BATCH):
            calls = [
                accrual_call(self.master, self.source.name, key, d.arguments())
                for d in docs[start : start + OWE_BATCH]
            ]
            for owed in await self.owed.store.owe(calls):
                if owed.subject == key:
                    new += 1
                else:
                    before += 1
            self.owed.wake()
        return {"owed": new, "owed_before": before}

    async def _put_aside(self, name: str) -> str | None:
        try:
            return await self.source.finish_report(name)
        except DeliveryError as exc:
            if name not in {f.name for f in await self.source.list_reports()}:
                return None  # gone already: put aside by a run that died before recording it
            raise TransientError(f"cannot put {name} aside: {exc}") from exc

    async def _settle(self, key: str, status: str, extra: Mapping[str, Any]) -> CustomerRecord:
        for _ in range(20):
            record = await self.records.get_record(RecordKind.REPORT_FILE, key)
            assert record is not None  # added before it is settled
            try:
                return await self.records.update_record(record, status, {**record.body, **extra})
            except VersionConflict:
                continue
        raise TransientError(f"file record {key} is being changed by others; trying again")
