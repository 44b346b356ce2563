"""The connector contract suite: every bonus-master connector, against its emulator.

Each variant yields a started connector and the emulator behind it; the tests in this
folder hold for all of them, so a new master (RetailCRM) joins by adding a variant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.contract import Naming
from connectors.onec.emulator import OnecEmulator

CYRILLIC = Path(__file__).resolve().parents[2] / "connectors/onec/wsdl/cyrillic_example.yaml"


@dataclass
class Variant:
    """A connector under test and what controls its far side."""

    connector: Any
    emulator: Any
    timeout: float


def onec_options(emulator: OnecEmulator, transport: str, **extra: Any) -> dict[str, Any]:
    """Options pointing a 1C connector at a running emulator."""
    where = {"address": emulator.url} if transport == "soap" else {"url": emulator.hs_url}
    return {"transport": transport, "username": "bridge", "password": "sandbox", **where, **extra}


async def start_onec(
    transport: str, naming: Naming | None = None, timeout: float = 2.0, **extra: Any
) -> tuple[OnecConnector, OnecEmulator]:
    """An emulator and a connector talking to it, both started."""
    emulator = OnecEmulator(naming=naming)
    await emulator.start()
    options = onec_options(emulator, transport, **extra)
    if naming is not None:
        options["operations"] = naming.model_dump()
    system = SystemSettings(
        type="onec", delivery=DeliverySettings(timeout_seconds=timeout, concurrency=4)
    )
    connector = ONEC.create("onec", system, ONEC.options_model.model_validate(options))
    await connector.start()
    return connector, emulator


VARIANTS: dict[str, Callable[[], Any]] = {
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
    try:
        yield Variant(connector, emulator, 2.0)
    finally:
        await connector.close()
        await emulator.stop()
