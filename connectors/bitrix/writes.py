"""Writes into a Bitrix24 portal: contacts and deals through ``crm.item.*`` (or shop orders
through ``sale.order.*``) and the master's balance into a contact field, in ``batch`` calls
of up to 50 commands (bitrix.md §1.5).

Bitrix has no idempotency key (§2.7): what the bridge writes is keyed by its
``originId``/``xmlId``. An entity the id map or this process knows is updated by its id; a
write that may have landed before (``DeliveryJob.may_have_landed``: a retry or a replay)
is looked up by that key first; only a first attempt of an entity the bridge never wrote
is added unseen.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from bridge.connector import DeliveryJob
from bridge.errors import DeliveryError, PermanentError
from connectors.bitrix.client import BATCH_MAX, PAGE, BitrixClient, BitrixError
from connectors.bitrix.errors import classify
from connectors.bitrix.kinds import CUSTOMER, Kind
from connectors.bitrix.options import BitrixOptions

BALANCE = "balance"  # the bonus service's balance changes (bridge.bonus.mirror)
WRITTEN_KEPT = 100_000  # ids of recent writes kept in memory (a few MB)

Commands = dict[str, tuple[str, dict[str, Any]]]
Call = Callable[[str, Mapping[str, Any]], Awaitable[Any]]


class BitrixWriter:
    """Batches of adds and updates for one portal, remembering the ids it wrote."""

    def __init__(
        self,
        kinds: Mapping[str, Kind],
        options: BitrixOptions,
        client: Callable[[], BitrixClient],
        call: Call,
    ) -> None:
        self._kinds, self.options = kinds, options
        self._auth_connector = options.auth_connector
        self._client, self._call = client, call
        # (entity, our key) -> Bitrix's id, of what this process wrote (newest last).
        self._written: OrderedDict[tuple[str, str], str] = OrderedDict()

    def takes(self, job: DeliveryJob) -> bool:
        """Deals, contacts, shop orders and balances."""
        return job.entity in self._kinds or job.entity == BALANCE

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        """Adds and updates in ``batch`` calls of up to 50 commands (after one look-up for
        the writes that may have landed before); per job its Bitrix id, or the error."""
        out: dict[str, DeliveryError | str | None] = {}
        known: dict[str, str] = {}
        for job in jobs:
            if not self.takes(job):
                out[job.delivery_id] = PermanentError(
                    f"Bitrix takes orders, customers and balances; route {job.entity!r}"
                    " changes elsewhere"
                )
            elif (own := job.target_ref or job.mapped_id or self._own_id(job)) is not None:
                known[job.delivery_id] = own
        writes = [j for j in jobs if j.entity in self._kinds and j.delivery_id not in out]
        unsure = [j for j in writes if j.delivery_id not in known and j.may_have_landed]
        try:
            known |= await self._look_up(unsure)
        except DeliveryError as exc:
            out |= dict.fromkeys((job.delivery_id for job in unsure), exc)
        for group in self._batches(jobs, known, out):
            out |= await self._run_batch(group, known)
        return [out[j.delivery_id] for j in jobs]

    def _batches(
        self,
        jobs: Sequence[DeliveryJob],
        known: Mapping[str, str],
        out: dict[str, DeliveryError | str | None],
    ) -> list[list[tuple[DeliveryJob, Commands]]]:
        """The commands of the jobs not settled in ``out`` yet, in groups of at most 50;
        a job without commands is settled in ``out`` instead."""
        groups: list[list[tuple[DeliveryJob, Commands]]] = [[]]
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
        return [group for group in groups if group]

    def _commands(self, job: DeliveryJob, own: str | None) -> Commands | None:
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
            return {name: kind.update(own, fields, self._auth_connector)}
        return {name: kind.add(fields, job.external_id, self._auth_connector)}

    def _balance_commands(self, job: DeliveryJob) -> Commands | None:
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
            job.delivery_id: ("crm.item.update", update | {"auth_connector": self._auth_connector}),
        }

    async def _run_batch(
        self,
        group: list[tuple[DeliveryJob, Commands]],
        known: dict[str, str],
    ) -> dict[str, DeliveryError | str | None]:
        commands = {name: call for _job, calls in group for name, call in calls.items()}
        try:
            answer = await self._client().batch(
                commands, params={"auth_connector": self._auth_connector}
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


def _found_contact(result: Any) -> bool:
    """Whether a ``crm.duplicate.findbycomm`` answer names a contact (§2.1: ``{CONTACT:
    [ids]}``, ``[]`` when none)."""
    ids = result.get("CONTACT") if isinstance(result, Mapping) else None
    return isinstance(ids, list) and bool(ids)
