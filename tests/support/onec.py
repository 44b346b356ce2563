"""A 1C connector's options, pointed at a running emulator."""

from __future__ import annotations

from typing import Any

from connectors.onec.emulator import OnecEmulator
from connectors.onec.naming import Naming


def onec_options(
    emulator: OnecEmulator, transport: str, naming: Naming | None = None, **extra: Any
) -> dict[str, Any]:
    """Options for ``transport`` (``soap`` or ``http``) with the sandbox's login, and the
    operation names of ``naming`` where the contract is published under other names."""
    where = {"address": emulator.url} if transport == "soap" else {"url": emulator.hs_url}
    options: dict[str, Any] = {"transport": transport, "username": "bridge", "password": "sandbox"}
    options |= where | extra
    if naming is not None:
        options["operations"] = naming.model_dump()
    return options
