"""Sales reports dropped on a real FTP server on loopback accrue at the 1C sandbox by the
rules, each document once (issue 18, "A file source")."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from bridge.files.watcher import FileWatcher
from bridge.owed.calls import OwedStatus
from bridge.rules.loader import load_rules
from bridge.runtime import Runtime, build_runtime
from bridge.settings_loader import read_settings
from bridge.store.customer_records import RecordKind, customer_records_of
from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import outside_onec_config
from tests.support.daemon import ROOT, free_port
from tests.support.files_ftp import (
    NO_SMS,
    FtpServer,
    card_number,
    card_phone,
    csv_text,
    expected_by_card,
    files_system,
    ftp_server,
    sales,
)

SILVER = "2000000000022"  # the sandbox's "Серебряный" customer: the silver multiplier


def config_file(tmp_path: Path, onec_url: str, ftp: FtpServer) -> Path:
    """A bridge with 1C outside as master, the sandbox rules and the FTP files source."""
    shutil.copy(ROOT / "rules" / "sandbox.yaml", tmp_path / "rules.yaml")
    config = outside_onec_config(tmp_path, onec_url, sms=NO_SMS)
    config["bonus"]["rules"] = {"file": "rules.yaml"}
    config["systems"]["shop"] = files_system(ftp)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return path


async def settled(runtime: Runtime, seconds: float = 120) -> None:
    """Until no owed call is pending or in flight."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        counts = await runtime.owed.store.count_owed()
        open_ = sum(
            n for (_s, st), n in counts.items() if st in (OwedStatus.PENDING, OwedStatus.IN_FLIGHT)
        )
        if open_ == 0:
            return
        assert asyncio.get_running_loop().time() < deadline, counts
        await asyncio.sleep(0.2)


async def file_record(runtime: Runtime, name: str) -> Any:
    """The record of the file called ``name``."""
    records = await customer_records_of(runtime.store).list_records(
        RecordKind.REPORT_FILE, limit=100
    )
    (found,) = [r for r in records if r.body["name"] == name]
    return found


async def test_a_thousand_documents_accrue_by_the_rules_once_and_bad_lines_are_kept_out(
    tmp_path: Path,
) -> None:
    onec = OnecEmulator(port=free_port())
    await onec.start()
    cards = [card_number(i) for i in range(299)] + [SILVER]
    for i, card in enumerate(cards[:-1]):
        onec.ledger.issue_card(card, "0.00", phone=card_phone(i))
    book, _problems = load_rules(ROOT / "rules" / "sandbox.yaml")
    assert book is not None
    levels = {
        c: onec.ledger.balance(onec.ledger.find_customer(card=c).customer_id).level for c in cards
    }
    assert levels[SILVER] == "Серебряный"
    before = {c: onec.ledger.get_card(c).balance for c in cards}
    docs = sales(1000, cards, seed=18)
    with ftp_server(tmp_path / "ftp") as ftp:
        (ftp.reports / "sales-2026-12-06.csv").write_text(csv_text(docs), encoding="utf-8")
        runtime = build_runtime(read_settings(config_file(tmp_path, onec.url, ftp), env={}))
        await runtime.start()  # the watcher's first poll comes at once; the next in an hour
        try:
            (watcher,) = runtime.file_watchers
            await _until_done(runtime, "sales-2026-12-06.csv")
            await settled(runtime)
            expected = expected_by_card(book, docs, levels)
            rose = {c: onec.ledger.get_card(c).balance - before[c] for c in cards}
            assert rose == {c: expected.get(c, Decimal("0.00")) for c in cards}
            assert sum(expected.values()) > 0
            first = await file_record(runtime, "sales-2026-12-06.csv")
            assert first.status == "done"
            assert (first.body["documents"], first.body["owed"], first.body["bad_line_count"]) == (
                1000,
                1000,
                0,
            )
            assert (ftp.reports / "done" / "sales-2026-12-06.csv").exists()
            assert not (ftp.reports / "sales-2026-12-06.csv").exists()

            # The same file dropped again under another name: nothing more.
            (ftp.reports / "copy-of-sales.csv").write_text(csv_text(docs), encoding="utf-8")
            await watcher.poll_once()
            await settled(runtime)
            assert {c: onec.ledger.get_card(c).balance - before[c] for c in cards} == rose
            again = await file_record(runtime, "copy-of-sales.csv")
            assert (again.status, again.body["owed"], again.body["owed_before"]) == (
                "done",
                0,
                1000,
            )

            await _bad_lines_are_kept_out(runtime, watcher, ftp, onec, book, levels, cards)
        finally:
            await runtime.stop()
    await onec.stop()


async def _bad_lines_are_kept_out(
    runtime: Runtime,
    watcher: FileWatcher,
    ftp: FtpServer,
    onec: OnecEmulator,
    book: Any,
    levels: dict[str, str | None],
    cards: list[str],
) -> None:
    before = {c: onec.ledger.get_card(c).balance for c in cards}
    good = sales(40, cards[:40], seed=7, prefix="B")
    bad = [
        f"B-bad-1;{cards[50]};2026-12-01;A-100;;1;12,3x",
        "B-bad-2;;2026-12-01;A-100;;1;100,00",
        f"B-bad-3;{cards[51]};06.12.2026;A-100;;1;100,00",
    ]
    (ftp.reports / "with-bad-lines.csv").write_text(csv_text(good, bad), encoding="utf-8")
    await watcher.poll_once()
    await settled(runtime)
    record = await file_record(runtime, "with-bad-lines.csv")
    rows = sum(len(d.lines) for d in good)
    assert record.body["bad_lines"] == [
        f"with-bad-lines.csv:{rows + 2}:amount: '12,3x' is not a number",
        f"with-bad-lines.csv:{rows + 3}:card: is empty: whose sale is it?",
        f"with-bad-lines.csv:{rows + 4}:date: '06.12.2026' is not a date like %Y-%m-%d",
    ]
    assert (record.body["documents"], record.body["owed"], record.body["bad_line_count"]) == (
        40,
        40,
        3,
    )
    expected = expected_by_card(book, good, levels)
    assert {c: onec.ledger.get_card(c).balance - before[c] for c in cards} == {
        c: expected.get(c, Decimal("0.00")) for c in cards
    }


async def _until_done(runtime: Runtime, name: str, seconds: float = 60) -> None:
    records = customer_records_of(runtime.store)
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        found = await records.list_records(RecordKind.REPORT_FILE, status="done", limit=100)
        if any(r.body["name"] == name for r in found):
            return
        assert asyncio.get_running_loop().time() < deadline, "the file was never finished"
        await asyncio.sleep(0.1)


async def test_an_unknown_card_leaves_its_accrual_dead_until_the_file_comes_again(
    tmp_path: Path,
) -> None:
    onec = OnecEmulator(port=free_port())
    await onec.start()
    known, later = card_number(1), card_number(2)
    onec.ledger.issue_card(known, "0.00", phone=card_phone(1))
    docs = sales(4, [known, later], seed=3, prefix="U")
    book, _problems = load_rules(ROOT / "rules" / "sandbox.yaml")
    assert book is not None
    expected = expected_by_card(book, docs, {})
    with ftp_server(tmp_path / "ftp") as ftp:
        (ftp.reports / "first.csv").write_text(csv_text(docs), encoding="utf-8")
        runtime = build_runtime(read_settings(config_file(tmp_path, onec.url, ftp), env={}))
        await runtime.start()
        try:
            (watcher,) = runtime.file_watchers
            await _until_done(runtime, "first.csv")
            await settled(runtime)
            assert onec.ledger.get_card(known).balance == expected[known]
            first = await file_record(runtime, "first.csv")
            calls = await runtime.owed.store.owed_for(first.key)
            assert sorted(str(c.status) for c in calls) == ["dead", "dead", "done", "done"]

            onec.ledger.issue_card(later, "0.00", phone=card_phone(2))  # the card is entered
            (ftp.reports / "again.csv").write_text(csv_text(docs), encoding="utf-8")
            await watcher.poll_once()
            await settled(runtime)
            assert onec.ledger.get_card(known).balance == expected[known]  # not twice
            assert onec.ledger.get_card(later).balance == expected[later]
        finally:
            await runtime.stop()
    await onec.stop()
