"""The OAuth application's tokens of one portal, kept across restarts.

A refresh token may be replaced on every refresh (bitrix.md §1.1), so the newest pair is
written to a token file (mode 0600, atomically) and read back at start; a file grown from
another configured refresh token (the application installed again) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from bridge.logs import get_logger
from connectors.bitrix.client import OAuthTokens
from connectors.bitrix.options import BitrixOptions

log = get_logger("connectors.bitrix")


def oauth_tokens(name: str, options: BitrixOptions) -> OAuthTokens | None:
    """The application's tokens: the configured ones, or the newer ones a refresh left
    in the token file (a refresh token may be replaced on every refresh, §1.1)."""
    oauth = options.oauth
    if oauth is None:
        return None
    path = Path(oauth.token_file or f"var/bitrix-{name}-tokens.json")
    configured = oauth.refresh_token.get_secret_value()
    # The file belongs to the configured token it grew from: a new one in the config (the
    # app installed again) starts afresh instead of refreshing with a dead one.
    origin = hashlib.sha256(configured.encode()).hexdigest()[:16]
    access, refresh = "", configured
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
        if kept["from"] == origin:
            access, refresh = str(kept["access_token"]), str(kept["refresh_token"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none kept yet: refresh at the first call that needs a token

    def kept_token() -> str | None:
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        token = kept.get("refresh_token") if isinstance(kept, dict) else None
        return str(token) if token and kept.get("from") == origin else None

    async def keep(tokens: OAuthTokens) -> None:
        data = {
            "from": origin,
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
        }
        try:
            write_atomically(path, json.dumps(data))
        except OSError:  # the tokens in memory go on working until a restart
            log.exception("bitrix_tokens_not_kept", system=name, path=str(path))

    return OAuthTokens(
        access_token=access,
        refresh_token=refresh,
        client_id=oauth.client_id,
        client_secret=oauth.client_secret.get_secret_value(),
        token_url=oauth.token_url,
        on_refresh=keep,
        configured_refresh_token=configured,
        reload=kept_token,
    )


def write_atomically(path: Path, text: str) -> None:
    """``text`` into ``path`` (mode 0600) so that a crash leaves the old file or the new one,
    never half of either: a temporary file, fsync, rename, fsync of the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
