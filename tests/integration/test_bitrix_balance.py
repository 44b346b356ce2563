"""The master's balance mirrored into the Bitrix contact field (issue 7, acceptance 4).

1C is the master; the Bitrix sandbox portal holds the customer as a contact with the same
phone. After a reservation is committed (and after it is released), the contact's
``UF_CRM_BONUS_BALANCE`` equals what 1C says, written in ``batch`` calls.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.integration.test_reservations import RSV, held, last_code, order, reserve
from tests.support.bonus import Bonus, BonusFactory, bonus_config, bonus_factory
from tests.support.daemon import free_port
from tests.support.emulators import bitrix_emulator, onec_emulator
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name

FIELD = "UF_CRM_BONUS_BALANCE"


def with_bitrix(tmp_path: Path) -> dict[str, Any]:
    config = bonus_config(tmp_path, "onec")
    config["systems"]["bitrix"] = {
        "type": "bitrix",
        "webhook": {"auth": "connector", "token": "sandbox-bitrix-app-token"},
        "options": {
            "url": f"http://127.0.0.1:{free_port()}/rest/1/sandbox0webhook1/",
            "balance_field": FIELD,
            "poll_interval": 0,
        },
    }
    return config


def contact_balance(bonus: Bonus, phone: str = "+79000000001") -> Decimal:
    contacts = bitrix_emulator(bonus.runtime).snapshot()["contacts"]
    [found] = [
        c for c in contacts.values() if any(p["VALUE"] == phone for p in c.get("PHONE") or [])
    ]
    return Decimal(str(found[FIELD]))


def onec_balance(bonus: Bonus) -> Decimal:
    balances = onec_emulator(bonus.runtime).ledger.snapshot()["balances"]
    return Decimal(next(iter(balances.values()))[0])


async def test_the_contact_field_follows_the_master_after_commit_and_release(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=with_bitrix(tmp_path))
    portal = bitrix_emulator(bonus.runtime)
    assert contact_balance(bonus) == Decimal("1000")  # as seeded

    rsv = await held(bonus, "250.00", "onec")
    status, done = await bonus.call("POST", f"{RSV}/{rsv['id']}/commit", {})
    assert (status, done["status"]) == (200, "committed"), done

    async def mirrored() -> bool:
        return contact_balance(bonus) == Decimal("750")

    await eventually(mirrored)
    assert onec_balance(bonus) == Decimal("750.00")
    calls = portal.snapshot()["stats"]["calls"]
    assert calls.get("crm.duplicate.findbycomm", 0) >= 1 and calls.get("crm.item.update", 0) >= 1
    by_method = portal.snapshot()["stats"]["by_method"]
    assert set(by_method) == {"batch"}, by_method  # one request per write, in batch

    # A second reservation released: the field shows the master's balance again.
    status, rsv = await reserve(bonus, "100.00", "onec", order=order("onec", 2))
    assert status == 201, rsv
    code, _ = await last_code(bonus)
    status, _ = await bonus.call("POST", f"{RSV}/{rsv['id']}/confirm", {"code": code})
    assert status == 200

    async def held_mirrored() -> bool:  # a hold leaves the balance as it is
        return contact_balance(bonus) == onec_balance(bonus) == Decimal("750")

    await eventually(held_mirrored)
    status, _ = await bonus.call("POST", f"{RSV}/{rsv['id']}/cancel", {})
    assert status == 200
    await eventually(mirrored)
    assert onec_balance(bonus) == contact_balance(bonus)
