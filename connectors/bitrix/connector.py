"""The Bitrix24 connector: events in, entities read, listed and written, balances out.

- **In**: online events at ``/hooks/<system>`` (the application token checked), and, with
  an OAuth application, the offline queue polled with ``clear=0`` and cleared only after
  the changes are stored (bitrix.md §3.5). With the queue on, an online event only wakes
  the poller: the queue has it too, and the bridge's own writes are kept out of it by
  ``auth_connector``, so nothing echoes.
- **Out**: contacts and deals through ``crm.item.*`` (or shop orders through
  ``sale.order.*``), in ``batch`` calls of up to 50 (§1.5), keyed by the bridge's
  ``originId``/``xmlId``. An entity the id map or this process knows is updated by its id;
  a write the bridge cannot be sure did not land before (a retry, a replay) is looked up by
  that key first (§2.7: Bitrix has no idempotency key); only a first attempt of an entity
  the bridge never wrote is added unseen.
- Every call waits on one leaky bucket per portal (§1.6).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from bridge.connector import (
    DeliveryJob,
    ListedEntity,
    ListPage,
    PollResult,
    WebhookRequest,
)
from bridge.errors import ConfigError, DeliveryError, PermanentError
from bridge.logs import get_logger
from bridge.settings import SystemSettings, WebhookAuth
from bridge.store.records import InboundEvent
from connectors.bitrix.client import (
    BATCH_MAX,
    PAGE,
    BitrixClient,
    BitrixError,
    LeakyBucket,
    OAuthTokens,
)
from connectors.bitrix.errors import classify, is_not_found
from connectors.bitrix.kinds import CUSTOMER, DEAL, Kind, kinds
from connectors.bitrix.options import BitrixOptions
from connectors.bitrix.webhooks import (
    EVENTS,
    OFFLINE_NUDGE,
    check_application_token,
    entity_names,
    offline_event,
    parse_event,
    read_form,
)

log = get_logger("connectors.bitrix")

BALANCE = "balance"  # the bonus service's balance changes (bridge.bonus.mirror)
WRITTEN_KEPT = 100_000  # ids of recent writes kept in memory (a few MB)
CLEAR = "clear:"  # cursor: the offline batch stored and still to be cleared
NUDGE = "trigger"  # the entity of an online event that only wakes the poller (no route)


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
        self._token = token
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
                limiter=LeakyBucket(rate.burst, rate.per_second),
                timeout=system.delivery.timeout_seconds,
                oauth=self._tokens(name, options),
            )
        self._recovered = False  # orphan reservations of the offline queue looked for
        self._bound = False  # offline bindings made since start
        # (entity, our key) -> Bitrix's id, of what this process wrote (newest last).
        self._written: OrderedDict[tuple[str, str], str] = OrderedDict()
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

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
        """Check the application token, then turn the event into one change (or, with the
        offline queue on, into a wake-up of its poller)."""
        form = read_form(request.body)
        if self._token is not None:
            check_application_token(form, self._token)
        names = form.get("event") or [b""]
        if self.feeds and names[0].decode("ascii", "replace").upper() == OFFLINE_NUDGE:
            return [self._nudge(form)]
        event = parse_event(form, self._names)
        if self.feeds:  # the queue holds this change too; poll it now
            return [self._nudge(form)]
        return [event]

    def _nudge(self, form: dict[str, list[bytes]]) -> InboundEvent:
        ts = (form.get("ts") or [b"0"])[0].decode("ascii", "replace")
        name = (form.get("event") or [b""])[0].decode("ascii", "replace").upper()
        return InboundEvent(f"nudge:{name}:{ts}", NUDGE, name or "event", "wake", {"event": name})

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
        return job.entity in self._kinds or job.entity == BALANCE

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        """Adds and updates in ``batch`` calls of up to 50 commands (after one look-up for
        the writes that may have landed before); per job its Bitrix id, or the error."""
        out: dict[str, DeliveryError | str | None] = {}
        known: dict[str, str] = {}
        for job in jobs:
            if job.entity not in self._kinds and job.entity != BALANCE:
                out[job.delivery_id] = PermanentError(
                    f"Bitrix takes orders, customers and balances; route {job.entity!r}"
                    " changes elsewhere"
                )
            elif (own := job.target_ref or job.mapped_id or self._own_id(job)) is not None:
                known[job.delivery_id] = own
        writes = [j for j in jobs if j.entity in self._kinds and j.delivery_id not in out]
        unsure = [j for j in writes if j.delivery_id not in known]
        unsure = [j for j in unsure if j.attempt > 1 or "-r" in j.operation_key]
        try:
            known |= await self._look_up(unsure)
        except DeliveryError as exc:
            for job in unsure:
                out[job.delivery_id] = exc
        groups: list[list[tuple[DeliveryJob, dict[str, tuple[str, dict[str, Any]]]]]] = [[]]
        for job in jobs:
            if job.delivery_id in out:
                continue
            try:
                commands = self._commands(job, known.get(job.delivery_id))
            except DeliveryError as exc:
                out[job.delivery_id] = exc
                continue
            if commands is None:  # a balance with no one to show it to
                out[job.delivery_id] = None
                continue
            if sum(len(c) for _j, c in groups[-1]) + len(commands) > BATCH_MAX:
                groups.append([])
            groups[-1].append((job, commands))
        for group in groups:
            if group:
                out |= await self._run_batch(group, known)
        return [out[j.delivery_id] for j in jobs]

    def _commands(
        self, job: DeliveryJob, own: str | None
    ) -> dict[str, tuple[str, dict[str, Any]]] | None:
        """The batch commands of one job, named after its delivery."""
        name = job.delivery_id
        if job.entity == BALANCE:
            return self._balance_commands(job)
        kind, fields = self._kinds[job.entity], _fields(job)
        if kind.shop:
            fields.setdefault("lid", self.options.site)  # §2.5: the shop's site id
        if own is not None and not own.isdigit():
            raise PermanentError(f"cannot write Bitrix's {own!r} by id")
        if own is not None:
            return {name: kind.update(own, fields, self._connector)}
        return {name: kind.add(fields, job.external_id, self._connector)}

    def _balance_commands(self, job: DeliveryJob) -> dict[str, tuple[str, dict[str, Any]]] | None:
        """Find the contact by the customer's phone and set the balance field, in one
        request (§1.5: the update names the found id as ``$result[find][CONTACT][0]``)."""
        state = job.state or {}
        phone, balance = state.get("phone"), state.get("balance")
        field = self.options.balance_field
        if field is None or not isinstance(phone, str) or not phone or balance is None:
            return None
        find = f"find_{job.delivery_id}"
        update = {
            "entityTypeId": CUSTOMER.entity_type_id,
            "id": f"$result[{find}][CONTACT][0]",
            "useOriginalUfNames": "Y",
            "fields": {field: str(balance)},
        }
        return {
            find: (
                "crm.duplicate.findbycomm",
                {"type": "PHONE", "values": [phone], "entity_type": "CONTACT"},
            ),
            job.delivery_id: ("crm.item.update", update | {"auth_connector": self._connector}),
        }

    async def _run_batch(
        self,
        group: list[tuple[DeliveryJob, dict[str, tuple[str, dict[str, Any]]]]],
        known: dict[str, str],
    ) -> dict[str, DeliveryError | str | None]:
        commands = {name: call for _job, calls in group for name, call in calls.items()}
        try:
            answer = await self._require_client().batch(
                commands, params={"auth_connector": self._connector}
            )
        except BitrixError as exc:
            error = classify(exc)
            return {job.delivery_id: error for job, _calls in group}
        out: dict[str, DeliveryError | str | None] = {}
        for job, _calls in group:
            name = job.delivery_id
            if job.entity == BALANCE and not _found_contact(answer.results.get(f"find_{name}")):
                out[name] = None  # no contact has the customer's phone: nothing to show
            elif name in answer.errors:
                out[name] = classify(answer.errors[name])
            elif job.entity == BALANCE:
                out[name] = None
            else:
                written = self._kinds[job.entity].one(answer.results.get(name))
                own = written.get("id") if written else known.get(name)
                out[name] = None if own is None else str(own)
                if own is not None:
                    self._remember(job, str(own))
        return out

    def _own_id(self, job: DeliveryJob) -> str | None:
        """Bitrix's id of what this process wrote under the job's key before (a repeat of a
        job, or a later one the id map has not caught up with: written again, not added)."""
        return self._written.get((job.entity, job.external_id))

    def _remember(self, job: DeliveryJob, own: str) -> None:
        key = (job.entity, job.external_id)
        self._written[key] = own
        self._written.move_to_end(key)
        if len(self._written) > WRITTEN_KEPT:
            self._written.popitem(last=False)

    async def _look_up(self, jobs: list[DeliveryJob]) -> dict[str, str]:
        """Bitrix's ids of what the bridge wrote before under these jobs' keys."""
        found: dict[str, str] = {}
        for entity, kind in self._kinds.items():
            mine = [j for j in jobs if j.entity == entity]
            for start in range(0, len(mine), PAGE):
                chunk = mine[start : start + PAGE]
                method, params = kind.find([j.external_id for j in chunk])
                rows = kind.rows(await self._call(method, params))
                ids = {str(r.get(kind.key_field)): str(r["id"]) for r in rows if "id" in r}
                found |= {j.delivery_id: ids[j.external_id] for j in chunk if j.external_id in ids}
        return found

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

    @staticmethod
    def _tokens(name: str, options: BitrixOptions) -> OAuthTokens | None:
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
                _write_atomically(path, json.dumps(data))
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


def _fields(job: DeliveryJob) -> dict[str, Any]:
    """What to write: the route's mapped document (Bitrix's field names), or the change's
    own ``document``/data for a route without a mapping file."""
    if job.document is not None:
        return dict(job.document)
    payload = job.events[-1].payload if job.events else None
    data = payload.get("document") or payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, Mapping):
        raise PermanentError(f"{job.source} {job.entity} {job.entity_id}: nothing to write")
    return dict(data)


def _write_atomically(path: Path, text: str) -> None:
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


def _found_contact(result: Any) -> bool:
    """Whether a ``crm.duplicate.findbycomm`` answer names a contact (§2.1: ``{CONTACT:
    [ids]}``, ``[]`` when none)."""
    ids = result.get("CONTACT") if isinstance(result, Mapping) else None
    return isinstance(ids, list) and bool(ids)


def _with_external_id(kind: Kind, found: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(found)
    key = out.get(kind.key_field)
    if isinstance(key, str) and key:
        out.setdefault("externalId", key)
    return out


class BitrixWebhooks:
    """A portal the bridge only hears from (no ``options.url``): it parses the portal's
    online events, and cannot be read, listed or written (a route into it is refused)."""

    authenticates_body = True

    def __init__(self, name: str, options: BitrixOptions, token: bytes | None) -> None:
        self.name = name
        self._token = token
        self._names = entity_names(options.orders)

    def parse_webhook(self, request: WebhookRequest) -> list[InboundEvent]:
        """Check the application token, then turn the event into one change."""
        form = read_form(request.body)
        if self._token is not None:
            check_application_token(form, self._token)
        return [parse_event(form, self._names)]


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
