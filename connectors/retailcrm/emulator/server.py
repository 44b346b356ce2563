"""A faithful RetailCRM API v5 on loopback, for tests, `bridge sandbox` and `sandbox.enabled`.

retailcrm-api.md §1 is the transport: the key in `X-API-KEY` or an `apiKey` parameter
(§1.2), form-encoded POSTs with JSON strings inside fields and PHP-style bracketed GET
filters (§1.3), the `success/errorMsg/errors` envelope (§1.4), 201/400/403/404/460/503 and
an HTML 405 for a non-GET outside `/api/` (§1.5), 10 requests/s per key (§1.6). Orders and
customers live in state.py, loyalty in loyalty.py (this package's modules).

Statuses, external ids, payments, merges and corporate customers: routes.py. Injected
faults are the shared ones (``connectors/_emulator/faults.py``).

Sandbox-only endpoints under `/__emulator__/` (no key, loopback only): `GET|POST faults`,
`GET state`, `GET sms` (the codes "sent"), `POST user-edit` (a manager's change in the UI).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus

from aiohttp import hdrs, web

from connectors._emulator.faults import ADMIN, EmulatorFaults, answer_faults
from connectors._emulator.served import ServedEmulator
from connectors._emulator.web import json_object, json_reply, nginx_page, serve
from connectors.retailcrm.emulator.checkout import LoyaltyCheckout
from connectors.retailcrm.emulator.corporate import CorporateBook
from connectors.retailcrm.emulator.history import CUSTOMER, ORDER, EntityKind, HistoryChange
from connectors.retailcrm.emulator.loyalty import LoyaltyState
from connectors.retailcrm.emulator.routes import more_routes
from connectors.retailcrm.emulator.state import RetailcrmState
from connectors.retailcrm.emulator.wire import ApiError, Clock, Json, parse_brackets

log = logging.getLogger("connectors.retailcrm.emulator")
MAX_BODY = 16 * 1024 * 1024  # aiohttp's 1 MB default is below a 50-order upload with rich orders
DEFAULT_KEYS = {"sandbox-bridge-key-0001": "bridge", "sandbox-manager-key-0001": "manager"}
# GET /api/credentials (§1.1): what the Bitrix module checks at install, plus loyalty.
SCOPES = (
    "order_read",
    "order_write",
    "customer_read",
    "customer_write",
    "loyalty_read",
    "loyalty_write",
    "reference_read",
    "integration_read",
)
Reply = tuple[int, Json]


@dataclass
class ApiCall:
    """One authenticated API request: decoded parameters, path parts and the caller's key."""

    params: Json
    path: dict[str, str]
    key: str

    @property
    def change(self) -> HistoryChange:
        """A change made by this request (`source: api` with this key)."""
        return HistoryChange("api", self.key)

    @property
    def ref(self) -> str:
        """The `{externalId}` / `{id}` path segment."""
        return self.path["ref"]


Handler = Callable[[ApiCall], Json | Reply]


class RetailcrmEmulator(ServedEmulator):
    """One RetailCRM account served on loopback, with fault injection."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_keys: Mapping[str, str] | None = None,
        sites: Sequence[str] = ("shop",),
        rate_limit: float = 10.0,
        confirm_sms_charge: bool = False,
        confirm_sms_registration: bool = False,
        seed: bool = True,
        clock: Clock | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.api_keys = dict(DEFAULT_KEYS if api_keys is None else api_keys)
        self.rate_limit = rate_limit  # requests per second and key; <= 0 turns the limit off
        if isinstance(sites, str):
            raise TypeError("sites is a sequence of store codes, e.g. ('shop',)")
        self.state = RetailcrmState(tuple(sites), clock)
        self.loyalty = LoyaltyState(
            self.state,
            confirm_sms_charge=confirm_sms_charge,
            confirm_sms_registration=confirm_sms_registration,
        )
        self.checkout = LoyaltyCheckout(self.loyalty)
        self.corporate = CorporateBook(self.state)
        self.faults = EmulatorFaults()
        self.stats = {"requests": 0, "rateLimited": 0}
        self.requests_by_key: dict[str, int] = {}  # by the key's name, for benches
        # Admitted requests by "METHOD route pattern" (`GET v5/orders/(?P<ref>[^/]+)`), for
        # tests and benches that count what a flow costs.
        self.requests_by_route: dict[str, int] = {}
        self.url = ""  # set by start(), once the port is known
        self._windows: dict[str, deque[float]] = {}
        self._routes = self._route_table()
        self._runner: web.AppRunner | None = None
        if seed:
            self.seed_sandbox()

    def seed_sandbox(self) -> None:
        """Customers c-1 (+79000000001, card 2000000000015, 1000 points), c-2, c-3; two orders."""
        self.state.seed_sandbox()
        self.loyalty.seed_sandbox()

    async def start(self) -> None:
        """Listen on host:port (a free port when 0) and publish `url`."""
        if self._runner is not None:
            return
        app = web.Application(middlewares=[self._gate], client_max_size=MAX_BODY)
        app.router.add_route("*", "/api/{tail:.*}", self._api)
        app.router.add_route("GET", f"{ADMIN}/faults", self._faults_get)
        app.router.add_route("POST", f"{ADMIN}/faults", self._faults_post)
        app.router.add_route("GET", f"{ADMIN}/state", self._state)
        app.router.add_route("GET", f"{ADMIN}/sms", self._sms)
        app.router.add_route("POST", f"{ADMIN}/user-edit", self._user_edit)
        app.router.add_route("*", "/{tail:.*}", self._not_an_account)
        self._runner, self.port, base = await serve(app, self.host, self.port)
        self.url = base

    async def _refuse(self, request: web.Request) -> web.StreamResponse | None:
        """Injected faults as the web server in front would show them."""
        return await answer_faults(request, self.faults.take())

    async def _not_an_account(self, request: web.Request) -> web.Response:
        # §1.5: a wrong account URL answers a non-GET with 405 and an HTML page.
        return nginx_page(
            HTTPStatus.NOT_FOUND
            if request.method == hdrs.METH_GET
            else HTTPStatus.METHOD_NOT_ALLOWED
        )

    async def _api(self, request: web.Request) -> web.Response:
        self.stats["requests"] += 1
        pairs = list(request.query.items())
        if request.method == hdrs.METH_POST:
            form = await request.post()
            pairs += [(k, v) for k, v in form.items() if isinstance(v, str)]
        params = parse_brackets(pairs)
        # §1.2: the header or an `apiKey` GET/form parameter.
        key = request.headers.get("X-API-KEY") or params.pop("apiKey", None)
        params.pop("apiKey", None)
        if not key:
            return json_reply(403, ApiError(403, '"apiKey" is missing.').body())
        if not isinstance(key, str) or key not in self.api_keys:
            return json_reply(403, ApiError(403, 'Wrong "apiKey" value.').body())
        name = self.api_keys[key]
        self.requests_by_key[name] = self.requests_by_key.get(name, 0) + 1
        if not self._admit(key):
            self.stats["rateLimited"] += 1
            # §1.5/§1.6: 503 on excess; the body is [unconfirmed], a small JSON envelope here.
            return json_reply(503, {"success": False, "errorMsg": "Rate limit exceeded"})
        tail = request.match_info["tail"]
        for method, pattern, route in self._routes:
            found = pattern.fullmatch(tail)
            if found and method == request.method:
                shape = f"{method} {pattern.pattern}"
                self.requests_by_route[shape] = self.requests_by_route.get(shape, 0) + 1
                try:
                    answer = route(ApiCall(params, found.groupdict(), key))
                    # §1.5: 201 for every `…/create` (the PHP loyalty fixture's 200 is that
                    # test's choice); upload chooses its own (200 or 460).
                    status, body = answer if isinstance(answer, tuple) else (200, answer)
                    if status == 200 and tail.endswith("/create"):
                        status = 201
                except ApiError as exc:
                    status, body = exc.status, exc.body()
                except Exception:  # a request the emulator did not foresee: a 500 like PHP's
                    log.exception("retailcrm_emulator_error")
                    status, body = 500, {"success": False, "errorMsg": "Internal Server Error"}
                return json_reply(status, body)
        return json_reply(404, {"success": False, "errorMsg": "API method not found"})

    def _admit(self, key: str) -> bool:
        """A sliding one-second window per key: at most `rate_limit` requests in any 1-s span.

        §1.6 gives the figure ("RPS for the single key": 10) but not how it is metered; a
        sliding window is the strictest reading that still grants it in full (a per-second
        counter would let 2 x 10 through across a second's edge). A request is counted when
        its handler runs, after its body was read, not when it arrived: under load the
        emulator counts later than a server's front would, and a queue of requests drained
        at once can look denser here than it was sent (bench/README.md, RetailCRM mirroring).
        """
        if self.rate_limit <= 0:
            return True
        now = time.monotonic()
        window = self._windows.setdefault(key, deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= self.rate_limit:
            return False
        window.append(now)
        return True

    def _route_table(self) -> list[tuple[str, re.Pattern[str], Handler]]:
        lo, co, acc = self.loyalty, self.checkout, "v5/loyalty/account/(?P<ref>[^/]+)"
        table: list[tuple[str, str, Handler]] = [
            ("GET", "api-versions", lambda c: {"success": True, "versions": ["3.0", "4.0", "5.0"]}),
            ("GET", "credentials", lambda c: self._credentials()),
            # Before orders/{externalId}, which would swallow them.
            ("POST", "v5/orders/loyalty/apply", lambda c: co.apply(c.params, c.change)),
            (
                "POST",
                "v5/orders/loyalty/cancel-bonus-operations",
                lambda c: co.cancel(c.params, c.change),
            ),
            *more_routes(self.state, self.corporate, self.loyalty),
            *_entity_routes(self.state, ORDER),
            *_entity_routes(self.state, CUSTOMER),
            ("GET", "v5/loyalty/loyalties", lambda c: lo.loyalties(c.params)),
            ("GET", "v5/loyalty/loyalties/(?P<ref>[^/]+)", lambda c: lo.loyalty(c.ref)),
            ("GET", "v5/loyalty/accounts", lambda c: lo.accounts_list(c.params)),
            ("GET", "v5/loyalty/bonus/operations", lambda c: lo.all_operations(c.params)),
            ("POST", "v5/loyalty/calculate", lambda c: co.calculate(c.params)),
            ("POST", "v5/loyalty/account/create", lambda c: lo.account_create(c.params)),
            ("GET", acc, lambda c: lo.account_get(c.ref)),
            ("POST", f"{acc}/edit", lambda c: lo.account_edit(c.ref, c.params)),
            ("POST", f"{acc}/activate", lambda c: co.activate(c.ref)),
            ("POST", f"{acc}/bonus/credit", lambda c: lo.credit(c.ref, c.params)),
            ("POST", f"{acc}/bonus/charge", lambda c: lo.charge(c.ref, c.params)),
            ("GET", f"{acc}/bonus/operations", lambda c: lo.account_operations(c.ref, c.params)),
            (
                "GET",
                f"{acc}/bonus/(?P<status>[^/]+)/details",
                lambda c: lo.details(c.ref, c.path["status"], c.params),
            ),
            ("POST", "v5/verification/sms/confirm", lambda c: co.sms_confirm(c.params, c.change)),
            ("GET", "v5/verification/sms/(?P<ref>[^/]+)/status", lambda c: co.sms_status(c.ref)),
        ]
        return [(method, re.compile(path), route) for method, path, route in table]

    def _credentials(self) -> Json:
        return {
            "success": True,
            "scopes": list(SCOPES),
            "siteAccess": "access_full",
            "sitesAvailable": list(self.state.sites),
        }

    async def _faults_get(self, request: web.Request) -> web.Response:
        return json_reply(200, self.faults.snapshot())

    async def _faults_post(self, request: web.Request) -> web.Response:
        try:
            self.faults.set(**json_object(await request.read() or b"{}"))
        except (TypeError, ValueError) as exc:  # TypeError: an unknown setting
            return json_reply(400, {"success": False, "errorMsg": str(exc)})
        return json_reply(200, self.faults.snapshot())

    async def _state(self, request: web.Request) -> web.Response:
        stats = self.stats | {"byKey": self.requests_by_key}
        corporate = {"customersCorporate": list(self.corporate.book.values())}
        body = self.state.snapshot() | corporate | self.loyalty.snapshot() | {"stats": stats}
        return json_reply(200, body)

    async def _sms(self, request: web.Request) -> web.Response:
        return json_reply(200, {"success": True, "messages": self.checkout.sms})

    async def _user_edit(self, request: web.Request) -> web.Response:
        """A manager's change in the UI: history `source: "user"` with `user.id`.

        Body: {"entity": "order"|"customer", "id": "...", "by": "externalId"|"id",
        "site": null, "changes": {...}, "userId": 1}.
        """
        try:
            body = json_object(await request.read())
            kind = {"order": ORDER, "customer": CUSTOMER}[str(body.get("entity"))]
            entity = self.state.find(
                kind, body.get("id"), body.get("by") or "externalId", body.get("site")
            )
            changes = json_object(json.dumps(body.get("changes")).encode())
            change = HistoryChange("user", None, int(body.get("userId") or 1))
            saved = self.state.patch(kind, entity, changes, change)
        except (KeyError, ValueError) as exc:
            return json_reply(400, {"success": False, "errorMsg": f"bad user edit: {exc}"})
        except ApiError as exc:
            return json_reply(exc.status, exc.body())
        return json_reply(200, {"success": True, kind.name: self.state.render(kind, saved)})


def _entity_routes(state: RetailcrmState, kind: EntityKind) -> list[tuple[str, str, Handler]]:
    """The §2.1 / §3.1 endpoints of orders or customers."""
    base, ref = f"v5/{kind.plural}", "(?P<ref>[^/]+)"
    return [
        ("GET", base, lambda c: state.search(kind, c.params)),
        ("POST", f"{base}/create", lambda c: state.create(kind, c.params, c.change)),
        ("POST", f"{base}/upload", lambda c: state.upload(kind, c.params, c.change)),
        ("GET", f"{base}/history", lambda c: state.history(kind, c.params, c.key)),
        ("POST", f"{base}/{ref}/edit", lambda c: state.edit(kind, c.ref, c.params, c.change)),
        ("GET", f"{base}/{ref}", lambda c: state.get(kind, c.ref, c.params)),
    ]
