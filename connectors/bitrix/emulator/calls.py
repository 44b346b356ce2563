"""One REST method call inside the emulator, and the table entry that serves it.

bitrix.md §1.1–§1.2: a method belongs to a scope (`crm`, `sale`, or the global one every
caller has); some need the application context (`event.*`, §3.1/§3.5). CRestServer takes
`start` out of the parameters before the method sees them (§1.4).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.bitrix.emulator.auth import Caller
from connectors.bitrix.emulator.wire import Json, Reply, php_int

GLOBAL = ""  # the scope every caller has: batch, server.time, profile, event.*


@dataclass
class RestCall:
    """A method call: its lower-cased name, parameters (auth removed), caller and `start`."""

    method: str
    params: Json
    caller: Caller

    @property
    def start(self) -> int:
        """The list offset (§1.4): `start`, PHP intval, 0 when absent; -1 skips the count."""
        return php_int(self.params.get("start"), 0)

    def get(self, *names: str) -> Any:
        """The first parameter present under any spelling in `names` (PHP code upper-cases
        or lower-cases the query keys, so `ID`, `id` and `Id` all work)."""
        for name in names:
            for key, value in self.params.items():
                if key.lower() == name.lower():
                    return value
        return None


Handler = Callable[[RestCall], Reply]


@dataclass(frozen=True)
class Method:
    """How to serve one method: its scope, handler and whether only an app may call it."""

    scope: str
    handler: Handler
    app_only: bool = False
    batchable: bool = True


def reply(result: Any) -> Reply:
    """A plain `result`."""
    return Reply(result)
