"""Bearer-token clients with scopes (PRODUCT 4.1): 401 without or with a bad token, 403
for a missing scope. Tokens are compared in constant time."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from aiohttp import web

from bridge.http.problems import Problem
from bridge.settings import ClientSettings

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="bridge"'}


@dataclass(frozen=True)
class Client:
    """An authenticated API client."""

    name: str
    scopes: frozenset[str]


class ClientAuth:
    """Finds the client a bearer token belongs to."""

    def __init__(self, clients: dict[str, ClientSettings]) -> None:
        self._clients = [
            (c.token.get_secret_value().encode(), Client(name, frozenset(c.scopes)))
            for name, c in clients.items()
        ]

    def authenticate(self, request: web.Request) -> Client:
        """The caller's client, or a 401 problem."""
        token = bearer_token(request)
        if token is None:
            raise Problem(401, "unauthorized", "a bearer token is required", headers=_CHALLENGE)
        found: Client | None = None
        for secret, client in self._clients:
            # Compare against every client so the time taken does not reveal which matched.
            if hmac.compare_digest(secret, token.encode("utf-8", "backslashreplace")):
                found = client
        if found is None:
            raise Problem(401, "unauthorized", "the bearer token is not valid", headers=_CHALLENGE)
        return found

    def require(self, request: web.Request, scope: str) -> Client:
        """The caller's client if it holds ``scope``; 401/403 problems otherwise."""
        client = self.authenticate(request)
        if scope not in client.scopes:
            raise Problem(403, "forbidden", f"this token lacks the {scope!r} scope")
        return client


def bearer_token(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if well formed."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
