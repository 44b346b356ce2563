"""The Bitrix24 sandbox portal's local application, as a connector's options name it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

APP_TOKEN = "sandbox-bitrix-app-token"  # what the portal signs its events with


def oauth_options(portal_url: str, refresh_token: str, token_file: Path) -> dict[str, Any]:
    """``options.url`` and ``options.oauth`` of a connector that calls the portal as its
    local application (OAuth; bitrix.md §1.1), keeping its tokens in ``token_file``."""
    return {
        "url": f"{portal_url}/rest/",
        "oauth": {
            "client_id": "local.sandbox0000000001",
            "client_secret": "sandbox-bitrix-client-secret",
            "refresh_token": refresh_token,
            "token_url": f"{portal_url}/oauth/token/",
            "token_file": str(token_file),
        },
    }
