"""The durable event log and how to open the configured one."""

from __future__ import annotations

from pathlib import Path

from bridge.errors import StoreError
from bridge.settings import POSTGRES_SCHEMES, StoreSettings
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
    if settings.url.startswith(POSTGRES_SCHEMES):
        # Several instances may serve one database; the password comes from the
        # environment (PGPASSWORD, ~/.pgpass), which libpq reads itself. psycopg is
        # imported only when used.
        from bridge.store.postgres import PostgresStore

        return PostgresStore(settings.url, lease_seconds=settings.lease_seconds)
    raise StoreError(f"unknown store.url scheme: {settings.url.split(':', 1)[0]}")


__all__ = ["SQLiteStore", "Store", "open_store", "sqlite_path"]
