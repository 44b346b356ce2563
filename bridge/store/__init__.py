"""The durable event log and how to open the configured one."""

from __future__ import annotations

from pathlib import Path

from bridge.errors import StoreError
from bridge.settings import StoreSettings
from bridge.store.protocol import Store
from bridge.store.sqlite import SQLiteStore


def sqlite_path(url: str) -> Path:
    """``sqlite:///var/x.db`` → ``var/x.db``; ``sqlite:////abs/x.db`` → ``/abs/x.db``."""
    return Path(url.removeprefix("sqlite:///"))


def open_store(settings: StoreSettings) -> Store:
    """Build the store the settings name (not yet opened)."""
    if settings.url.startswith("sqlite:///"):
        return SQLiteStore(
            sqlite_path(settings.url),
            synchronous=settings.synchronous.value,
            busy_timeout_ms=settings.busy_timeout_ms,
            lease_seconds=settings.lease_seconds,
        )
    raise StoreError("the PostgreSQL store is not available in this version; use sqlite:///path")


__all__ = ["SQLiteStore", "Store", "open_store", "sqlite_path"]
