"""Who is calling the Bitrix24 emulator: inbound webhooks and one OAuth local application.

bitrix.md §1.1: an inbound webhook `/rest/<user_id>/<code>/<method>` carries its creator's
rights and scopes; a local application calls `/rest/<method>` with `auth=<access_token>`
(1 h), refreshed with a `refresh_token` (180 days) at the OAuth server's
`/oauth/token/?grant_type=refresh_token…`. Only the application may bind events and read the
offline queue (§0.1, §3.1, §3.5).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from connectors.bitrix.emulator.wire import Clock, Json, RestError, system_error

ACCESS_TTL = 3600  # §1.1: access_token lives 1 h
REFRESH_TTL = 180 * 24 * 3600  # §1.1: refresh_token lives 180 days
CODE_TTL = 30  # §1.1: an authorization code lives 30 s
DEFAULT_SCOPES = frozenset({"crm", "sale", "user"})


@dataclass(frozen=True)
class Webhook:
    """An inbound webhook: its creator's user id, secret code, scopes and admin right."""

    user_id: int
    secret: str
    scopes: frozenset[str] = DEFAULT_SCOPES
    admin: bool = True


@dataclass(frozen=True)
class Caller:
    """The authenticated side of one request (`client_id` is "" for a webhook)."""

    user_id: int
    scopes: frozenset[str]
    admin: bool
    client_id: str = ""
    auth_connector: str = ""  # §3.5: the `auth_connector` the request passed

    @property
    def is_app(self) -> bool:
        """True for the OAuth application context."""
        return bool(self.client_id)


# The portal's own user, for changes "made in the UI" (seeded data, admin edits).
PORTAL_USER = Caller(user_id=1, scopes=DEFAULT_SCOPES, admin=True)


def webhook_caller(
    webhooks: Mapping[int, Webhook], user: str, secret: str, connector: str
) -> Caller:
    """The caller of `/rest/<user>/<secret>/…`, or 401 NO_AUTH_FOUND (§1.7)."""
    hook = webhooks.get(int(user)) if user.isdigit() else None
    # Constant time: the comparison must not tell how much of a guessed secret was right.
    if hook is None or not hmac.compare_digest(hook.secret.encode(), secret.encode()):
        raise system_error("NO_AUTH_FOUND")
    return Caller(hook.user_id, hook.scopes, hook.admin, "", connector)


@dataclass
class _Token:
    user_id: int
    expires: float


class OAuthApp:
    """One installed local application: its tokens, codes and the token endpoint."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        scopes: Collection[str],
        clock: Clock,
        user_id: int = 1,
        admin: bool = True,
    ) -> None:
        self.client_id, self._secret = client_id, client_secret
        self.scopes = frozenset(scopes)
        self.user_id, self.admin = user_id, admin
        self._clock = clock
        self._access: dict[str, _Token] = {}
        self._refresh: dict[str, _Token] = {}
        self._codes: dict[str, _Token] = {}
        self.grants = 0  # tokens issued by the token endpoint, for tests

    def install(self, user_id: int | None = None) -> Json:
        """A fresh token pair, as ONAPPINSTALL hands it to the install handler (§1.1)."""
        return self._issue(self.user_id if user_id is None else user_id, refresh=True)

    def accept_refresh_token(self, token: str) -> None:
        """Take ``token`` as a refresh token of this app, as if issued at install (the
        sandbox: the bridge's config names it before the portal starts)."""
        self._refresh[token] = _Token(self.user_id, self._clock() + REFRESH_TTL)

    def authorization_code(self) -> str:
        """A one-time code for `grant_type=authorization_code` (lives 30 s, §1.1)."""
        code = secrets.token_hex(16)
        self._codes[code] = _Token(self.user_id, self._clock() + CODE_TTL)
        return code

    def expire_all(self) -> None:
        """Every access token expires now (refresh tokens stay valid)."""
        now = self._clock()
        for token in self._access.values():
            token.expires = min(token.expires, now)

    def caller(self, token: Any, connector: str) -> Caller:
        """The caller an `auth=` token names: 401 `expired_token` / `invalid_token` (§1.7)."""
        if not isinstance(token, str) or not token:
            raise system_error("NO_AUTH_FOUND")
        found = self._access.get(token)
        if found is None:
            raise system_error("invalid_token")
        if found.expires <= self._clock():
            raise system_error("expired_token")
        return Caller(found.user_id, self.scopes, self.admin, self.client_id, connector)

    def event_auth(self, user_id: int, *, refresh: bool) -> Json:
        """The OAuth part of an event's `auth[...]` for an app handler (§3.2)."""
        return self._issue(user_id, refresh=refresh)

    def grant(self, params: Mapping[str, Any]) -> Json:
        """The token endpoint: `refresh_token` or `authorization_code` grants (§1.1)."""
        if params.get("client_id") != self.client_id or not hmac.compare_digest(
            str(params.get("client_secret") or "").encode(), self._secret.encode()
        ):
            # Decision: RFC 6749 names; oauth.bitrix.info's exact texts are not referenced.
            raise RestError(401, "invalid_client", "Invalid client credentials")
        kind = params.get("grant_type")
        now = self._clock()
        if kind == "refresh_token":
            # Decision: a refresh token is spent by its use (rotation); reuse is refused.
            held = self._refresh.pop(str(params.get("refresh_token") or ""), None)
        elif kind == "authorization_code":
            held = self._codes.pop(str(params.get("code") or ""), None)
        else:
            raise RestError(400, "unsupported_grant_type", f"Unsupported grant type: {kind}")
        if held is None or held.expires <= now:
            raise RestError(400, "invalid_grant", "Invalid or expired grant")
        self.grants += 1
        return self._issue(held.user_id, refresh=True)

    def _issue(self, user_id: int, *, refresh: bool) -> Json:
        now = self._clock()
        access = secrets.token_hex(24)
        self._access[access] = _Token(user_id, now + ACCESS_TTL)
        pair: Json = {
            "access_token": access,
            "expires": int(now + ACCESS_TTL),
            "expires_in": ACCESS_TTL,
            "scope": ",".join(sorted(self.scopes)),
            "user_id": user_id,
            "status": "L",  # §3.2: L = local application
        }
        if refresh:
            token = secrets.token_hex(24)
            self._refresh[token] = _Token(user_id, now + REFRESH_TTL)
            pair["refresh_token"] = token
        return pair

    def snapshot(self) -> Json:
        """Counts only: tokens never leave the emulator through its state."""
        now = self._clock()
        live = sum(1 for t in self._access.values() if t.expires > now)
        return {"client_id": self.client_id, "live_access_tokens": live, "grants": self.grants}
