"""A sales report cut short by ``kill -9`` of the daemon: after the restart each document
has accrued once, no card credited twice (issue 18, real CLI); ``bridge files list`` and
``bridge files show`` tell support what became of the file.

``bridge serve`` runs in a subprocess; the 1C emulator (slowed, so the file is mid-way when
the daemon dies) and the FTP server run in the test process and keep their state.
"""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from bridge.rules.loader import load_rules
from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import outside_onec_config
from tests.support.daemon import ROOT, Daemon, cli_json, free_port, run_cli
from tests.support.files_ftp import (
    NO_SMS,
    card_number,
    card_phone,
    csv_text,
    expected_by_card,
    files_system,
    ftp_server,
    sales,
)

NAME = "sales-kill9.csv"


async def test_a_file_cut_short_by_kill9_accrues_each_document_once(tmp_path: Path) -> None:
    onec = OnecEmulator(port=free_port())
    await onec.start()
    cards = [card_number(i) for i in range(60)]
    for i, card in enumerate(cards):
        onec.ledger.issue_card(card, "0.00", phone=card_phone(i))
    book, _ = load_rules(ROOT / "rules" / "sandbox.yaml")
    assert book is not None
    docs = sales(200, cards, seed=9, prefix="K")
    expected = expected_by_card(book, docs, {})
    with ftp_server(tmp_path / "ftp") as ftp:
        (ftp.reports / NAME).write_text(csv_text(docs), encoding="utf-8")
        shutil.copy(ROOT / "rules" / "sandbox.yaml", tmp_path / "rules.yaml")
        port = free_port()
        config: dict[str, Any] = outside_onec_config(tmp_path, onec.url, sms=NO_SMS)
        config["bonus"]["rules"] = {"file": "rules.yaml"}
        config["systems"]["shop"] = files_system(ftp, poll_interval=1)
        config["http"] = {"port": port}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
        daemon = Daemon(path, port)
        try:
            onec.faults.set(latency=0.03)  # each 1C call 30 ms: the file takes seconds
            await daemon.start()
            await _until(lambda: _credited(onec, cards) >= 5, 30)
            await daemon.kill9()
            at_kill = _credited(onec, cards)
            assert at_kill < len(cards), "the kill came after the whole file: it proves nothing"
            onec.faults.set(latency=0)

            await daemon.start()
            rose = {c: Decimal("0.00") for c in cards}

            def all_in() -> bool:
                rose.update({c: onec.ledger.get_card(c).balance for c in cards})
                return rose == {c: expected.get(c, Decimal("0.00")) for c in cards}

            await _until(all_in, 60)
            await asyncio.sleep(1.5)  # a poll more: nothing further lands
            assert all_in(), rose

            listed = await cli_json(path, "files", "list", "--system", "shop")
            assert [
                (f["name"], f["status"], f["documents"], f["accruals"]["done"]) for f in listed
            ] == [(NAME, "done", 200, 200)]
            code, out, _err = await run_cli(path, "files", "list")
            assert code == 0
            assert NAME in out
            (shown,) = await cli_json(path, "files", "show", NAME)
            assert shown["accruals"]["done"] == 200
            assert shown["bad_line_count"] == 0
            assert (ftp.reports / "done" / NAME).exists()
            code, out, _err = await run_cli(path, "files", "show", NAME)
            assert code == 0
            assert "accruals: 200 done, 0 pending, 0 dead" in out
            code, _out, err = await run_cli(path, "files", "show", "nothing.csv")
            assert code == 1
            assert "no file named 'nothing.csv'" in err
        finally:
            await daemon.stop()
    await onec.stop()


def _credited(onec: OnecEmulator, cards: list[str]) -> int:
    """Cards whose balance has risen so far."""
    return sum(1 for c in cards if onec.ledger.get_card(c).balance > 0)


async def _until(done: Any, seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "waited in vain"
        await asyncio.sleep(0.05)
