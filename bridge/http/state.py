"""Typed keys for what the aiohttp app holds."""

from __future__ import annotations

from aiohttp import web

from bridge.http.auth import ClientAuth
from bridge.runtime import Runtime

RUNTIME = web.AppKey("runtime", Runtime)
AUTH = web.AppKey("auth", ClientAuth)
