"""The PostgreSQL store: one database shared by several instances; see
``store.PostgresStore``."""

from __future__ import annotations

from bridge.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
