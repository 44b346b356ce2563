"""Proving a phone by SMS (issue 17): a code to the phone, traded once for a short-lived
signed proof; the reservations' code rules; a missing, altered, expired proof is 401; no
log line holds a code or a proof."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import structlog
from aiohttp import web

from bridge.logs import configure_logging
from bridge.settings import LogFormat, LogSettings
from tests.support.bonus import TILL, BonusFactory, bonus_factory
from tests.support.customers import (
    BASE,
    SITE,
    code_in,
    customers_bridge,
    customers_config,
    last_text,
    with_proof,
)

__all__ = ["bonus_factory"]  # the fixture, used by name

PHONE = "+79000000001"


async def test_a_right_code_gives_a_proof_once_and_the_proof_opens_the_cards(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    stream = io.StringIO()
    configure_logging(LogSettings(level="debug", format=LogFormat.JSON), stream=stream, cache=False)
    try:
        bonus = await customers_bridge(bonus_factory, tmp_path)
        status, started = await bonus.call(
            "POST", f"{BASE}/verify", {"phone": "8 900 000-00-01"}, SITE
        )
        assert status == 201, started
        assert started["code_sent_to"] == "+7 900 ***-**-01"
        assert started["verification_id"].startswith("vrf_")
        text = await last_text(bonus, PHONE)
        code = code_in(text)
        confirm = f"{BASE}/verify/{started['verification_id']}/confirm"
        wrong = "000000" if code != "000000" else "111111"
        status, refused = await bonus.call("POST", confirm, {"code": wrong}, SITE)
        assert (status, refused["code"], refused["attempts_left"]) == (422, "invalid_code", 4)
        status, proved = await bonus.call("POST", confirm, {"code": code}, SITE)
        assert status == 200, proved
        proof = proved["proof"]
        status, again = await bonus.call("POST", confirm, {"code": code}, SITE)
        assert (status, again["code"]) == (409, "verification_used")  # single use
        status, cards = await bonus.call("GET", f"{BASE}/cards", None, with_proof(proof))
        assert status == 200, cards
        assert cards["phone"] == "+7 900 ***-**-01"
        assert isinstance(cards["cards"], list)
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert any("phone_verified" in line for line in lines)  # the log was captured
    for secret in (code, proof, proof.split(".")[2]):
        leaking = [line for line in lines if secret in line]
        assert not leaking, leaking


async def test_five_wrong_codes_lock_the_verification(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    status, started = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
    code = code_in(await last_text(bonus, PHONE))
    confirm = f"{BASE}/verify/{started['verification_id']}/confirm"
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1):
        status, refused = await bonus.call("POST", confirm, {"code": wrong}, SITE)
        assert (status, refused["attempts_left"]) == (422, left)
    status, locked = await bonus.call("POST", confirm, {"code": wrong}, SITE)
    assert (status, locked["code"]) == (409, "locked")
    status, late = await bonus.call("POST", confirm, {"code": code}, SITE)
    assert (status, late["code"]) == (409, "locked")  # even the right code


async def test_a_new_code_waits_for_the_cooldown_and_the_phone_cap_holds(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config_rules = {"resend_cooldown_seconds": 0, "max_codes_per_phone": 2}
    config = customers_config(tmp_path)
    config["bonus"]["reservations"] = config_rules
    bonus = await bonus_factory("onec", config=config)
    for _ in range(2):
        status, _ = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
        assert status == 201
    status, capped = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
    assert (status, capped["code"]) == (429, "too_many_codes")
    assert capped["_retry_after"] is not None


async def test_the_cooldown_refuses_a_second_code_at_once(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    status, _ = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
    assert status == 201
    status, soon = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
    assert (status, soon["code"]) == (429, "resend_too_soon")
    assert int(soon["_retry_after"]) >= 1


async def test_missing_altered_expired_proofs_and_a_missing_scope_are_refused(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await customers_bridge(bonus_factory, tmp_path)
    status, none = await bonus.call("GET", f"{BASE}/cards", None, SITE)
    assert (status, none["code"]) == (401, "proof_required")
    customers = bonus.runtime.customers
    assert customers is not None
    good, _ = customers.proofs.issue(PHONE)
    head, body, signature = good.split(".")
    altered = f"{head}.{body[:-2]}{'A' if body[-2] != 'A' else 'B'}{body[-1]}.{signature}"
    for bad in (altered, "v1.x.y", "not-a-proof", good + "x", f"{head}.{body}.é"):
        status, refused = await bonus.call("GET", f"{BASE}/cards", None, with_proof(bad))
        assert (status, refused["code"]) == (401, "proof_invalid"), bad
    expired, _ = customers.proofs.issue(PHONE, ttl_seconds=-1)
    status, late = await bonus.call("GET", f"{BASE}/cards", None, with_proof(expired))
    assert (status, late["code"]) == (401, "proof_expired")
    status, forbidden = await bonus.call(
        "GET", f"{BASE}/cards", None, TILL | {"X-Customer-Proof": good}
    )
    assert (status, forbidden["code"]) == (403, "forbidden")  # the till lacks the scope
    status, bad_phone = await bonus.call("POST", f"{BASE}/verify", {"phone": "12"}, SITE)
    assert (status, bad_phone["field"]) == (422, "phone")


async def test_a_newer_code_supersedes_the_older_one(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = customers_config(tmp_path)
    config["bonus"]["reservations"] = {"resend_cooldown_seconds": 0}
    bonus = await bonus_factory("onec", config=config)
    status, first = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
    first_code = code_in(await last_text(bonus, PHONE))
    status, second = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
    assert status == 201, second
    second_code = code_in(await last_text(bonus, PHONE))
    status, old = await bonus.call(
        "POST", f"{BASE}/verify/{first['verification_id']}/confirm", {"code": first_code}, SITE
    )
    assert (status, old["code"]) == (409, "superseded")
    status, proved = await bonus.call(
        "POST", f"{BASE}/verify/{second['verification_id']}/confirm", {"code": second_code}, SITE
    )
    assert status == 200, proved


async def test_a_code_the_provider_refuses_is_422_not_a_retry(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    app = web.Application()

    async def refuse(_request: web.Request) -> web.Response:
        return web.json_response({"error": "number blocked"}, status=400)

    app.router.add_post("/send", refuse)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        config = customers_config(tmp_path)
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/send"
        gateway = {"type": "http", "url": url, "json_body": {"to": "{phone}", "text": "{text}"}}
        config["bonus"]["sms"] = {"gateway": gateway}
        bonus = await bonus_factory("onec", config=config)
        status, refused = await bonus.call("POST", f"{BASE}/verify", {"phone": PHONE}, SITE)
        assert (status, refused["code"], refused["field"]) == (422, "sms_refused", "phone")
        assert refused["_retry_after"] is None
    finally:
        await runner.cleanup()
