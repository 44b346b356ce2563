"""Outbound events of the emulated portal: bindings, online POSTs and the offline queue.

bitrix.md §3.1: `event.bind {event, handler, auth_type, event_type, options}` and
`event.unbind|get` need the application context (403 WRONG_AUTH_TYPE otherwise); offline
bindings need an admin. §3.2: an online event is a form-urlencoded POST of `event`,
`event_handler_id`, `data[FIELDS][ID]`, `ts` and `auth[...]` (domain, client_endpoint,
server_endpoint, member_id, application_token; an app's handler also gets an access token).
§3.4: fire and forget, never retried. §3.5: offline bindings queue instead; a change made
by the application itself with the binding's `auth_connector` is not queued for it
(rest module `ProviderOffline::finalize`: same client_id and connector → skipped, inferred
from source). Online events have no such suppression (§3.4). `ONOFFLINEEVENT` tells app
handlers the queue has news, at most once per `options.minTimeout` seconds (default 1).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import asdict, dataclass, field

import aiohttp

from connectors.bitrix.emulator.auth import Caller, OAuthApp
from connectors.bitrix.emulator.calls import Method, RestCall
from connectors.bitrix.emulator.offline import OfflineQueue
from connectors.bitrix.emulator.wire import (
    Clock,
    Json,
    Reply,
    RestError,
    access_denied,
    argument_error,
    flatten_form,
    php_int,
)

log = logging.getLogger("connectors.bitrix.emulator")
OFFLINE_NOTICE = "ONOFFLINEEVENT"
# Events the portal offers and the scope each needs (§2.2, §2.5, §3.5).
EVENTS = {
    **{f"ONCRM{t}{a}": "crm" for t in ("DEAL", "CONTACT") for a in ("ADD", "UPDATE", "DELETE")},
    "ONCRMDEALMOVETOCATEGORY": "crm",  # §2.2; offered, never raised here (no categories)
    "ONSALEORDERSAVED": "sale",
    "ONORDERENTITYSAVED": "sale",
    "ONSALEBEFOREORDERDELETE": "sale",
    "ONORDERDELETED": "sale",
    OFFLINE_NOTICE: "",
    "ONAPPUNINSTALL": "",
}
DELIVERY_TIMEOUT = 10.0  # Decision: §3.4/§7 leave the handler timeout undocumented


@dataclass
class Portal:
    """How the portal names itself in events: filled in when the emulator starts."""

    url: str = ""
    member_id: str = "0" * 32

    @property
    def domain(self) -> str:
        """`host:port` of the portal."""
        return self.url.split("://", 1)[-1]

    def auth(self, application_token: str) -> Json:
        """The `auth[...]` every event carries (§3.2)."""
        return {
            "domain": self.domain,
            "client_endpoint": f"{self.url}/rest/",
            "server_endpoint": f"{self.url}/rest/",
            "member_id": self.member_id,
            "application_token": application_token,
        }


@dataclass
class Binding:
    """One event handler: online (a URL) or offline (no URL), of the app or a webhook."""

    id: int
    event: str
    handler: str = ""
    user_id: int = 0  # event.bind's auth_type: whose token the handler gets
    connector_id: str = ""
    app: bool = True  # False: an outgoing webhook configured in the UI (§1.1)
    options: Json = field(default_factory=dict)
    last_notice: float = float("-inf")


class EventHub:
    """Bindings and deliveries of one portal with one installed application."""

    def __init__(self, app: OAuthApp, portal: Portal, application_token: str, clock: Clock):
        self.app, self.portal, self._clock = app, portal, clock
        self.application_token = application_token
        self.bindings: list[Binding] = []
        self.offline = OfflineQueue(clock)
        self.sent: list[Json] = []  # every online delivery and its outcome
        self.timeout = DELIVERY_TIMEOUT
        self.muted = False  # seeding writes produce no events
        self._next = 1
        self._pending: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    def add_outgoing_webhook(self, handler: str, events: list[str]) -> None:
        """An outgoing webhook: online events to `handler`, no OAuth tokens (§1.1)."""
        for event in events:
            self.bindings.append(Binding(self._take(), event.upper(), handler, app=False))

    # ---- producing -----------------------------------------------------------------------

    def emit(self, event: str, data: Json, caller: Caller) -> None:
        """Tell every binding of `event` about a change `caller` made."""
        if self.muted:
            return
        queued = False
        for binding in [b for b in self.bindings if b.event == event]:
            if binding.handler:
                self._post(binding, event, data, caller)
            elif not self._own_change(caller, binding):
                self.offline.push(event, data, caller.user_id, binding.connector_id)
                queued = True
        if queued:
            self._notify_offline(caller)

    def _own_change(self, caller: Caller, binding: Binding) -> bool:
        """The application's own change under the binding's connector id (§3.5)."""
        same_app = caller.client_id == self.app.client_id
        return same_app and caller.auth_connector == binding.connector_id

    def _notify_offline(self, caller: Caller) -> None:
        now = self._clock()
        for binding in [b for b in self.bindings if b.event == OFFLINE_NOTICE and b.handler]:
            wait = php_int(binding.options.get("minTimeout"), 1)
            if now - binding.last_notice >= max(wait, 0):
                binding.last_notice = now
                self._post(binding, OFFLINE_NOTICE, None, caller)

    def _post(self, binding: Binding, event: str, data: Json | None, caller: Caller) -> None:
        auth = self.portal.auth(self.application_token)
        if binding.app:
            user = binding.user_id or caller.user_id
            # OnAppInstall/onOfflineEvent send the refresh token too (rest module).
            tokens = self.app.event_auth(user, refresh=event == OFFLINE_NOTICE)
            auth = tokens | auth
        pairs = [("event", event), ("event_handler_id", str(binding.id))]
        if data is not None:
            pairs += flatten_form("data", data)
        pairs += [("ts", str(int(self._clock())))]
        pairs += flatten_form("auth", auth)
        record: Json = {
            "event": event,
            "event_handler_id": binding.id,
            "handler": binding.handler,
            "data": data,
            "auth_keys": sorted(auth),
            "status": None,
            "error": None,
        }
        self.sent.append(record)
        try:
            task = asyncio.get_running_loop().create_task(self._deliver(record, pairs))
        except RuntimeError:
            record["error"] = "not delivered: the emulator is not running"
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, record: Json, pairs: list[tuple[str, str]]) -> None:
        """One POST, never retried (§3.4); the outcome is only recorded."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        try:
            async with self._session.post(record["handler"], data=pairs, timeout=timeout) as r:
                await r.read()
                record["status"] = r.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            log.info("bitrix_emulator_event_lost", extra={"event": record["event"]})

    async def settle(self) -> None:
        """Wait until every delivery started so far has ended."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def close(self) -> None:
        """Cut deliveries still running and close the HTTP session."""
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*list(self._pending), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    # ---- methods -----------------------------------------------------------------------

    def methods(self) -> dict[str, Method]:
        """The method table of `event.bind|unbind|get` and `event.offline.*`."""
        return {
            "event.bind": Method("", self.bind, app_only=True),
            "event.unbind": Method("", self.unbind, app_only=True),
            "event.get": Method("", self.get, app_only=True),
            "events": Method("", self.names, app_only=True),
            **self.offline.methods(),
        }

    def names(self, call: RestCall) -> Reply:
        """`events`: the events this application may bind."""
        return Reply([e for e, scope in EVENTS.items() if _allowed(scope, call.caller)])

    def bind(self, call: RestCall) -> Reply:
        """`event.bind` → true (rest module `Api\\Event::eventBind`)."""
        event = str(call.get("event") or "").upper()
        kind = str(call.get("event_type") or "online").lower()
        user = php_int(call.get("auth_type"))
        handler = str(call.get("handler") or "")
        options = call.get("options")
        if not event:
            raise argument_error("Argument 'EVENT' is null or empty")
        if kind not in ("online", "offline"):
            raise argument_error("Value must be one of {online|offline}")
        handler, user = _handler_and_user(call, kind, handler, user)
        if event not in EVENTS or not _allowed(EVENTS[event], call.caller):
            raise RestError(400, "ERROR_EVENT_NOT_FOUND", "Event not found")
        if not handler and event == OFFLINE_NOTICE:
            raise argument_error("Offline event cannot be registered for this event.")
        connector = call.caller.auth_connector
        for b in self.bindings:
            if b.app and (b.event, b.handler, b.user_id, b.connector_id) == (
                event,
                handler,
                user,
                connector,
            ):
                text = "Unable to set event handler: Handler already binded"
                raise RestError(400, "ERROR_CORE", text)
        given = options if isinstance(options, dict) else {}
        kept = {"minTimeout": php_int(given["minTimeout"])} if "minTimeout" in given else {}
        self.bindings.append(Binding(self._take(), event, handler, user, connector, True, kept))
        return Reply(True)

    def unbind(self, call: RestCall) -> Reply:
        """`event.unbind` → `{count}`."""
        event = str(call.get("event") or "").upper()
        kind = str(call.get("event_type") or "online").lower()
        handler = str(call.get("handler") or "")
        if not event:
            raise argument_error("Argument 'EVENT' is null or empty")
        if kind == "offline":
            if not call.caller.admin:
                raise access_denied("Offline events unbinding requires administrator access rights")
            handler = ""
        elif not handler:
            raise argument_error("Argument 'HANDLER' is null or empty")

        def matches(b: Binding) -> bool:
            if not b.app or (b.event, b.handler) != (event, handler):
                return False
            if kind == "offline":
                return b.connector_id == call.caller.auth_connector
            given = call.get("auth_type")
            return given is None or b.user_id == php_int(given)

        gone = [b for b in self.bindings if matches(b)]
        self.bindings = [b for b in self.bindings if b not in gone]
        return Reply({"count": len(gone)})

    def get(self, call: RestCall) -> Reply:
        """`event.get`: the application's handlers."""
        out: list[Json] = []
        for b in self.bindings:
            if not b.app or (not call.caller.admin and b.user_id != call.caller.user_id):
                continue
            if b.handler:
                entry = {"event": b.event, "handler": b.handler, "auth_type": str(b.user_id)}
                out.append(entry | {"offline": 0})
            else:
                out.append({"event": b.event, "connector_id": b.connector_id, "offline": 1})
        return Reply(out)

    def snapshot(self) -> Json:
        """Bindings, the offline queue and the deliveries, as JSON."""
        bindings = [asdict(b) | {"last_notice": None} for b in self.bindings]
        return {"bindings": bindings, "offline": self.offline.snapshot(), "sent": self.sent}

    def _take(self) -> int:
        self._next += 1
        return self._next - 1


def _allowed(scope: str, caller: Caller) -> bool:
    return scope == "" or scope in caller.scopes


def _handler_and_user(call: RestCall, kind: str, handler: str, user: int) -> tuple[str, int]:
    """The handler URL and user an `event.bind` binds, checked against the caller's rights
    (an offline binding has neither)."""
    if user > 0 and not call.caller.admin and user != call.caller.user_id:
        raise access_denied("Event binding with AUTH_TYPE requires administrator access rights")
    if user <= 0 and not call.caller.admin:
        user = call.caller.user_id
    if kind == "offline":
        if not call.caller.admin:
            raise access_denied("Offline events binding requires administrator access rights")
        return "", 0
    if not handler:
        raise argument_error("Argument 'HANDLER' is null or empty")
    if not handler.startswith(("http://", "https://")):
        # Decision: any http(s) URL is accepted; the cloud refuses local handlers (§1.1),
        # which would make a loopback sandbox useless.
        raise RestError(400, "ERROR_HANDLER_URL_MISMATCH", "Wrong handler URL")
    return handler, user
