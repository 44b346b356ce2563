"""Every mirroring connector as the entity contract suite meets it (test_entity_contract.py).

A variant is a started connector, the emulator behind it on loopback, what it declares it
can do, documents in its own system's shape, and the few hooks the suite needs to look
behind the wire: how many entities the emulator holds, how to make some "in the system
itself" for a listing, and which faults mean "down" or "slow down" there. A new target
joins the suite by adding a variant here; nothing in the tests names a system.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bridge.errors import ErrorClass
from bridge.settings import DeliverySettings, SystemSettings, WebhookAuth, WebhookSettings
from connectors.bitrix.connector import BITRIX, BitrixConnector
from connectors.bitrix.emulator import BitrixEmulator
from connectors.retailcrm.connector import RETAILCRM
from connectors.retailcrm.emulator import RetailcrmEmulator
from connectors.retailcrm.emulator.history import CUSTOMER, ORDER
from tests.contract.conftest import start_onec
from tests.support.bitrix import APP_TOKEN, oauth_options

TIMEOUT = 2.0  # delivery.timeout_seconds of every variant
ENTITIES = ("order", "customer")
NEW_PHONE = "+79005551234"  # on file nowhere: a customer written with it is a new one
BITRIX_REFRESH = "contract-refresh-token-0001"

# What a variant may declare; a test needing one it lacks is skipped, naming it.
READER = "reader"  # EntityReader: read_entity
LISTER = "lister"  # EntityLister: lists, list_entities
BATCH = "batch"  # BatchSink: batch_size, batchable, deliver_batch (of orders)
RETURNS_ID = "returns_id"  # deliver answers the target's id of the entity
# A target that is down, the same way in every emulator: no answer, or a 500 page.
DOWN: dict[str, tuple[dict[str, Any], ErrorClass, str]] = {
    "outage": ({"outage": True}, ErrorClass.TRANSIENT, "the connection closed unanswered"),
    "http_500": ({"http_status": 500}, ErrorClass.TRANSIENT, "a 500 page from the server"),
}


@dataclass(frozen=True)
class Sample:
    """One version of a document in the target's shape, and what reading it back shows:
    dotted paths into ``read_entity``'s state → the value written."""

    document: dict[str, Any]
    shows: dict[str, Any]


@dataclass
class Variant:
    """A mirroring connector under test, the emulator behind it, and what it can do.

    Capabilities a target lacks are skipped by name (``requires``), never passed silently.
    A contract point a connector is known to break is marked ``known_failures`` (an xfail
    that must keep failing: once fixed, the mark has to go).
    """

    name: str
    connector: Any
    emulator: Any
    capabilities: frozenset[str]
    sample: Callable[[str, int], Sample]  # (entity, version n) → the same entity, version n
    invalid: dict[str, Any]  # an order document the target refuses (for batches)
    missing_id: str  # an id the target never gave
    count: Callable[[str], int]  # entities of a kind the emulator holds
    seed: Callable[[str, int], None]  # make n entities in the system itself
    held_ids: Callable[[str], set[str]]  # every entity's id as the lister names it
    list_page: int  # entities per listing page
    # label → (the emulator's fault settings, the class deliver must raise, what it means
    # there): "outage" and "http_500" are a target that is down, "http_503" and "http_429"
    # the answers a target gives when it asks to slow down, if it ever does.
    faults: Mapping[str, tuple[dict[str, Any], ErrorClass, str]]
    known_failures: Mapping[str, str] = field(default_factory=dict)

    def requires(self, capability: str) -> None:
        """Skip the calling test, naming why, if this target lacks ``capability``."""
        if capability not in self.capabilities:
            pytest.skip(f"{self.name} declares no {capability!r}")

    def expect(self, request: pytest.FixtureRequest, *points: str) -> None:
        """Mark the calling test a strict xfail when this target is known to break one of
        ``points`` (``point`` or ``point:entity``): only a failed assertion counts, so an
        error of another kind still fails the suite."""
        for point in points:
            if point in self.known_failures:
                reason = f"{self.name}: {self.known_failures[point]}"
                request.applymarker(
                    pytest.mark.xfail(reason=reason, strict=True, raises=AssertionError)
                )
                return


def shown(state: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` of a read state (None where it is missing)."""
    value: Any = state
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


# -- 1C ---------------------------------------------------------------------------------------


def onec_sample(entity: str, n: int) -> Sample:
    """An order or customer in 1C's shape (CONTRACT.md: SaveOrder's and SaveCustomer's
    JSON); a customer keeps its phone across versions (1C keys customers by phone)."""
    if entity == "order":
        total = f"{1000 + n}.00"
        document = {
            "number": f"A-{n}",
            "status": f"status-{n}",
            "total": total,
            "customer": {"phone": "+79000000001"},
            "items": [{"sku": "SKU-1", "quantity": 1, "price": total}],
        }
        return Sample(document, {"status": f"status-{n}", "document.total": total})
    name = f"Анна Версия-{n}"
    return Sample({"phone": NEW_PHONE, "name": name}, {"name": name, "phone": NEW_PHONE})


async def start_onec_variant(transport: str, tmp_path: Path) -> Variant:
    """1C over SOAP or its HTTP service, listing five documents a page."""
    connector, emulator = await start_onec(transport, timeout=TIMEOUT, list_page=5)
    ledger = emulator.ledger

    def held(entity: str) -> dict[str, Any]:
        kept = ledger.snapshot()["orders" if entity == "order" else "customers"]
        assert isinstance(kept, dict)
        return kept

    def seed(entity: str, n: int) -> None:
        for i in range(n):
            if entity == "order":
                ledger.enter_order({"total": f"{i}.00"}, "new")
            else:  # no "entered in 1C" call for customers: a save by someone else
                text = json.dumps({"phone": f"+7901{i:07d}", "name": f"Seed {i}"})
                ledger.save_customer(f"seed-op-{i}", f"seed-{i}", text)

    return Variant(
        name=f"onec-{transport}",
        connector=connector,
        emulator=emulator,
        capabilities=frozenset({READER, LISTER, RETURNS_ID}),
        sample=onec_sample,
        invalid={},
        missing_id="nobody-404",
        count=lambda entity: len(held(entity)),
        seed=seed,
        held_ids=lambda entity: set(held(entity)),
        list_page=5,
        faults={
            **DOWN,
            "http_503": (
                {"http_status": 503},
                ErrorClass.TRANSIENT,
                "1C sets no request limit: a 503 is its publication unavailable",
            ),
            "http_429": ({"http_status": 429}, ErrorClass.RATE_LIMITED, "a proxy's limit"),
        },
    )


# -- RetailCRM --------------------------------------------------------------------------------


def retailcrm_sample(entity: str, n: int) -> Sample:
    """An order or customer in RetailCRM's shape (retailcrm-api.md §2, §3); the connector
    adds ``externalId`` itself."""
    name = f"Анна-{n}"
    if entity == "order":
        item = {"offer": {"externalId": "SKU-1"}, "quantity": 1, "initialPrice": 900 + n}
        document = {"firstName": name, "lastName": "Орлова", "items": [item]}
        return Sample(document, {"firstName": name, "lastName": "Орлова"})
    document = {"firstName": name, "phones": [{"number": NEW_PHONE}]}
    return Sample(document, {"firstName": name})


async def start_retailcrm_variant(tmp_path: Path) -> Variant:
    """RetailCRM with a key of its own, so the process-wide limiter of one test's key (held
    after a 503) never slows the next test."""
    key = f"contract-key-{uuid.uuid4().hex}"
    emulator = RetailcrmEmulator(rate_limit=0, api_keys={key: "bridge"})
    await emulator.start()
    options = {"url": emulator.url, "api_key": key, "rate_limit": 50}
    system = SystemSettings(type="retailcrm", delivery=DeliverySettings(timeout_seconds=TIMEOUT))
    connector = RETAILCRM.create("crm", system, RETAILCRM.options_model.model_validate(options))
    await connector.start()
    state = emulator.state
    kinds = {"order": ORDER, "customer": CUSTOMER}

    def seed(entity: str, n: int) -> None:
        for i in range(n):
            data = {"externalId": f"seed-{i}", "firstName": f"Seed {i}"}
            state.insert(kinds[entity], data, state.sites[0], None)

    return Variant(
        name="retailcrm",
        connector=connector,
        emulator=emulator,
        capabilities=frozenset({READER, LISTER, BATCH, RETURNS_ID}),
        sample=retailcrm_sample,
        invalid={
            "firstName": "Сломанный",
            "items": [{"offer": {"externalId": "missing-1"}, "quantity": 1, "initialPrice": 10}],
        },
        missing_id="987654",
        count=lambda entity: len(state.entities[entity]),
        seed=seed,
        held_ids=lambda entity: {str(own) for own in state.entities[entity]},
        list_page=100,
        faults={
            **DOWN,
            "http_503": (
                {"http_status": 503},
                ErrorClass.RATE_LIMITED,
                "past 10 requests/s per key (retailcrm-api.md §1.6)",
            ),
            "http_429": ({"http_status": 429}, ErrorClass.RATE_LIMITED, "a proxy's limit"),
        },
    )


# -- Bitrix24 ---------------------------------------------------------------------------------


def bitrix_sample(entity: str, n: int) -> Sample:
    """A deal or contact in ``crm.item``'s camelCase fields (bitrix.md §2.1–§2.3)."""
    if entity == "order":
        return Sample(
            {"title": f"Order v{n}", "opportunity": 100 + n},
            {"title": f"Order v{n}", "opportunity": 100 + n},
        )
    name = f"Анна-{n}"
    return Sample({"name": name, "lastName": "Орлова"}, {"name": name, "lastName": "Орлова"})


async def start_bitrix_variant(oauth: bool, tmp_path: Path) -> Variant:
    """A Bitrix24 portal reached through an inbound webhook URL or as the OAuth app; the
    leaky bucket off on both sides (rate limiting is injected where a test wants it)."""
    emulator = BitrixEmulator(burst=0, leak=0.0)
    emulator.app.accept_refresh_token(BITRIX_REFRESH)
    await emulator.start()
    options: dict[str, Any] = {"rate": {"burst": 250, "per_second": 50}}
    if oauth:
        options |= oauth_options(emulator.url, BITRIX_REFRESH, tmp_path / "bitrix-tokens.json")
    else:
        options["url"] = emulator.webhook_url
    webhook = WebhookSettings(auth=WebhookAuth.CONNECTOR, token=SecretStr(APP_TOKEN))
    system = SystemSettings(
        type="bitrix", webhook=webhook, delivery=DeliverySettings(timeout_seconds=TIMEOUT)
    )
    connector = BITRIX.create("bitrix", system, BITRIX.options_model.model_validate(options))
    assert isinstance(connector, BitrixConnector)  # with options.url: more than webhooks
    await connector.start()
    rows = {"order": "deals", "customer": "contacts"}

    def held(entity: str) -> dict[Any, Any]:
        kept: dict[Any, Any] = emulator.snapshot()[rows[entity]]
        return kept

    def seed(entity: str, n: int) -> None:
        for i in range(n):
            if entity == "order":
                emulator.admin.seed("deal", {"TITLE": f"seed {i}"})
            else:
                emulator.admin.seed("contact", {"NAME": f"Seed {i}"})

    return Variant(
        name="bitrix-oauth" if oauth else "bitrix-webhook",
        connector=connector,
        emulator=emulator,
        capabilities=frozenset({READER, LISTER, BATCH, RETURNS_ID}),
        sample=bitrix_sample,
        invalid={"title": "broken", "opportunity": "not a number"},
        missing_id="987654",
        count=lambda entity: len(held(entity)),
        seed=seed,
        held_ids=lambda entity: {str(own) for own in held(entity)},
        list_page=50,
        faults={
            **DOWN,
            "http_503": (
                {"error": "QUERY_LIMIT_EXCEEDED"},
                ErrorClass.RATE_LIMITED,
                "503 QUERY_LIMIT_EXCEEDED, the portal's leaky bucket (bitrix.md §1.6)",
            ),
            "http_429": (
                {"error": "OPERATION_TIME_LIMIT"},
                ErrorClass.RATE_LIMITED,
                "429 OPERATION_TIME_LIMIT, a method's time budget spent (bitrix.md §1.6)",
            ),
        },
    )


Starter = Callable[[Path], Awaitable[Variant]]
VARIANTS: dict[str, Starter] = {
    "onec-soap": lambda tmp: start_onec_variant("soap", tmp),
    "onec-http": lambda tmp: start_onec_variant("http", tmp),
    "retailcrm": start_retailcrm_variant,
    "bitrix-webhook": lambda tmp: start_bitrix_variant(False, tmp),
    "bitrix-oauth": lambda tmp: start_bitrix_variant(True, tmp),
}
