"""Existing 1C services reached by declaration alone (issue 14): the bonus API over each
example service and each test fixture, every one served by an emulator built from the
service's own WSDL or route list and a behaviour table (``emulator/described``), never
from the connector's declaration. Money moves in the emulated infobase by exactly the
amount; a capability a service lacks is a 501 naming it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.support.bonus import Bonus, BonusFactory, bonus_config, bonus_factory
from tests.support.daemon import free_port

__all__ = ["bonus_factory"]  # the fixture, used by name

ROOT = Path(__file__).parents[2]
RSV = "/api/v1/bonus/reservations"
PHONE = "+79000000001"  # the sandbox's first customer: 1,000 points, card 2000000000015


@dataclass(frozen=True)
class Service:
    """One service: where its files are, how it is reached, what it can do."""

    folder: str
    transport: str
    endpoint: str  # under http://127.0.0.1:<port>/base/
    commit: str  # "call", "at_sale" or "none"
    release: str  # "call", "on_expiry" or "none"
    reserve: bool = True
    by_card: bool = False
    soap_version: str = "1.1"


SERVICES = {
    "reference": Service(
        "examples/onec/reference", "soap", "ws/BridgeLoyalty.1cws", "call", "call"
    ),
    "cyrillic_soap": Service(
        "examples/onec/cyrillic_soap", "soap", "ws/bonus.1cws", "at_sale", "on_expiry"
    ),
    "http_json": Service("examples/onec/http_json", "http", "hs/bonus", "call", "call"),
    "soap_records": Service(
        "tests/fixtures/onec_services/soap_records",
        "soap",
        "ws/bonuses.1cws",
        "call",
        "call",
        soap_version="1.2",
    ),
    "http_put": Service(
        "tests/fixtures/onec_services/http_put", "http", "hs/loyalty", "call", "call"
    ),
    "lookup_only": Service(
        "tests/fixtures/onec_services/lookup_only",
        "soap",
        "ws/cards.1cws",
        "none",
        "none",
        reserve=False,
        by_card=True,
    ),
}  # fmt: skip
HOLDING = [name for name, s in SERVICES.items() if s.reserve]


def config_for(tmp_path: Path, service: Service) -> dict[str, Any]:
    """The bridge with 1C as master, reached as the service's declaration says."""
    config = bonus_config(tmp_path, "onec")
    folder = ROOT / service.folder
    endpoint = f"http://127.0.0.1:{free_port()}/base/{service.endpoint}"
    options: dict[str, Any] = {
        "transport": service.transport,
        "username": "bridge",
        "password": "sandbox",
        "poll_interval": 0,
        "service": str(folder / "declaration.yaml"),
        "soap_version": service.soap_version,
    }
    options |= {"address": endpoint} if service.transport == "soap" else {"url": endpoint}
    if (folder / "emulator.yaml").exists():
        options["emulator"] = str(folder / "emulator.yaml")
    config["systems"] = {"onec": {"type": "onec", "options": options}}
    config["bonus"]["timeout_seconds"] = 3
    config["bonus"]["sms"] = {"sender": "bridge", "gateway": {"type": "sandbox"}}
    return config


def declaration_of(service: Service) -> dict[str, Any]:
    """The service's declaration as data, to vary inline in config.yaml."""
    text = (ROOT / service.folder / "declaration.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


def who(service: Service) -> dict[str, str]:
    return {"card": "2000000000015"} if service.by_card else {"phone": PHONE}


async def available(bonus: Bonus, service: Service) -> str:
    status, body = await bonus.balance({"customer": who(service)})
    assert status == 200, body
    return str(body["available"])


async def held(bonus: Bonus, amount: str, order: str) -> dict[str, Any]:
    body = {
        "customer": {"phone": PHONE},
        "amount": amount,
        "order": {"system": "onec", "id": order},
    }
    status, rsv = await bonus.call("POST", RSV, body)
    assert status == 201, rsv
    status, sent = await bonus.call("GET", f"/sandbox/messages?phone={PHONE}&limit=1")
    assert status == 200, sent
    text = sent["messages"][0]["text"]
    code = next(word for word in text.replace(":", " ").split() if word.isdigit())
    status, confirmed = await bonus.call("POST", f"{RSV}/{rsv['id']}/confirm", {"code": code})
    assert (status, confirmed["status"]) == (200, "held"), confirmed
    return dict(confirmed)


async def settled(bonus: Bonus, rsv_id: str, wanted: str) -> dict[str, Any]:
    for _ in range(100):
        status, body = await bonus.call("GET", f"{RSV}/{rsv_id}")
        assert status == 200, body
        if body["status"] == wanted and "master_call_pending" not in body:
            return dict(body)
        await asyncio.sleep(0.05)
    raise AssertionError(body)


@pytest.mark.parametrize("name", sorted(SERVICES))
async def test_a_look_up_answers_the_balance_and_the_max_write_off(
    tmp_path: Path, bonus_factory: BonusFactory, name: str
) -> None:
    service = SERVICES[name]
    bonus = await bonus_factory("onec", config=config_for(tmp_path, service))
    status, body = await bonus.balance({"customer": who(service), "cart": {"total": "1500.00"}})
    assert status == 200, body
    assert body["available"] == "1000.00"
    if name != "lookup_only":  # its only answer is the balance
        # The sandbox programme lets points pay half a cart: 750 of 1,500.
        assert body["max_redeemable"] == "750.00"
    # A customer the service does not know is a 404, however the service says so.
    unknown = {"card": "2999999999999"} if service.by_card else {"phone": "+79990000000"}
    status, body = await bonus.balance({"customer": unknown})
    assert (status, body["code"]) == (404, "unknown_customer"), body


@pytest.mark.parametrize("name", HOLDING)
async def test_a_hold_and_its_commit_move_exactly_the_amount(
    tmp_path: Path, bonus_factory: BonusFactory, name: str
) -> None:
    service = SERVICES[name]
    bonus = await bonus_factory("onec", config=config_for(tmp_path, service))
    rsv = await held(bonus, "300.00", "A-1")
    assert await available(bonus, service) == "700.00"
    status, done = await bonus.call("POST", f"{RSV}/{rsv['id']}/commit", {"amount": "250.00"})
    assert status in (200, 202), done
    done = await settled(bonus, rsv["id"], "committed")
    assert done["committed"] == "250.00"
    if service.commit == "at_sale":
        # 1C writes the hold off itself when the sale is posted: until then it stays held.
        assert await available(bonus, service) == "700.00"
        hold_id = next(iter(bonus.emulator.behaviours.holds))
        async with aiohttp.ClientSession() as http:
            sale = {"hold_id": hold_id, "amount": "250.00"}
            async with http.post(f"{_root(bonus)}/__emulator__/sales", json=sale) as answer:
                assert answer.status == 200, await answer.text()
    assert await available(bonus, service) == "750.00"


@pytest.mark.parametrize("name", HOLDING)
async def test_a_cancelled_hold_gives_the_points_back_where_1c_releases(
    tmp_path: Path, bonus_factory: BonusFactory, name: str
) -> None:
    service = SERVICES[name]
    bonus = await bonus_factory("onec", config=config_for(tmp_path, service))
    rsv = await held(bonus, "120.00", "A-2")
    status, body = await bonus.call("POST", f"{RSV}/{rsv['id']}/cancel", {})
    assert status in (200, 202), body
    await settled(bonus, rsv["id"], "released")
    # A service whose 1C frees unsold holds itself is only told nothing: the hold stays
    # until 1C lets it go.
    expected = "880.00" if service.release == "on_expiry" else "1000.00"
    assert await available(bonus, service) == expected


async def test_a_service_without_a_hold_answers_501_naming_it(
    tmp_path: Path, bonus_factory: BonusFactory
) -> None:
    bonus = await bonus_factory("onec", config=config_for(tmp_path, SERVICES["lookup_only"]))
    body = {
        "customer": {"card": "2000000000015"},
        "amount": "10.00",
        "order": {"system": "onec", "id": "A-3"},
    }
    status, refused = await bonus.call("POST", RSV, body)
    assert (status, refused["code"]) == (501, "not_supported"), refused
    assert "reserve" in refused["detail"]
    assert refused["capability"] == "reserve"
    assert await available(bonus, SERVICES["lookup_only"]) == "1000.00"


def _root(bonus: Bonus) -> str:
    url: str = bonus.emulator.url
    return url.split("/base/", 1)[0]


async def test_what_a_commit_needs_besides_the_hold_id_is_kept_with_the_hold(
    tmp_path: Path, bonus_factory: BonusFactory
) -> None:
    """A commit keyed by the hold id *and* the card and order it was made for (a service that
    checks them): the bridge keeps them with the hold and hands them back."""
    service = SERVICES["http_json"]
    config = config_for(tmp_path, service)
    declaration = declaration_of(service)
    declaration["capabilities"]["commit"]["args"] += [
        {"to": "body.card", "from": "customer_id"},
        {"to": "body.order", "from": "order_id"},
    ]
    config["systems"]["onec"]["options"]["service"] = declaration  # inline, in config.yaml
    bonus = await bonus_factory("onec", config=config)
    rsv = await held(bonus, "300.00", "A-9")
    stored = await bonus.runtime.store.get_reservation(rsv["id"])
    kept = json.loads(stored.master_ref or "")
    assert kept == {"hold": "H-17", "customer_id": "2000000000015", "order_id": "A-9"}
    status, done = await bonus.call("POST", f"{RSV}/{rsv['id']}/commit", {"amount": "300.00"})
    assert status in (200, 202), done
    await settled(bonus, rsv["id"], "committed")
    assert await available(bonus, service) == "700.00"
    assert bonus.emulator.calls["commit"] == 1


async def test_a_max_write_off_served_by_its_own_operation_is_asked_for_a_cart(
    tmp_path: Path, bonus_factory: BonusFactory
) -> None:
    service = SERVICES["http_json"]
    config = config_for(tmp_path, service)
    declaration = declaration_of(service)
    balance = declaration["capabilities"]["balance"]
    balance["answer"] = [r for r in balance["answer"] if r["to"] != "max_redeemable"]
    balance["args"] = [r for r in balance["args"] if r["from"] != "cart_total"]
    declaration["capabilities"]["max_redeemable"] = {
        "method": "GET",
        "path": "/cards/{card}/balance",
        "args": [
            {"to": "path.card", "from": "customer_id"},
            {"to": "query.sum", "from": "cart_total", "transform": "money"},
        ],
        "answer": [{"to": "max_redeemable", "from": "data.maxWriteOff"}],
    }
    config["systems"]["onec"]["options"]["service"] = declaration
    bonus = await bonus_factory("onec", config=config)
    status, body = await bonus.balance({"customer": {"phone": PHONE}, "cart": {"total": "600.00"}})
    assert (status, body["available"], body["max_redeemable"]) == (200, "1000.00", "300.00"), body
    assert bonus.emulator.calls["balance"] == 2  # the balance, then the limit for the cart
    status, body = await bonus.balance({"customer": {"phone": PHONE}})
    assert status == 200
    assert "max_redeemable" not in body or body["max_redeemable"] is None
    assert bonus.emulator.calls["balance"] == 3  # no cart: no second call


async def test_without_find_customer_a_service_is_keyed_by_phone_unless_it_says_card(
    tmp_path: Path, bonus_factory: BonusFactory
) -> None:
    service = SERVICES["cyrillic_soap"]
    config = config_for(tmp_path, service)
    declaration = declaration_of(service)
    del declaration["customer"]  # the default: the phone is the key
    config["systems"]["onec"]["options"]["service"] = declaration
    bonus = await bonus_factory("onec", config=config)
    assert await available(bonus, service) == "1000.00"
