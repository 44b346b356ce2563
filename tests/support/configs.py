"""Config files for tests: a source system and recording targets on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

CLIENT_TOKEN = "test-client-token-000001"
ADMIN_TOKEN = "test-admin-token-0000001"
HOOK_TOKEN = "test-hook-token-00000001"


def write_config(
    folder: Path,
    *,
    target_url: str = "http://127.0.0.1:9",
    port: int = 0,
    retry: dict[str, Any] | None = None,
    concurrency: int = 4,
    lease_seconds: float = 60,
    timeout: float = 5,
    extra_targets: dict[str, str] | None = None,
    source_type: str = "recorder",
    source_url: str = "http://127.0.0.1:9",
    sandbox: bool = False,
    target_type: str = "recorder",
    mapping: str | None = None,
) -> Path:
    """A config with source ``shop`` (generic JSON webhooks, bearer) routing orders to
    ``crm`` (a recorder) and, optionally, more recorders."""
    targets = {"crm": target_url, **(extra_targets or {})}
    delivery = {
        "concurrency": concurrency,
        "timeout_seconds": timeout,
        "retry": retry or {"base_seconds": 0.05, "cap_seconds": 0.5, "max_attempts": 8},
    }
    systems: dict[str, Any] = {
        "shop": {
            "type": source_type,
            "webhook": {"auth": "bearer", "token": HOOK_TOKEN},
            "options": {"url": source_url},
        },
    }
    for name, url in targets.items():
        systems[name] = {"type": target_type, "delivery": delivery, "options": {"url": url}}
    route: dict[str, Any] = {"source": "shop", "entity": "order", "targets": list(targets)}
    if mapping is not None:
        route["mapping"] = mapping  # a file in ``folder``
    config = {
        "store": {"url": f"sqlite:///{folder / 'bridge.db'}", "lease_seconds": lease_seconds},
        "http": {"host": "127.0.0.1", "port": port},
        "log": {"level": "info", "format": "json"},
        "clients": {
            "till": {"token": CLIENT_TOKEN, "scopes": ["bonus:read"]},
            "support": {"token": ADMIN_TOKEN, "scopes": ["admin"]},
        },
        "systems": systems,
        "mirror": {"routes": [route]},
        "sandbox": {"enabled": sandbox},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
