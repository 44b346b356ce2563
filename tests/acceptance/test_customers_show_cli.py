"""``bridge customers show PHONE`` through the real CLI (issue 17): the cards 1C ties to the
phone (a 1C emulator in the test process, the seed's +79000000005 with 120.50 and 80.00),
what the bridge kept about the phone, the phone masked and never a code's digest; with 1C
down the records still show and the cards say why they are missing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.settings import StoreSettings
from bridge.store import open_store
from bridge.store.customer_records import RecordKind, customer_records_of
from connectors.onec.emulator import OnecEmulator
from tests.support.bonus import outside_onec_config
from tests.support.daemon import free_port, run_cli

PHONE = "+79000000005"
OTHER = "+79000000001"


@pytest.fixture
async def onec() -> AsyncIterator[OnecEmulator]:
    emulator = OnecEmulator(port=free_port())
    await emulator.start()
    yield emulator
    await emulator.stop()


async def stored_story(tmp_path: Path, onec_url: str) -> Path:
    """config.yaml with 1C as master, and a story of PHONE (and one of OTHER) in its store."""
    config = tmp_path / "config.yaml"
    nowhere = {"type": "http", "url": f"http://127.0.0.1:{free_port()}/send"}
    sms = {"gateway": nowhere | {"json_body": {"to": "{phone}", "text": "{text}"}}}
    settings = outside_onec_config(tmp_path, onec_url, timeout_seconds=2, sms=sms)
    config.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    store = open_store(StoreSettings(url=settings["store"]["url"]))
    await store.open()
    try:
        records = customer_records_of(store)
        await records.add_record(
            RecordKind.VERIFICATION, "vrf_0001", PHONE, "sent",
            {"digest": "d1g3st-never-shown", "attempts": 1, "sent_at": 1_800_000_000.0},
        )  # fmt: skip
        merge = {"main": "2000000000029", "main_set": True,
                 "cards": {"2000000000012": {"state": "moved", "amount": "120.50"}}}  # fmt: skip
        await records.add_record(RecordKind.MERGE, "mrg_0001", PHONE, "done", merge)
        await records.add_record(
            RecordKind.REGISTRATION, PHONE, PHONE, "notified",
            {"source": "retailcrm", "order": "5001", "customer_id": "c-9"},
        )  # fmt: skip
        await records.add_record(
            RecordKind.NOTICE, f"ntc_00ff:{PHONE}", PHONE, "sent", {"notice": "ntc_00ff"}
        )
        await records.add_record(RecordKind.REGISTRATION, OTHER, OTHER, "notified", {})
    finally:
        await store.close()
    return config


async def show(config: Path, *extra: str) -> tuple[int, str, str]:
    return await run_cli(config, "customers", "show", "8 (900) 000-00-05", *extra)


async def test_cards_from_1c_and_the_phones_records(onec: OnecEmulator, tmp_path: Path) -> None:
    config = await stored_story(tmp_path, onec.url)
    code, out, err = await show(config, "--json")
    assert code == 0, err
    view: dict[str, Any] = json.loads(out)
    assert view["phone"] == "+7 900 ***-**-05"
    balances = sorted(c["balance"] for c in view["cards"])
    assert balances == ["120.50", "80.00"], view["cards"]
    assert [c["main"] for c in view["cards"]].count(True) == 1
    assert [m["merge_id"] for m in view["merges"]] == ["mrg_0001"]
    assert view["merges"][0]["cards"] == [
        {"card": "2000000000012", "state": "moved", "amount": "120.50"}
    ]
    (registration,) = view["registrations"]
    assert registration["key"] == "+7 900 ***-**-05" and registration["status"] == "notified"
    (verification,) = view["verifications"]
    assert verification["attempts"] == 1 and "digest" not in verification
    assert verification["sent_at"].startswith("2027-01-15T")
    assert [n["key"] for n in view["notices"]] == ["ntc_00ff:+7 900 ***-**-05"]
    assert PHONE not in out and "d1g3st" not in out and OTHER not in out

    code, text, err = await show(config)
    assert code == 0, err
    assert text.startswith("customer +7 900 ***-**-05")
    assert "120.50" in text and "80.00" in text and "mrg_0001" in text
    assert "d1g3st" not in text and PHONE not in text


async def test_with_1c_down_the_records_show_and_the_cards_say_why(
    onec: OnecEmulator, tmp_path: Path
) -> None:
    config = await stored_story(tmp_path, onec.url)
    onec.faults.set(outage=True)
    code, out, err = await show(config, "--json")
    assert code == 0, err
    view = json.loads(out)
    assert view["cards"] is None
    assert "onec" in view["cards_error"] and "cards not shown" in view["cards_error"]
    assert len(view["merges"]) == 1 and len(view["notices"]) == 1
    code, text, _err = await show(config)
    assert "cards: unknown (" in text


async def test_a_bad_phone_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("{}\n", encoding="utf-8")
    code, _out, err = await run_cli(config, "customers", "show", "12345")
    assert code == 2 and "phone:" in err, err
