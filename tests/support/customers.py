"""A bridge with a 1C (or RetailCRM) master and a site client holding the ``customers``
scope: helpers to prove a phone and call ``/api/v1/customers`` with the proof."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.bonus import Bonus, BonusFactory, bonus_config

SITE_TOKEN = "site-customers-token-0001"
SITE = {"Authorization": f"Bearer {SITE_TOKEN}"}
BASE = "/api/v1/customers"


def customers_config(tmp_path: Path, master: str = "onec", **customers: Any) -> dict[str, Any]:
    """``bonus_config`` with a site client of scope ``customers`` and ``customers`` merged."""
    config = bonus_config(tmp_path, master)
    config["clients"]["site"] = {"token": SITE_TOKEN, "scopes": ["customers"]}
    if customers:
        config["customers"] = customers
    return config


async def customers_bridge(
    factory: BonusFactory, tmp_path: Path, master: str = "onec", **customers: Any
) -> Bonus:
    """A started bridge of ``customers_config``."""
    return await factory(master, config=customers_config(tmp_path, master, **customers))


async def last_text(bonus: Bonus, phone: str) -> str:
    """The newest sandbox SMS to ``phone``."""
    status, body = await bonus.call("GET", f"/sandbox/messages?phone={phone}&limit=1")
    assert status == 200, body
    assert body["messages"], f"no SMS to {phone}"
    return str(body["messages"][0]["text"])


def code_in(text: str) -> str:
    """The digits of a code's SMS."""
    return next(word for word in text.replace(":", " ").replace(".", " ").split() if word.isdigit())


async def prove(bonus: Bonus, phone: str) -> str:
    """Verify ``phone`` through the API and return the proof."""
    status, started = await bonus.call("POST", f"{BASE}/verify", {"phone": phone}, SITE)
    assert status == 201, started
    code = code_in(await last_text(bonus, phone))
    status, proved = await bonus.call(
        "POST", f"{BASE}/verify/{started['verification_id']}/confirm", {"code": code}, SITE
    )
    assert status == 200, proved
    return str(proved["proof"])


def with_proof(proof: str) -> dict[str, str]:
    """The site's headers with a customer's proof."""
    return SITE | {"X-Customer-Proof": proof}
