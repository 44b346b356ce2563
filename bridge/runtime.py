"""Everything a running bridge holds, built from settings, started and stopped in order."""

from __future__ import annotations

import fcntl
import os
import socket
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bridge.connector import Lifecycle
from bridge.dispatcher import Dispatcher
from bridge.errors import SettingsError, StoreError
from bridge.logs import get_logger
from bridge.metrics import Metrics
from bridge.registry import Connectors, build_connectors
from bridge.router import Router
from bridge.settings import Settings
from bridge.settings_loader import LoadedSettings
from bridge.store import SQLiteStore, open_store

log = get_logger("bridge.runtime")


@dataclass
class Runtime:
    """The store, connectors, router, dispatcher and metrics of one process."""

    loaded: LoadedSettings
    store: SQLiteStore
    connectors: Connectors
    router: Router
    metrics: Metrics = field(default_factory=Metrics)
    dispatcher: Dispatcher | None = None
    owner: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    )
    _lock: IO[bytes] | None = None

    @property
    def settings(self) -> Settings:
        """The validated settings."""
        return self.loaded.settings

    async def start(self, *, dispatch: bool = True) -> None:
        """Open the store, start connectors and, if asked, the dispatcher."""
        self._take_lock()
        await self.store.open()
        for name, connector in self.connectors.by_system.items():
            if isinstance(connector, Lifecycle):
                await connector.start()
                log.info("connector_started", system=name)
        if dispatch:
            lanes = {}
            for target in sorted(self.router.all_targets()):
                sink = self.connectors.sink(target)
                if sink is not None:
                    lanes[target] = (sink, self.settings.systems[target].delivery)
            self.dispatcher = Dispatcher(
                self.store,
                lanes,
                self.owner,
                lease_seconds=self.settings.store.lease_seconds,
                metrics=self.metrics,
            )
            await self.dispatcher.start()

    async def stop(self) -> None:
        """Stop in reverse order; queued writes commit before the store closes."""
        if self.dispatcher is not None:
            await self.dispatcher.stop()
        for connector in self.connectors.by_system.values():
            if isinstance(connector, Lifecycle):
                await connector.close()
        await self.store.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def _take_lock(self) -> None:
        # SQLite serves one instance: a second `bridge serve` on the same file would claim
        # the same deliveries. The lock also lets start-up take over the leases of a
        # process that died, without waiting for them to expire.
        path = Path(f"{self.store.path}.lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("wb")
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.close()
            raise StoreError(
                f"another bridge is already serving {self.store.path}; SQLite serves one"
                " instance (use PostgreSQL for several)"
            ) from exc
        self._lock = handle


def build_runtime(loaded: LoadedSettings) -> Runtime:
    """Build (not start) the runtime; connector problems raise SettingsError."""
    connectors, problems = build_connectors(loaded.settings)
    if problems:
        raise SettingsError([str(loaded.document.problem(p.path, p.message)) for p in problems])
    return Runtime(
        loaded=loaded,
        store=open_store(loaded.settings.store),
        connectors=connectors,
        router=Router(loaded.settings),
    )
