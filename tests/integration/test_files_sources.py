"""The files connector against a real FTP server and a local folder: listing, reading,
putting aside, how the server's refusals are classified; and the watcher's handling of a
file still being written, of a file dropped twice, and of operation ids (issue 18)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import PermanentError, TransientError
from bridge.files.accruals import ACCRUE, sale_operation_id
from bridge.files.watcher import FileWatcher
from bridge.owed.handlers import Handlers
from bridge.owed.sweeper import OwedSweeper
from bridge.settings import SystemSettings
from bridge.store.customer_records import RecordKind, customer_records_of
from bridge.store.memory import MemoryStore
from bridge.store.owed import owed_store_of
from connectors.files.connector import FILES, FilesConnector
from connectors.files.options import FilesOptions
from tests.support.daemon import free_port
from tests.support.files_ftp import FTP_PASSWORD, HEADER, ftp_server

ROWS = (
    f"{HEADER}\n"
    "D1;2600000000001;2026-12-01;A-100;;1;100,00\n"
    "D2;2600000000002;2026-12-01;A-100;;1;5\n"
)


def connector(url: str, **extra: Any) -> FilesConnector:
    """A files connector built as the registry builds it."""
    options = FilesOptions.model_validate({"url": url, **extra})
    return FILES.create("shop", SystemSettings(type="files"), options)


async def test_ftp_lists_reads_and_moves_into_a_done_folder_it_makes(tmp_path: Path) -> None:
    with ftp_server(tmp_path / "ftp") as ftp:
        (ftp.reports / "b.csv").write_text(ROWS, encoding="utf-8")
        (ftp.reports / "a.csv").write_text("x", encoding="utf-8")
        (ftp.reports / "notes.txt").write_text("not a report", encoding="utf-8")
        (ftp.reports / "folder.csv").mkdir()
        shop = connector(ftp.url(), password=FTP_PASSWORD)
        found = await shop.list_reports()
        assert [(f.name, f.size) for f in found] == [("a.csv", 1), ("b.csv", len(ROWS))]
        assert await shop.read_report("b.csv") == ROWS.encode()
        assert await shop.finish_report("b.csv") == "done/b.csv"
        assert await shop.finish_report("a.csv") == "done/a.csv"  # the folder is there now
        assert sorted(p.name for p in (ftp.reports / "done").iterdir()) == ["a.csv", "b.csv"]
        assert await shop.list_reports() == []
        assert await shop.probe() == "0 file(s) matching '*.csv'"


async def test_ftp_refusals_are_permanent_and_a_server_away_is_transient(tmp_path: Path) -> None:
    with ftp_server(tmp_path / "ftp") as ftp:
        wrong = connector(ftp.url(), password="not-the-password")
        with pytest.raises(PermanentError, match="530"):
            await wrong.list_reports()
        shop = connector(ftp.url(), password=FTP_PASSWORD)
        with pytest.raises(PermanentError, match="550"):
            await shop.read_report("gone.csv")
    away = connector(f"ftp://shop@127.0.0.1:{free_port()}/reports", password=FTP_PASSWORD)
    with pytest.raises(TransientError, match="refused"):
        await away.list_reports()


async def test_a_local_folder_marks_finished_files(tmp_path: Path) -> None:
    (tmp_path / "r.csv").write_text(ROWS, encoding="utf-8")
    shop = connector(f"file://{tmp_path}", done_dir=None, mark=".done")
    assert [f.name for f in await shop.list_reports()] == ["r.csv"]
    assert await shop.finish_report("r.csv") == "r.csv.done"
    assert (tmp_path / "r.csv.done").read_text(encoding="utf-8") == ROWS
    assert await shop.list_reports() == []
    with pytest.raises(TransientError, match=r"r\.csv"):
        await shop.read_report("r.csv")


async def test_the_watcher_waits_for_a_growing_file_and_owes_each_document_once(
    tmp_path: Path,
) -> None:
    store = MemoryStore(lease_seconds=30)
    await store.open()
    owed = OwedSweeper(owed_store_of(store), Handlers(), "test")  # not started: calls wait
    records = customer_records_of(store)
    shop = connector(f"file://{tmp_path}", settle_seconds=0.3)
    watcher = FileWatcher(shop, "onec", records, owed)
    growing = tmp_path / "growing.csv"
    growing.write_text(HEADER + "\n", encoding="utf-8")

    async def upload_rest() -> None:
        await asyncio.sleep(0.1)
        growing.write_text(ROWS, encoding="utf-8")

    writer = asyncio.create_task(upload_rest())
    assert await watcher.poll_once() == []  # its size changed while we looked
    await writer
    (key,) = await watcher.poll_once()
    assert (tmp_path / "done" / "growing.csv").exists()
    calls = await owed.store.owed_for(key)
    assert [(c.operation, c.operation_id, c.system) for c in calls] == [
        (ACCRUE, sale_operation_id("shop", "D1"), "onec"),
        (ACCRUE, sale_operation_id("shop", "D2"), "onec"),
    ]
    assert calls[0].arguments["lines"] == [
        {"sku": "A-100", "group": None, "quantity": "1", "amount": "100.00"}
    ]

    # Dropped again under its old name, and with a third document under a new one.
    (tmp_path / "growing.csv").write_text(ROWS, encoding="utf-8")
    more = ROWS + "D3;2600000000003;2026-12-01;A-100;;1;7\n"
    (tmp_path / "renamed.csv").write_text(more, encoding="utf-8")
    again, renamed = await watcher.poll_once()
    assert again == key  # the same bytes: the same record, nothing new owed
    shown = {r.body["name"]: r for r in await records.list_records(RecordKind.REPORT_FILE)}
    assert (shown["renamed.csv"].body["owed"], shown["renamed.csv"].body["owed_before"]) == (1, 2)
    assert len(await owed.store.owed_for(renamed)) == 1
    assert sale_operation_id("shop", "D1") != sale_operation_id("till", "D1")
    assert len(sale_operation_id("shop", "x" * 500)) <= 64  # 1C's OperationId limit
    await store.close()
