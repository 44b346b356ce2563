"""The connector contract suite: every bonus-master connector, against its emulator.

Each variant yields a started connector and the emulator behind it; the tests in this
folder hold for all of them, so a new master (RetailCRM) joins by adding a variant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.emulator import OnecEmulator
from connectors.onec.naming import Naming
from connectors.retailcrm.connector import RETAILCRM, RetailcrmConnector
from connectors.retailcrm.emulator import RetailcrmEmulator
from tests.support.onec import onec_options
from tests.support.postgres import create_database, drop_database, empty_tables

CYRILLIC = Path(__file__).resolve().parents[2] / "connectors/onec/wsdl/cyrillic_example.yaml"


ONEC_CAPABILITIES = frozenset(
    {"holds", "reverse", "idempotent_credit", "change_feed", "business_faults"}
)


@dataclass
class Variant:
    """A connector under test, what controls its far side, and what it can do.

    Capabilities a master lacks are skipped by name (``requires``), never passed silently:
    RetailCRM, for one, charges at once instead of holding and has no reversal call.
    """

    name: str
    connector: Any
    emulator: Any
    timeout: float
    order_id: str  # an order the master knows (RetailCRM charges bonuses on orders)
    capabilities: frozenset[str]

    def requires(self, capability: str) -> None:
        """Skip the calling test, naming why, if this master lacks ``capability``."""
        if capability not in self.capabilities:
            pytest.skip(f"{self.name} has no {capability!r}")


async def start_onec(
    transport: str, naming: Naming | None = None, timeout: float = 2.0, **extra: Any
) -> tuple[OnecConnector, OnecEmulator]:
    """An emulator and a connector talking to it, both started."""
    emulator = OnecEmulator(naming=naming)
    await emulator.start()
    options = onec_options(emulator, transport, naming, **extra)
    system = SystemSettings(
        type="onec", delivery=DeliverySettings(timeout_seconds=timeout, concurrency=4)
    )
    connector = ONEC.create("onec", system, ONEC.options_model.model_validate(options))
    await connector.start()
    return connector, emulator


async def start_retailcrm() -> tuple[RetailcrmConnector, RetailcrmEmulator]:
    """A RetailCRM emulator and a connector using the bridge's key, both started."""
    emulator = RetailcrmEmulator(rate_limit=0)
    await emulator.start()
    options = {"url": emulator.url, "api_key": "sandbox-bridge-key-0001", "rate_limit": 50}
    system = SystemSettings(type="retailcrm", delivery=DeliverySettings(timeout_seconds=2.0))
    connector = RETAILCRM.create("crm", system, RETAILCRM.options_model.model_validate(options))
    await connector.start()
    return connector, emulator


VARIANTS: dict[str, Callable[[], Any]] = {
    "retailcrm": start_retailcrm,
    "onec-soap11": lambda: start_onec("soap"),
    "onec-soap12": lambda: start_onec("soap", soap_version="1.2"),
    "onec-http": lambda: start_onec("http"),
    "onec-cyrillic": lambda: start_onec(
        "soap", Naming.model_validate(yaml.safe_load(CYRILLIC.read_text(encoding="utf-8")))
    ),
}


@pytest.fixture(params=sorted(VARIANTS))
async def master(request: pytest.FixtureRequest) -> AsyncIterator[Variant]:
    """Each bonus-master connector in turn, against its own fresh emulator."""
    connector, emulator = await VARIANTS[request.param]()
    onec = request.param.startswith("onec")
    try:
        yield Variant(
            request.param,
            connector,
            emulator,
            2.0,
            "order-1" if onec else "o-1",
            ONEC_CAPABILITIES if onec else frozenset(),
        )
    finally:
        await connector.close()
        await emulator.stop()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """This run's own PostgreSQL database (tests/support/postgres.py), dropped at its end."""
    url = create_database()
    yield url
    drop_database(url)


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The run's database with empty tables, for one test."""
    empty_tables(postgres_database)
    return postgres_database
