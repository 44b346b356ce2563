"""The SQLite store: one file, WAL, one writer connection; see ``store.SQLiteStore``."""

from __future__ import annotations

from bridge.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
