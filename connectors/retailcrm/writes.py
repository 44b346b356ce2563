"""RetailCRM writes: idempotent order and customer upserts by ``externalId``, edits by
RetailCRM's own id, and batches through ``/orders/upload`` / ``/customers/upload``.

retailcrm-api.md §2.1/§3.1: an edit by ``externalId`` answers 404 ``Not found`` when the
entity is new, then it is created (a customer is first looked up by phone, so one person is
one customer); §2.4: an upload takes ≤ 50 and a 460 lists what was uploaded and what was
refused, the refused ones then going one by one, where RetailCRM names the field. A
customer merged away since the bridge wrote it (§10.2) is edited where it lives now: its
read answers 404 with ``combinedTo`` (§1.4).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from bridge.connector import DeliveryJob
from bridge.errors import DeliveryError, PermanentError, TransientError
from bridge.lru import LruCache
from connectors.retailcrm.client import RetailcrmClient, RetailcrmError
from connectors.retailcrm.errors import PartialUpload, is_not_found, merged_into

T = TypeVar("T")
Run = Callable[[Callable[[], T]], Awaitable[T]]
MERGE_DEPTH = 5  # combinedTo followed at most this far (a survivor merged again later)
# (entity, externalId) pairs remembered per kind of knowledge, the most recent kept: a
# forgotten one costs one upload RetailCRM refuses, then it is written alone (§2.4).
KEYS_KEPT = 100_000


class RetailcrmWriter:
    """The write side of one RetailCRM connector, through its rate-limited runner."""

    def __init__(self, client: RetailcrmClient, run: Run[Any]) -> None:
        self._client = client
        self._run = run
        # (entity, externalId) an upload refused, and those known to exist.
        self._refused: LruCache[tuple[str, str], bool] = LruCache(KEYS_KEPT)
        self._written: LruCache[tuple[str, str], bool] = LruCache(KEYS_KEPT)

    async def deliver(self, job: DeliveryJob) -> str | None:
        """Create or edit the entity by ``externalId`` (a retry never makes a second one);
        an entity that started in RetailCRM (``job.target_ref``) is edited by its own id.
        Returns RetailCRM's id of the entity when its answer gives it."""
        document = document_of(job)
        if job.target_ref is not None:
            return await self._edit_own(job.entity, job.target_ref, document)
        if job.mapped_id is not None and job.mapped_id.isdigit():
            # Written before: edit that one, whatever its externalId or phone are now (a
            # customer adopted by phone keeps the site's key; the phone may have changed).
            return await self._edit_own(job.entity, job.mapped_id, document)
        own = await self._upsert(job.entity, document)
        self._refused.pop((job.entity, document["externalId"]))
        self._written.put((job.entity, document["externalId"]), True)
        return own

    def batchable(self, job: DeliveryJob) -> bool:
        """Orders and customers go in uploads, unless an upload refused this one before.

        A whole upload that failed (503, timeout) wrote nothing, so its jobs stay batchable;
        only an entity refused inside a partial upload is retried alone, where an edit or a
        create names the field that is wrong.
        """
        # Customers go alone: before a create, each is looked up by phone (no duplicates).
        if job.entity != "order" or job.target_ref is not None:
            return False
        if job.mapped_id is not None:
            return False
        key = (job.entity, document_of(job)["externalId"])
        # Upload only creates: an entity known to exist (written before) is edited alone.
        return key not in self._refused and key not in self._written

    async def deliver_batch(self, jobs: Sequence[DeliveryJob]) -> list[DeliveryError | str | None]:
        """One ``/upload`` per kind (≤ 50 each); an outcome per job: RetailCRM's id of what
        landed (from ``uploadedOrders``, §2.4), or the error."""
        outcome: dict[str, DeliveryError | str | None] = {}
        for entity in ("order", "customer"):
            group = [j for j in jobs if j.entity == entity]
            if group:
                outcome.update(await self._upload(entity, group))
        return [outcome[j.delivery_id] for j in jobs]

    async def _edit_own(self, entity: str, own_id: str, document: dict[str, Any]) -> str:
        """Edit RetailCRM's entity ``own_id`` (``by=id``); its own externalId stays. A
        customer merged away since is edited where it lives now (``combinedTo``, §1.4).
        Returns the id edited."""
        if entity not in ("order", "customer") or not own_id.isdigit():
            raise PermanentError(f"cannot edit RetailCRM {entity} {own_id!r} by id")
        changes = {k: v for k, v in document.items() if k != "externalId"}
        client = self._client
        edit = client.order_edit if entity == "order" else client.customer_edit
        for _ in range(MERGE_DEPTH):
            try:
                await self._run(functools.partial(edit, changes | {"id": int(own_id)}, by="id"))
            except PermanentError as exc:
                survivor = await self._survivor(entity, exc, own_id)
                if survivor is None:
                    raise
                own_id = survivor
            else:
                return own_id
        raise PermanentError(f"RetailCRM {entity} {own_id}: merged more than {MERGE_DEPTH} times")

    async def _survivor(self, entity: str, exc: PermanentError, own_id: str) -> str | None:
        """The customer ``own_id`` was merged into, when an edit of it was ``Not found``:
        its read answers 404 with ``combinedTo`` (§1.4; an edit's answer does not say)."""
        cause = exc.__cause__
        if entity != "customer" or not (isinstance(cause, RetailcrmError) and is_not_found(cause)):
            return None
        try:
            await self._run(lambda: self._client.customer(own_id, by="id"))
        except PermanentError as read_error:
            found = read_error.__cause__
            return merged_into(found) if isinstance(found, RetailcrmError) else None
        return None

    async def _upsert(self, entity: str, document: dict[str, Any]) -> str | None:
        if entity not in ("order", "customer"):
            raise PermanentError(
                f"RetailCRM takes orders and customers; route {entity!r} changes elsewhere"
            )
        client = self._client
        edit, create = (
            (client.order_edit, client.order_create)
            if entity == "order"
            else (client.customer_edit, client.customer_create)
        )
        try:
            answer = await self._run(lambda: edit(document))
        except PermanentError as exc:
            cause = exc.__cause__
            if not (isinstance(cause, RetailcrmError) and is_not_found(cause)):
                raise
            if entity == "customer" and (adopted := await self._adopt_by_phone(document)):
                return adopted
            answer = await self._run(lambda: create(document))
        own = answer.get("id") if isinstance(answer, Mapping) else None
        return None if own is None else str(own)

    async def _adopt_by_phone(self, document: dict[str, Any]) -> str | None:
        """A customer new to the bridge but already in RetailCRM under the same phone is that
        customer, not a second one (PRODUCT 3.3): edit them by id, and give them the
        bridge's externalId only when they have none (a site's own key is kept)."""
        phones = document.get("phones")
        first = phones[0] if isinstance(phones, list) and phones else None
        phone = first.get("number") if isinstance(first, Mapping) else None
        if not isinstance(phone, str) or not phone.strip():
            return None
        try:
            found = await self._run(lambda: self._client.customers_by_phone(phone))
        except ValueError:  # too few digits to search by
            return None
        if len(found) != 1:
            # None: a new customer. Several: which one is ambiguous, and guessing would merge
            # two people's histories; a new customer is the lesser harm (support can merge).
            return None
        own = found[0]
        changes = {k: v for k, v in document.items() if k != "externalId"}
        if not own.get("externalId"):
            changes["externalId"] = document["externalId"]
        changes["id"] = int(own["id"])
        await self._run(lambda: self._client.customer_edit(changes, by="id"))
        return str(own["id"])

    async def _upload(
        self, entity: str, jobs: list[DeliveryJob]
    ) -> dict[str, DeliveryError | str | None]:
        documents = [document_of(j) for j in jobs]
        upload = self._client.orders_upload if entity == "order" else self._client.customers_upload
        try:
            answer = await self._run(lambda: upload(documents))
        except PartialUpload as exc:
            uploaded = _uploaded_ids(exc.uploaded)
            failed = {str(f.get("externalId")) for f in exc.failed if isinstance(f, Mapping)}
            for external_id in failed:
                self._refused.put((entity, external_id), True)
            for external_id in uploaded:
                self._written.put((entity, external_id), True)
            detail = "; ".join(exc.errors) or str(exc)
            # Only what RetailCRM lists as uploaded is done. The upload's errors are not keyed
            # by entity (§2.4): each refused one is tried again on its own, where an edit or
            # a create names the field; one in neither list is simply tried again.
            return {
                j.delivery_id: uploaded[d["externalId"]]
                if d["externalId"] in uploaded
                else TransientError(f"refused in a batch upload ({detail})")
                if d["externalId"] in failed
                else TransientError("a batch upload did not say what became of it")
                for j, d in zip(jobs, documents, strict=True)
            }
        except DeliveryError as exc:
            return dict.fromkeys((j.delivery_id for j in jobs), exc)
        for d in documents:
            self._written.put((entity, d["externalId"]), True)
        key = "uploadedOrders" if entity == "order" else "uploadedCustomers"
        ids = _uploaded_ids(answer.get(key) if isinstance(answer, Mapping) else None)
        return {
            j.delivery_id: ids.get(d["externalId"]) for j, d in zip(jobs, documents, strict=True)
        }


def _uploaded_ids(rows: Any) -> dict[str, str | None]:
    """externalId → RetailCRM's id from an upload's ``uploadedOrders``/``uploadedCustomers``
    (``[{id, externalId}]``, §2.4); the id None where the row does not carry it."""
    found: dict[str, str | None] = {}
    for row in rows if isinstance(rows, list) else []:
        if isinstance(row, Mapping) and row.get("externalId") is not None:
            own = row.get("id")
            found[str(row["externalId"])] = None if own is None else str(own)
    return found


def document_of(job: DeliveryJob) -> dict[str, Any]:
    """The RetailCRM document a delivery writes: the route's mapped document, or, for a
    route without a mapping file, the latest change's payload as it stands (then the source
    must send the RetailCRM shape, ``{"document": {...}}`` or the fields themselves). The
    ``externalId`` defaults to ``<source>-<entity id>``, stable across retries and replays.
    """
    if job.document is not None:
        document = dict(job.document)
        document.setdefault("externalId", job.external_id)
        document["externalId"] = str(document["externalId"])
        return document
    payload = job.events[-1].payload
    nested = payload.get("document")
    document = dict(nested if isinstance(nested, Mapping) else payload)
    document.setdefault("externalId", job.external_id)
    document["externalId"] = str(document["externalId"])
    return document
