"""The sandbox emulators a running bridge started, typed: ``runtime.emulators`` holds them
as the core's ``Emulator`` protocol, and tests reach into each one's own state."""

from __future__ import annotations

from bridge.runtime import Runtime
from connectors.bitrix.emulator import BitrixEmulator
from connectors.onec.emulator import OnecEmulator
from connectors.retailcrm.emulator import RetailcrmEmulator


def onec_emulator(runtime: Runtime, name: str = "onec") -> OnecEmulator:
    """The 1C emulator the runtime started for system ``name``."""
    emulator = runtime.emulators[name]
    assert isinstance(emulator, OnecEmulator), emulator
    return emulator


def crm_emulator(runtime: Runtime, name: str = "retailcrm") -> RetailcrmEmulator:
    """The RetailCRM emulator the runtime started for system ``name``."""
    emulator = runtime.emulators[name]
    assert isinstance(emulator, RetailcrmEmulator), emulator
    return emulator


def bitrix_emulator(runtime: Runtime, name: str = "bitrix") -> BitrixEmulator:
    """The Bitrix24 emulator the runtime started for system ``name``."""
    emulator = runtime.emulators[name]
    assert isinstance(emulator, BitrixEmulator), emulator
    return emulator
