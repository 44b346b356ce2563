"""``bridge notify`` through the real CLI (issue 17): 1,000 phones, the process killed with
SIGKILL mid-way and run again: every phone has exactly one SMS; the default rate holds;
--dry-run sends nothing; bad phone lines are reported by line number and skipped.

The gateway is the sandbox's (texts kept in the store with their reference), read here
straight from the SQLite file the CLI writes.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bridge.settings import StoreSettings
from bridge.store import open_store
from bridge.store.customer_records import RecordKind, customer_records_of
from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import outside_onec_config
from tests.support.daemon import cli_env, free_port, run_cli
from tests.support.sms import sms_provider

TEMPLATE = "Весенние баллы ×2 до 31 мая. Ваша программа лояльности."


def setup(tmp_path: Path, count: int) -> tuple[Path, Path, Path]:
    """config.yaml (SQLite, the sandbox gateway), the template and a phone file with
    ``count`` phones in mixed spellings, a repeat and two bad lines."""
    config = {"store": {"url": f"sqlite:///{tmp_path / 'bridge.db'}"}, "sandbox": {"enabled": True}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    template = tmp_path / "spring.txt"
    template.write_text(TEMPLATE + "\n", encoding="utf-8")
    lines = ["# spring campaign"]
    for n in range(count):
        digits = f"9001{n:06d}"
        lines.append(f"8 ({digits[:3]}) {digits[3:6]}-{digits[6:8]}-{digits[8:]}" if n % 2
                     else f"+7{digits}")  # fmt: skip
    lines[5:5] = ["not a phone", "+7 900 100-00-00", "12345"]  # a repeat of line 2's phone
    phones = tmp_path / "phones.txt"
    phones.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, template, phones


def texts(tmp_path: Path) -> list[tuple[str, str, float, str | None]]:
    """(phone, text, at, reference) of every sandbox SMS so far."""
    try:
        with sqlite3.connect(tmp_path / "bridge.db", timeout=10) as db:
            rows = db.execute("SELECT phone, text, at, reference FROM sandbox_messages").fetchall()
    except sqlite3.OperationalError:  # the CLI has not made its tables yet
        return []
    return [(str(p), str(t), float(a), r) for p, t, a, r in rows]


async def notify(config: Path, template: Path, phones: Path, *extra: str) -> dict[str, Any]:
    code, out, err = await run_cli(
        config, "notify", "--template", str(template), "--phones", str(phones), "--json", *extra
    )
    assert code == 0, (out, err)
    found: dict[str, Any] = json.loads(out)
    return found


async def test_killed_mid_way_and_resumed_every_phone_has_exactly_one_sms(
    tmp_path: Path,
) -> None:
    config, template, phones = setup(tmp_path, 1000)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "--config", str(config), "notify",
        "--template", str(template), "--phones", str(phones), "--rate", "400",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=cli_env(), cwd=str(tmp_path),
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(texts(tmp_path)) < 300:
        assert proc.returncode is None, "the run ended before it was killed"
        assert time.monotonic() < deadline, "no progress"
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    first = len(texts(tmp_path))
    assert 300 <= first < 1000, first

    resumed = await notify(config, template, phones, "--rate", "400")
    counts = resumed["counts"]
    assert counts.get("sent", 0) + counts.get("already_sent", 0) == 1000, counts
    assert counts.get("already_sent", 0) >= first - 1, counts  # one may have been mid-send
    assert "unknown" not in counts and "failed" not in counts  # the sandbox can tell
    assert resumed["phones"] == 1000 and resumed["repeated"] == 1
    assert [b["line"] for b in resumed["bad_lines"]] == [6, 8]
    sent = texts(tmp_path)
    by_phone: dict[str, int] = {}
    for phone, text, _at, reference in sent:
        assert text == TEMPLATE
        assert reference == f"{resumed['notice']}:{phone}"
        by_phone[phone] = by_phone.get(phone, 0) + 1
    assert len(by_phone) == 1000 and set(by_phone.values()) == {1}
    assert "+79001000999" in by_phone and "+79001000001" in by_phone

    again = await notify(config, template, phones)  # the same template: nothing more
    assert again["counts"] == {"already_sent": 1000}
    assert len(texts(tmp_path)) == 1000


async def test_the_default_rate_is_twenty_a_second(tmp_path: Path) -> None:
    config, template, phones = setup(tmp_path, 30)
    result = await notify(config, template, phones)
    assert result["counts"] == {"sent": 30}
    moments = sorted(at for _p, _t, at, _r in texts(tmp_path))
    # 30 sends 50 ms apart: at least 29 gaps (the first turn is at once).
    assert moments[-1] - moments[0] >= 29 * 0.05 * 0.95, moments[-1] - moments[0]


async def test_dry_run_counts_and_sends_nothing_bad_lines_named(tmp_path: Path) -> None:
    config, template, phones = setup(tmp_path, 10)
    code, out, err = await run_cli(
        config, "notify", "--template", str(template), "--phones", str(phones), "--dry-run"
    )
    assert code == 0, err
    assert f"{phones}:6: skipped" in out and f"{phones}:8: skipped" in out
    assert "10 phones: 10 would be sent; 2 bad lines skipped; 1 repeated phones" in out
    assert texts(tmp_path) == []
    other = tmp_path / "other.txt"
    other.write_text("Другой текст\n", encoding="utf-8")
    assert (await notify(config, template, phones))["counts"] == {"sent": 10}
    # Another template is another notice: the same phones get it once too.
    assert (await notify(config, other, phones))["counts"] == {"sent": 10}
    assert (await notify(config, other, phones, "--dry-run"))["counts"] == {"already_sent": 10}


async def test_mistakes_are_named(tmp_path: Path) -> None:
    config, template, phones = setup(tmp_path, 1)
    bad = tmp_path / "bad.txt"
    bad.write_text("Привет, {name}!", encoding="utf-8")
    code, _out, err = await run_cli(
        config, "notify", "--template", str(bad), "--phones", str(phones)
    )
    assert code == 2 and "--template: unknown placeholder {name}" in err, err
    code, _out, err = await run_cli(
        config, "notify", "--template", str(template), "--phones", str(phones), "--rate", "0"
    )
    assert code == 2 and "--rate" in err, err
    code, _out, err = await run_cli(config, "notify", "--template", str(template))
    assert code == 2 and "--phones" in err, err
    code, _out, err = await run_cli(
        config, "notify", "--template", str(template), "--status", "accumulate_only"
    )
    assert code == 1 and "bonus.master is not set" in err, err
    production = tmp_path / "production.yaml"
    production.write_text(f"store: {{url: 'sqlite:///{tmp_path / 'p.db'}'}}\n", encoding="utf-8")
    code, _out, err = await run_cli(
        production, "notify", "--template", str(template), "--phones", str(phones)
    )
    assert code == 1 and "no text would reach anyone" in err, err


async def test_status_accumulate_only_texts_the_known_phones_with_incomplete_questionnaires(
    tmp_path: Path,
) -> None:
    onec = OnecEmulator(port=free_port())
    await onec.start()
    incomplete, complete, unknown = "+79002220001", "+79002220002", "+79002220003"
    verified = "+79000000001"  # the sandbox seed's, never asked its birth date
    for phone in (incomplete, complete):
        onec.ledger.register_customer(f"reg-{phone}", phone, "Анна Новикова")
    cid = onec.ledger.find_customer(phone=complete).customer_id
    filled = {"last_name": "Новикова", "first_name": "Анна", "birth_date": "1990-05-01"}
    onec.ledger.save_profile("profile-1", cid, json.dumps(filled))
    try:
        async with sms_provider() as provider:
            settings = outside_onec_config(tmp_path, onec.url, timeout_seconds=2)
            settings["bonus"]["sms"] = provider.gateway()
            config = tmp_path / "config.yaml"
            config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
            store = open_store(StoreSettings(url=settings["store"]["url"]))
            await store.open()
            records = customer_records_of(store)
            for phone in (incomplete, complete, unknown):
                await records.add_record(RecordKind.REGISTRATION, phone, phone, "notified", {})
            await records.add_record(RecordKind.VERIFICATION, "vrf_1", verified, "confirmed", {})
            await records.add_record(RecordKind.VERIFICATION, "vrf_2", complete, "sent", {})
            await store.close()
            template = tmp_path / "fill-in.txt"
            template.write_text("Заполните анкету: {link}\n", encoding="utf-8")
            code, out, err = await run_cli(
                config, "notify", "--template", str(template), "--status", "accumulate_only",
                "--json",
            )  # fmt: skip
            assert code == 0, err
            assert json.loads(out)["counts"] == {"sent": 2}
            assert len(provider.texts) == 2
            assert all("proof=" in text for text in provider.texts)
            onec.faults.set(outage=True)
            code, _out, err = await run_cli(
                config, "notify", "--template", str(template), "--status", "accumulate_only"
            )
            assert code == 1 and "--status accumulate_only:" in err and "onec" in err, err
    finally:
        await onec.stop()
