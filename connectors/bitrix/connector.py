"""The Bitrix24 connector: events in, entities read, listed and written, balances out.

- **In**: online events at ``/hooks/<system>`` (the application token checked), and, with
  an OAuth application, the offline queue polled with ``clear=0`` and cleared only after
  the changes are stored (bitrix.md §3.5). With the queue on, an online event only wakes
  the poller: the queue has it too, and the bridge's own writes are kept out of it by
  ``auth_connector``, so nothing echoes.
- **Out**: contacts and deals through ``crm.item.*`` (or shop orders through
  ``sale.order.*``), in ``batch`` calls of up to 50 (§1.5), keyed by the bridge's
  ``originId``/``xmlId`` (``writes.py``). Online events are parsed in ``webhooks.py``,
  the OAuth tokens kept in ``tokens.py``.
- Every call waits on one leaky bucket per portal (§1.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from bridge.connector import (
    DeliveryJob,
    ListedEntity,
    ListPage,
    PollResult,
)
from bridge.errors import ConfigError, DeliveryError, PermanentError
from bridge.logs import get_logger
from bridge.settings import SystemSettings, WebhookAuth
from connectors.bitrix.budget import SharedBucket
from connectors.bitrix.client import (
    BATCH_MAX,
    PAGE,
    BitrixClient,
    BitrixError,
    LeakyBucket,
)
from connectors.bitrix.errors import classify, is_not_found
from connectors.bitrix.kinds import CUSTOMER, DEAL, Kind, kinds
from connectors.bitrix.options import BitrixOptions
from connectors.bitrix.tokens import oauth_tokens
from connectors.bitrix.webhooks import EVENTS, BitrixWebhooks, entity_names, offline_event
from connectors.bitrix.writes import BitrixWriter

log = get_logger("connectors.bitrix")

CLEAR = "clear:"  # cursor: the offline batch stored and still to be cleared


class BitrixConnector:
    """One Bitrix24 portal."""

    # bitrix.md §3.3: every outbound event carries auth[application_token]; we check it.
    authenticates_body = True
    batch_size = BATCH_MAX

    def __init__(
        self, name: str, options: BitrixOptions, system: SystemSettings, token: bytes | None
    ) -> None:
        self.name = name
        self.options = options
        self._names = entity_names(options.orders)
        self._kinds = kinds(options.orders)
        self._connector = options.auth_connector
        offline = options.calls and options.oauth is not None and options.poll_interval > 0
        self.feeds: tuple[str, ...] = ("offline",) if offline else ()
        self.poll_interval = options.poll_interval if offline else 0.0
        self._client: BitrixClient | None = None
        if options.url is not None:
            rate = options.rate
            self._client = BitrixClient(
                options.url.get_secret_value(),
                limiter=SharedBucket(
                    LeakyBucket(rate.burst, rate.per_second), options.url.get_secret_value()
                ),
                timeout=system.delivery.timeout_seconds,
                oauth=oauth_tokens(name, options),
            )
        self._recovered = False  # orphan reservations of the offline queue looked for
        self._bound = False  # offline bindings made since start
        self._writer = BitrixWriter(self._kinds, options, self._require_client, self._call)
        self.deliver_batch = self._writer.deliver_batch
        # Online events at /hooks/<system>; with the offline queue on they only wake it.
        self.parse_webhook = BitrixWebhooks(name, options, token, queued=offline).parse_webhook
        # bridge.connector.BalanceMirror: the master's balance goes into a contact field.
        self.mirrors_balances = options.balance_field is not None and options.calls

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Nothing to open: connections are made on first use."""

    async def close(self) -> None:
        """Close pooled connections."""
        if self._client is not None:
            await self._client.close()

    async def probe(self) -> str:
        """``bridge check --probe``: the webhook or token works."""
        answer = await self._call("profile", {})
        who = answer.get("ID") if isinstance(answer, Mapping) else None
        return f"Bitrix24 REST (user {who})"

    # -- change capture ------------------------------------------------------------------

    async def poll(self, feed: str, cursor: str | None) -> PollResult:
        """The offline queue (§3.5): clear the batch stored by the last poll (the cursor
        names it), then reserve the next with ``clear=0``. A batch reserved by a process
        killed before it stored it is found with ``event.offline.list`` and read again by
        its ``process_id`` after a restart."""
        if feed != "offline":
            raise ConfigError(f"Bitrix has no feed {feed!r}")
        if not self._bound:
            await self._bind()
        pending = cursor.removeprefix(CLEAR) if cursor and cursor.startswith(CLEAR) else None
        if pending:
            await self._call(
                "event.offline.clear", {"process_id": pending, "auth_connector": self._connector}
            )
        process_id: str | None = None
        if not self._recovered:
            process_id = await self._orphan(pending)
            self._recovered = process_id is None
        query: dict[str, Any] = {"clear": 0, "limit": PAGE, "auth_connector": self._connector}
        if process_id is not None:
            query["process_id"] = process_id
        answer = await self._call("event.offline.get", query)
        rows = answer.get("events") if isinstance(answer, Mapping) else None
        rows = rows if isinstance(rows, list) else []
        process_id = str(answer.get("process_id") or "") if isinstance(answer, Mapping) else ""
        events = [e for e in (offline_event(r, self._names) for r in rows) if e is not None]
        if not rows:
            return PollResult([], "", more=not self._recovered)
        more = len(rows) >= PAGE or not self._recovered
        return PollResult(events, f"{CLEAR}{process_id}", more)

    async def _bind(self) -> None:
        """Offline bindings of the events of what this portal mirrors, with our connector
        (§3.1: bind every time, a reinstall wipes them; §3.5: ``event_type: offline``)."""
        wanted = {k for k, entity in self._names.items() if entity in self._kinds}
        for name, (kind, _action) in EVENTS.items():
            if kind not in wanted:
                continue
            params = {"event": name, "event_type": "offline", "auth_connector": self._connector}
            try:
                await self._call("event.bind", params)
            except PermanentError as exc:
                cause = exc.__cause__
                if not (isinstance(cause, BitrixError) and "already" in cause.description):
                    raise
        self._bound = True

    async def _orphan(self, cleared: str | None) -> str | None:
        """A process id holding records nobody will clear (a batch reserved, not stored).
        The whole list is read: a reserved record may sit on any page (records keep their
        id when later changes merge into them, §3.5)."""
        query = {"auth_connector": self._connector, "order": {"ID": "ASC"}}
        try:
            async for page in self._require_client().pages("event.offline.list", query):
                rows = page.result if isinstance(page.result, list) else []
                for row in rows:
                    owner = str(row.get("PROCESS_ID") or "") if isinstance(row, Mapping) else ""
                    if owner and owner != cleared:
                        return owner
        except BitrixError as exc:
            raise classify(exc) from exc
        return None

    # -- reading -------------------------------------------------------------------------

    def reads(self, entity: str) -> bool:
        """Deals (or shop orders) and contacts are read, so None from a read means gone."""
        return entity in self._kinds

    async def read_entity(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """The deal, contact or shop order as Bitrix holds it now (an event only says "ID X
        changed", §3.2); None once it is gone. ``externalId`` is added from the bridge's key
        so a write-back finds the system the entity came from."""
        kind = self._kinds.get(entity)
        if kind is None or not entity_id.isdigit():
            return None
        if kind is DEAL:
            return await self._read_deal(entity_id)
        method, params = kind.get(entity_id)
        try:
            found = kind.one(await self._call(method, params))
        except PermanentError as exc:
            if isinstance(exc.__cause__, BitrixError) and is_not_found(exc.__cause__):
                return None
            raise
        return None if found is None else _with_external_id(kind, found)

    async def _read_deal(self, deal_id: str) -> dict[str, Any] | None:
        """The deal and, in the same request, its contact (§1.5: ``$result[...]``): a deal
        names its customer by id only, and the orders it becomes need the phone and name.
        ``contact`` is ``{id, name, lastName, secondName, phone, email}`` (the first phone
        and e-mail), or absent when the deal has none."""
        method, params = DEAL.get(deal_id)
        contact = CUSTOMER.get("0")[1] | {"id": "$result[deal][item][contactId]"}
        commands = {"deal": (method, params), "contact": ("crm.item.get", contact)}
        try:
            answer = await self._require_client().batch(commands)
        except BitrixError as exc:
            raise classify(exc) from exc
        if "deal" in answer.errors:
            error = answer.errors["deal"]
            if is_not_found(error):
                return None
            raise classify(error)
        found = DEAL.one(answer.results.get("deal"))
        if found is None:
            return None
        state = _with_external_id(DEAL, found)
        person = CUSTOMER.one(answer.results.get("contact"))  # None: no contact (an error)
        if person is not None:
            state["contact"] = _contact_of(person)
        return state

    def lists(self, entity: str) -> bool:
        """Deals or shop orders, and contacts, can be listed."""
        return entity in self._kinds and self._client is not None

    async def list_entities(self, entity: str, since: date | None, cursor: str | None) -> ListPage:
        """One page of the fast scan (§1.4: ``>ID``, ``start=-1``), oldest id first; the
        cursor is the last id listed, so a page boundary never moves."""
        kind = self._kinds[entity]
        method, params = kind.listing(since)
        after = int(cursor) if cursor and cursor.isdigit() else 0
        query = dict(params) | {"order": {"id": "ASC"}, "start": -1}
        query["filter"] = dict(params["filter"]) | {">id": after}
        rows = kind.rows(await self._call(method, query))
        listed = [ListedEntity(str(r["id"]), _with_external_id(kind, r)) for r in rows]
        following = listed[-1].entity_id if len(rows) >= PAGE else None
        return ListPage(listed, following)

    # -- writing -------------------------------------------------------------------------

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Write one entity; its Bitrix id."""
        [result] = await self.deliver_batch([job])
        if isinstance(result, DeliveryError):
            raise result
        return result

    def batchable(self, job: DeliveryJob) -> bool:
        """Deals, contacts, shop orders and balances all go in ``batch``."""
        return self._writer.takes(job)

    # -- the wire ------------------------------------------------------------------------

    async def _call(self, method: str, params: Mapping[str, Any]) -> Any:
        try:
            return (await self._require_client().call(method, params)).result
        except BitrixError as exc:
            raise classify(exc) from exc

    def _require_client(self) -> BitrixClient:
        if self._client is None:
            raise ConfigError(
                f"system {self.name!r} has no options.url: the bridge only takes its webhooks"
            )
        return self._client


def _contact_of(person: Mapping[str, Any]) -> dict[str, Any]:
    """A contact as a deal's state carries it: names, and the first phone and e-mail of its
    ``fm`` entries (crm.item's multifields, §2.1)."""
    values: dict[str, str] = {}
    for entry in person.get("fm") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("value"), str):
            values.setdefault(str(entry.get("typeId")), entry["value"])
    return {
        "id": person.get("id"),
        "name": person.get("name"),
        "lastName": person.get("lastName"),
        "secondName": person.get("secondName"),
        "phone": values.get("PHONE"),
        "email": values.get("EMAIL"),
    }


def _with_external_id(kind: Kind, found: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(found)
    key = out.get(kind.key_field)
    if isinstance(key, str) and key:
        out.setdefault("externalId", key)
    return out


class BitrixType:
    """Entry-point object for ``type: bitrix``."""

    options_model: type[BitrixOptions] = BitrixOptions

    def create(
        self, name: str, system: SystemSettings, options: BitrixOptions
    ) -> BitrixConnector | BitrixWebhooks:
        """A Bitrix connector for system ``name`` (webhooks only without ``options.url``);
        checks the token when auth is ``connector``."""
        webhook = system.webhook
        token = None
        if webhook is not None and webhook.auth is WebhookAuth.CONNECTOR and webhook.token:
            token = webhook.token.get_secret_value().encode()
        if options.url is None:
            return BitrixWebhooks(name, options, token)
        return BitrixConnector(name, options, system, token)

    def create_emulator(self, name: str, system: SystemSettings, options: BitrixOptions) -> Any:
        """The sandbox Bitrix24 portal where ``options.url`` points (``bridge serve`` with
        ``sandbox.enabled``, ``bridge sandbox``)."""
        from connectors.bitrix.emulator import sandbox_emulator  # only the sandbox needs it

        return sandbox_emulator(name, system, options)


BITRIX = BitrixType()
