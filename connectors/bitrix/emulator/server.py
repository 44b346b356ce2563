"""A faithful Bitrix24 REST portal on loopback, for tests, `bridge sandbox` and `make run`.

bitrix.md §1 is the transport: inbound webhooks `/rest/<user>/<secret>/<method>[.json]` and
the application's `/rest/<method>` with `auth=<access_token>` (§1.1), refreshed at
`/oauth/token/` (the oauth.bitrix.info of the cloud, served here on the same port);
parameters as query, form with PHP brackets or JSON (§1.2); the `{result, next, total,
time}` envelope and `{error, error_description}` with the reference's statuses (§1.3,
§1.7); 50-row pages (§1.4); `batch` (§1.5); the leaky bucket, 503 QUERY_LIMIT_EXCEEDED
(§1.6). Methods: `crm.item.*`, `crm.contact.*`, `crm.deal.*`, user fields,
`crm.duplicate.findbycomm` (§2.1–§2.4), `sale.order.*` (§2.5), `event.*` and the offline
queue (§3), `server.time`, `profile`, `app.info`, `scope`, `feature.get`.

Sandbox-only endpoints under `/__emulator__/` (no auth, loopback only): `GET|POST faults`,
`GET state`, `POST oauth/install` (a token pair, as ONAPPINSTALL delivers it),
`POST oauth/expire` (every access token expires now), `POST edit` (a manager's change in
the UI, which fires events).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Collection, Sequence
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from connectors._emulator.faults import ADMIN, answer_faults
from connectors._emulator.served import ServedEmulator
from connectors._emulator.web import json_object, json_reply, serve
from connectors.bitrix.emulator.auth import (
    DEFAULT_SCOPES,
    PORTAL_USER,
    Caller,
    OAuthApp,
    Webhook,
    webhook_caller,
)
from connectors.bitrix.emulator.crm import CrmStore
from connectors.bitrix.emulator.crm_items import item_methods
from connectors.bitrix.emulator.crm_legacy import legacy_methods
from connectors.bitrix.emulator.dispatch import MethodDispatcher, general_methods
from connectors.bitrix.emulator.events import EVENTS, EventHub, Portal
from connectors.bitrix.emulator.limits import BitrixFaults, PortalBucket
from connectors.bitrix.emulator.portal import PortalAdmin
from connectors.bitrix.emulator.sale import SaleStore, sale_methods
from connectors.bitrix.emulator.wire import (
    Clock,
    Json,
    RestError,
    method_not_found,
    parse_php_pairs,
    system_error,
)

MAX_BODY = 16 * 1024 * 1024  # a 50-command batch of rich deals is past aiohttp's 1 MB
DEFAULT_WEBHOOK = Webhook(1, "sandbox0webhook1")  # 16 characters, like a portal's codes
DEFAULT_APPLICATION_TOKEN = "sandbox-bitrix-app-token"  # noqa: S105 - README's sandbox value
DEFAULT_CLIENT_ID = "local.sandbox0000000001"
DEFAULT_CLIENT_SECRET = "sandbox-bitrix-client-secret"  # noqa: S105 - the sandbox's own
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# The current request's injected error code, from the middleware to the handler (same task).
_FAULT_ERROR: ContextVar[str | None] = ContextVar("bitrix_fault_error", default=None)


class BitrixEmulator(ServedEmulator):
    """One Bitrix24 portal with one installed local application, served on loopback."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        webhooks: Sequence[Webhook] = (DEFAULT_WEBHOOK,),
        application_token: str = DEFAULT_APPLICATION_TOKEN,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        app_scopes: Collection[str] = DEFAULT_SCOPES,
        event_handler: str | None = None,
        clock: Clock | None = None,
        burst: int = 50,
        leak: float = 2.0,
        seed: bool = True,
    ) -> None:
        """`event_handler` is an outgoing webhook's URL: it gets every event online (§1.1).
        `burst`/`leak` are the leaky bucket's X and Y (§1.6); 0 turns the limit off."""
        self.host, self.port = host, port
        self.clock: Clock = clock or time.time
        self.webhooks = {hook.user_id: hook for hook in webhooks}
        self.url = ""  # set by start(), once the port is known
        self.faults = BitrixFaults()
        self.bucket = PortalBucket(burst, leak, self.clock)
        self.app = OAuthApp(
            client_id=client_id, client_secret=client_secret, scopes=app_scopes, clock=self.clock
        )
        self.portal = Portal(member_id=hashlib.md5(client_id.encode()).hexdigest())  # noqa: S324
        self.events = EventHub(self.app, self.portal, application_token, self.clock)
        if event_handler:
            self.events.add_outgoing_webhook(event_handler, list(EVENTS))
        self.crm = CrmStore(self.clock, self.events.emit)
        self.sale = SaleStore(self.clock, self.events.emit)
        methods = {
            **legacy_methods(self.crm),
            **item_methods(self.crm),
            **sale_methods(self.sale),
            **self.events.methods(),
            **general_methods(self.app, self.clock, _profile),
        }
        self.dispatcher = MethodDispatcher(methods, self.faults, self.clock)
        self.admin = PortalAdmin(self.crm, self.sale, self.events)
        self.stats: Json = {"requests": 0, "rate_limited": 0, "by_method": {}}
        self._runner: web.AppRunner | None = None
        if seed:
            self.admin.seed_sandbox()

    async def start(self) -> None:
        """Listen on host:port (a free port when 0) and publish `url`."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._gate], client_max_size=MAX_BODY)
        app.router.add_route("*", "/rest/{tail:.*}", self._rest)
        for path in ("/oauth/token", "/oauth/token/"):
            app.router.add_route("*", path, self._token)
        app.router.add_route("GET", f"{ADMIN}/faults", self._faults_get)
        app.router.add_route("POST", f"{ADMIN}/faults", self._faults_post)
        app.router.add_route("GET", f"{ADMIN}/state", self._state)
        app.router.add_route("POST", f"{ADMIN}/oauth/install", self._install)
        app.router.add_route("POST", f"{ADMIN}/oauth/expire", self._expire)
        app.router.add_route("POST", f"{ADMIN}/edit", self._edit)
        self._runner, self.port, base = await serve(app, self.host, self.port)
        self.url = base
        self.portal.url = self.url

    async def stop(self) -> None:
        """Stop listening; hanging requests and event deliveries are cut off."""
        await self.events.close()
        await super().stop()

    @property
    def webhook_url(self) -> str:
        """The first inbound webhook's base URL, ending in `/` (§1.1)."""
        if not self.webhooks:
            raise ValueError("this emulator accepts no inbound webhook")
        hook = next(iter(self.webhooks.values()))
        return f"{self.url}/rest/{hook.user_id}/{hook.secret}/"

    def install_app(self) -> Json:
        """A fresh token pair of the application, as ONAPPINSTALL hands it over (§1.1)."""
        return self.app.install()

    async def settle(self) -> None:
        """Wait until every outbound event started so far was delivered or lost."""
        await self.events.settle()

    def snapshot(self) -> Json:
        """Everything stored, the queue, the events sent and the request counters."""
        stats = self.stats | {"calls": dict(self.dispatcher.calls)}
        return self.admin.snapshot() | {
            "oauth": self.app.snapshot(),
            "faults": self.faults.snapshot(),
            "stats": stats,
        }

    # ---- HTTP --------------------------------------------------------------------------

    async def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        """Injected faults as the web server in front would show them."""
        faults = self.faults.take(method=_method_of(request.path))
        refused = await answer_faults(request, faults)
        if refused is None:
            _FAULT_ERROR.set(faults.error)  # the handler runs in this task: it sees this
        return refused

    async def _rest(self, request: web.Request) -> web.Response:
        self.stats["requests"] += 1
        by_method, counted = self.stats["by_method"], _method_of(request.path)
        by_method[counted] = by_method.get(counted, 0) + 1
        try:
            method, params, caller = await self._admit(request)
        except RestError as exc:
            return json_reply(exc.status, exc.body())
        status, body = self.dispatcher.run(method, params, caller, _FAULT_ERROR.get())
        return json_reply(status, body)

    async def _admit(self, request: web.Request) -> tuple[str, Json, Caller]:
        """Transport, leaky bucket, method and credentials, in CRestServer's order."""
        parts = request.match_info["tail"].strip("/").split("/")
        if parts[-1].lower().endswith(".xml"):
            # Decision: only the JSON transport is emulated (§1.1: `.json` is the default).
            raise RestError(400, "INVALID_REQUEST", "XML transport is not emulated")
        params = await _read_params(request)
        if not self.bucket.admit(request.remote or ""):
            self.stats["rate_limited"] += 1
            raise system_error("QUERY_LIMIT_EXCEEDED")
        method = parts[-1].lower().removesuffix(".json")
        # CRestServer looks the method up before it checks the credentials.
        if len(parts) not in (1, 3) or method not in self.dispatcher.methods:
            raise method_not_found()
        return method, params, self._caller(parts, params)

    def _caller(self, parts: list[str], params: Json) -> Caller:
        connector = str(params.pop("auth_connector", "") or "")  # §3.5, part of the auth
        token = params.pop("auth", None)
        if len(parts) == 3:
            return webhook_caller(self.webhooks, parts[0], parts[1], connector)
        return self.app.caller(token, connector)

    async def _token(self, request: web.Request) -> web.Response:
        """oauth.bitrix.info's `/oauth/token/` (§1.1): refresh_token and code grants."""
        try:
            if _FAULT_ERROR.get() is not None:
                raise system_error(str(_FAULT_ERROR.get()))
            params = await _read_params(request)
            return json_reply(200, self.app.grant(params))
        except RestError as exc:
            return json_reply(exc.status, exc.body())

    async def _faults_get(self, request: web.Request) -> web.Response:
        return json_reply(200, self.faults.snapshot())

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            self.faults.set(**json_object(await request.read() or b"{}"))
        except (TypeError, ValueError) as exc:  # TypeError: an unknown setting
            return json_reply(400, {"error": "BAD_FAULTS", "error_description": str(exc)})
        return json_reply(200, self.faults.snapshot())

    async def _state(self, request: web.Request) -> web.Response:
        return json_reply(200, self.snapshot())

    async def _install(self, request: web.Request) -> web.Response:
        return json_reply(200, self.install_app())

    async def _expire(self, request: web.Request) -> web.Response:
        self.app.expire_all()
        return json_reply(200, {"result": True})

    async def _edit(self, request: web.Request) -> web.Response:
        """A manager's change: `{"entity": "contact"|"deal"|"order", "id"?, "fields"?,
        "delete"?}` with the old UPPER_CASE names (camelCase for orders)."""
        try:
            body = json_object(await request.read())
            entity, number = str(body.get("entity")), body.get("id")
            if body.get("delete"):
                self.admin.delete(entity, int(str(number)))
                return json_reply(200, {"result": True})
            fields = json_object(json.dumps(body.get("fields") or {}).encode())
            return json_reply(200, {"result": self.admin.edit(entity, fields, number)})
        except (KeyError, ValueError, TypeError) as exc:
            return json_reply(400, {"error": "BAD_EDIT", "error_description": str(exc)})
        except RestError as exc:
            return json_reply(exc.status, exc.body())


def _profile(caller: Caller) -> Json:
    """`profile`: the calling user (rest module `getProfile`)."""
    return {
        "ID": str(caller.user_id),
        "ADMIN": caller.admin,
        "NAME": "Sandbox",
        "LAST_NAME": "Admin" if caller.user_id == PORTAL_USER.user_id else f"User {caller.user_id}",
        "PERSONAL_GENDER": "",
        "TIME_ZONE": "",
        "TIME_ZONE_OFFSET": 10800,
    }


def _method_of(path: str) -> str:
    """The REST method a path calls (`oauth.token` for the token endpoint)."""
    if path.startswith("/oauth/"):
        return "oauth.token"
    return path.rstrip("/").rsplit("/", 1)[-1].lower().removesuffix(".json")


async def _read_params(request: web.Request) -> Json:
    """Query, then form (PHP brackets) or JSON body parameters (§1.2)."""
    pairs = list(request.query.items())
    if request.body_exists:
        if request.content_type == "application/json":
            raw = await request.read()
            try:
                data = json.loads(raw) if raw.strip() else {}
            except ValueError:
                raise RestError(400, "INVALID_REQUEST", "The body is not valid JSON") from None
            if not isinstance(data, dict):
                raise RestError(400, "INVALID_REQUEST", "The JSON body must be an object")
            return parse_php_pairs(pairs) | data
        if request.content_type in FORM_TYPES:
            form = await request.post()
            pairs += [(k, v) for k, v in form.items() if isinstance(v, str)]
    return parse_php_pairs(pairs)


def sandbox_emulator(name: str, system: Any, options: Any) -> BitrixEmulator:
    """The sandbox portal a Bitrix system's options point at (``bridge serve`` with
    ``sandbox.enabled``): its webhook URL's user and secret, the system's application token,
    and the OAuth app's credentials, the configured refresh token accepted as issued."""
    url = options.url.get_secret_value() if options.url is not None else ""
    where = urlsplit(url)
    hooks: tuple[Webhook, ...] = (DEFAULT_WEBHOOK,)
    found = re.search(r"/rest/(\d+)/([^/]+)/?$", where.path)
    if found:
        hooks = (Webhook(int(found.group(1)), found.group(2)),)
    webhook = system.webhook
    token = webhook.token.get_secret_value() if webhook is not None and webhook.token else None
    oauth = options.oauth
    emulator = BitrixEmulator(
        host=where.hostname or "127.0.0.1",
        port=where.port or 80,
        webhooks=hooks,
        application_token=token or DEFAULT_APPLICATION_TOKEN,
        client_id=oauth.client_id if oauth else DEFAULT_CLIENT_ID,
        client_secret=oauth.client_secret.get_secret_value() if oauth else DEFAULT_CLIENT_SECRET,
        burst=50,
        leak=2.0,
    )
    if oauth is not None:
        emulator.app.accept_refresh_token(oauth.refresh_token.get_secret_value())
    return emulator
