"""The in-memory RetailCRM account behind the emulator: orders and customers, with history.

retailcrm-api.md §2 (orders), §3 (customers), §2.4 (upload). Methods take the request's
decoded parameters and return the answer's body (or raise `ApiError`), so the HTTP layer
only authenticates, parses and wraps. Loyalty lives in loyalty.py and listens to
order changes through `order_listeners`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from connectors.retailcrm.emulator.catalogue import Catalogue
from connectors.retailcrm.emulator.corporate import corporate_order_parts
from connectors.retailcrm.emulator.history import (
    CUSTOMER,
    ORDER,
    EntityKind,
    HistoryChange,
    HistoryFeed,
    Row,
    diff_fields,
    summary,
)
from connectors.retailcrm.emulator.orders import keep_item_ids, normalize_order, render_payments
from connectors.retailcrm.emulator.search import matches
from connectors.retailcrm.emulator.seed import seed_sandbox
from connectors.retailcrm.emulator.wire import (
    DATETIME,
    INPUT_PARAMS,
    UPLOAD_MAX,
    ApiError,
    Clock,
    Json,
    as_list,
    filter_of,
    invalid,
    json_field,
    paginate,
)

OrderListener = Callable[[Json, "str | None", HistoryChange], None]


class RetailcrmState:
    """Orders and customers of one RetailCRM account, with their two history feeds."""

    def __init__(self, sites: tuple[str, ...] = ("shop",), clock: Clock | None = None) -> None:
        if not sites:
            raise ValueError("at least one site (store code) is needed")
        self.sites = tuple(sites)
        self.clock: Clock = clock or datetime.now
        self.entities: dict[str, dict[int, Json]] = {ORDER.name: {}, CUSTOMER.name: {}}
        # externalId → ids (one per store at most), so a lookup does not scan every entity:
        # uploads check each externalId, and a scan made a 10,000-order backlog crawl.
        self._by_external: dict[str, dict[str, set[int]]] = {ORDER.name: {}, CUSTOMER.name: {}}
        self.feeds = {ORDER.name: HistoryFeed(ORDER), CUSTOMER.name: HistoryFeed(CUSTOMER)}
        self._next = {ORDER.name: ORDER.first_id, CUSTOMER.name: CUSTOMER.first_id}
        self._next |= {"item": 1, "payment": 1}
        # Called after an order is saved with (order, previous status, change).
        self.order_listeners: list[OrderListener] = []
        self.catalogue = Catalogue()
        # Entities merged away (kind name → (id, externalId, site) → survivor id), for the
        # 404 with `combinedTo` a read of one answers (§1.4, §10.2).
        self.combined: dict[str, dict[tuple[int, str | None, str], int]] = {
            ORDER.name: {},
            CUSTOMER.name: {},
        }
        # Corporate customers by id (corporate.py); orders may name one (§10.4).
        self.corporate: dict[int, Json] = {}

    def now(self) -> str:
        """The account's current time as the API writes it (§1.3)."""
        return self.clock().strftime(DATETIME)

    def new_id(self, counter: str) -> int:
        """The next id of orders, customers, items or payments."""
        self._next[counter] += 1
        return self._next[counter] - 1

    # ---- reading ---------------------------------------------------------------------------

    def find(
        self, kind: EntityKind, ref: Any, by: str = "externalId", site: str | None = None
    ) -> Json:
        """The stored entity by `by` = externalId | id | number, or 404 `Not found` (§1.4)."""
        if by not in ("externalId", "id", "number"):
            raise ApiError(
                400, INPUT_PARAMS, {"by": "The value you selected is not a valid choice."}
            )
        stored = self.entities[kind.name]
        if by == "externalId":
            ids = sorted(self._by_external[kind.name].get(str(ref), ()))
            candidates = [stored[i] for i in ids if i in stored]
        else:
            candidates = list(stored.values())
        for entity in candidates:
            # Decision: without `site` the first store holding the externalId answers.
            value = entity.get(by)
            if (
                (site is None or entity["site"] == site)
                and value is not None
                and str(value) == str(ref)
            ):
                return entity
        raise ApiError(404, "Not found")

    def find_ref(self, kind: EntityKind, ref: Mapping[str, Any], site: str | None = None) -> Json:
        """The entity a `{id}` / `{externalId}` / `{number}` reference names, or 404."""
        for by in ("id", "externalId", "number"):
            if ref.get(by) not in (None, ""):
                return self.find(kind, ref[by], by, None if by == "id" else site)
        raise ApiError(400, INPUT_PARAMS, {kind.name: "Specify id, externalId or number."})

    def render(self, kind: EntityKind, entity: Json) -> Json:
        """The entity as the API shows it, with PHP's `[]` for empty objects (§1.4)."""
        out = copy.deepcopy(entity)
        out["customFields"] = out.get("customFields") or []
        if kind is ORDER:
            out["payments"] = render_payments(out)
            customer = self.entities[CUSTOMER.name].get(out.get("customer", {}).get("id", 0))
            if customer is not None:
                out["customer"] = self.render(CUSTOMER, customer)  # on read the full customer
            corporate = self.corporate.get(out.get("customer", {}).get("id", 0))
            if corporate is not None:  # §10.4: `customer.type` says which
                contact = self.entities[CUSTOMER.name].get(out.get("contact", {}).get("id", 0))
                shown = self.render(CUSTOMER, contact) if contact else None
                out |= corporate_order_parts(corporate, shown, out.get("company"))
            return out
        mine = [o["totalSumm"] for o in self.orders_of(entity["id"])]
        total = sum(mine, Decimal(0))
        average = (total / len(mine)).quantize(Decimal("0.01")) if mine else Decimal(0)
        return out | {"ordersCount": len(mine), "totalSumm": total, "averageSumm": average}

    def orders_of(self, customer_id: int) -> list[Json]:
        """The stored orders of one customer."""
        orders = self.entities[ORDER.name].values()
        return [o for o in orders if o.get("customer", {}).get("id") == customer_id]

    def search(self, kind: EntityKind, params: Mapping[str, Any]) -> Json:
        """`GET /orders`, `GET /customers` with the filters the bridge uses (§2.1, §3.2)."""
        wanted = {k: v for k, v in filter_of(params).items() if v not in (None, "", [])}
        customers = self.entities[CUSTOMER.name]
        found = [e for e in self.entities[kind.name].values() if matches(e, wanted, customers)]
        rows, pagination = paginate(found, params)
        listed = [self.render(kind, e) for e in rows]
        return {"success": True, "pagination": pagination, kind.plural: listed}

    def get(self, kind: EntityKind, ref: str, params: Mapping[str, Any]) -> Json:
        """`GET /orders/{externalId}`, `GET /customers/{externalId}` (`by`, `site`)."""
        entity = self.find(kind, ref, params.get("by") or "externalId", params.get("site"))
        return {"success": True, kind.name: self.render(kind, entity)}

    def remove(self, kind: EntityKind, entity: Json) -> None:
        """Forget a stored entity (merged away); its history stays."""
        del self.entities[kind.name][entity["id"]]
        if entity.get("externalId") is not None:
            self._by_external[kind.name].get(str(entity["externalId"]), set()).discard(entity["id"])

    def history(self, kind: EntityKind, params: Mapping[str, Any], caller_key: str | None) -> Json:
        """`GET /orders/history`, `GET /customers/history` (§2.5)."""
        return self.feeds[kind.name].page(params, caller_key, self.now())

    # ---- writing ---------------------------------------------------------------------------

    def create(self, kind: EntityKind, params: Mapping[str, Any], change: HistoryChange) -> Json:
        """`POST /…/create` (201 §1.5): from the `order` / `customer` JSON field."""
        data = json_field(params, kind.name)
        site = self._site(params, data)
        errors = self._validate(kind, data, site, None)
        if errors:
            raise invalid(errors)
        entity = self.insert(kind, data, site, change)
        body: Json = {"success": True, "id": entity["id"]}
        return body | ({"order": self.render(kind, entity)} if kind is ORDER else {})

    def edit(
        self, kind: EntityKind, ref: str, params: Mapping[str, Any], change: HistoryChange
    ) -> Json:
        """`POST /…/{externalId}/edit` (`by`, `site`): only the keys sent change (§2.3)."""
        entity = self.find(kind, ref, params.get("by") or "externalId", params.get("site"))
        changes = json_field(params, kind.name)
        errors = self._validate(kind, changes, entity["site"], entity)
        if errors:
            raise invalid(errors)
        saved = self.patch(kind, entity, changes, change)
        body: Json = {"success": True, "id": saved["id"]}
        return body | ({"order": self.render(kind, saved)} if kind is ORDER else {})

    def upload(
        self, kind: EntityKind, params: Mapping[str, Any], change: HistoryChange
    ) -> tuple[int, Json]:
        """`POST /…/upload` (§2.4): ≤ 50 entities; HTTP 460 listing the failed ones."""
        batch = json_field(params, kind.plural, list)
        if len(batch) > UPLOAD_MAX:
            too_many = f"Too many {kind.plural}: {len(batch)}, the maximum is {UPLOAD_MAX}."
            raise ApiError(400, INPUT_PARAMS, {kind.plural: too_many})
        if not all(isinstance(data, dict) for data in batch):
            raise ApiError(400, INPUT_PARAMS, {kind.plural: "Each element must be an object."})
        title = kind.plural.capitalize()
        uploaded, failed, errors, saved = [], [], [], []
        for data in batch:
            site = self._site(params, data)
            problems = self._validate(kind, data, site, None)
            if problems:
                # §2.4: the strings are "field: message", not keyed by the entity.
                failed.append({"externalId": data.get("externalId")})
                errors += [f"{name}: {text}" for name, text in problems.items()]
                continue
            try:
                entity = self.insert(kind, data, site, change)
            except ApiError as exc:  # a bad number: this entity fails, the batch goes on
                failed.append({"externalId": data.get("externalId")})
                errors += [f"{name}: {text}" for name, text in dict(exc.errors or {}).items()]
                continue
            saved.append(entity)
            uploaded.append({"id": entity["id"], "externalId": entity.get("externalId")})
        if failed:
            body = {"success": False, f"uploaded{title}": uploaded, f"failed{title}": failed}
            return 460, body | {"errorMsg": f"{title} are loaded with errors", "errors": errors}
        listed = [self.render(kind, e) for e in saved]
        return 200, {"success": True, f"uploaded{title}": uploaded, kind.plural: listed}

    def _site(self, params: Mapping[str, Any], data: Json) -> str:
        site = params.get("site") or data.get("site")
        if site is None and len(self.sites) == 1:
            return self.sites[0]
        if site is None:
            raise ApiError(400, "Parameter 'site' is missing")  # §1.2: needed with > 1 store
        if site not in self.sites:
            raise invalid({"site": f"Site with code '{site}' not found."})
        return str(site)

    def _validate(
        self, kind: EntityKind, data: Json, site: str, current: Json | None
    ) -> dict[str, str]:
        errors = _shape_errors(data)
        external_id = data.get("externalId")
        if external_id is not None and (
            current is None or str(external_id) != current.get("externalId")
        ):
            try:
                self.find(kind, external_id, "externalId", site)
                # §2.1 [unconfirmed]: a second create with an existing externalId in the store
                # is a validation error (per store, not per account: §9.5 is open).
                errors["externalId"] = (
                    f"{kind.name.capitalize()} with this externalId already exists."
                )
            except ApiError:
                pass
        if kind is CUSTOMER:
            errors |= _customer_errors(data)
        elif not errors:
            errors |= self._order_errors(data, site)
        return errors

    def _order_errors(self, data: Json, site: str) -> dict[str, str]:
        """An order's offers and customer, checked once its shape is right."""
        errors = dict(self.catalogue.offer_errors(data.get("items") or []))
        ref = data.get("customer")
        if isinstance(ref, dict) and ref.get("id") in self.corporate:
            pass  # a corporate customer (§10.4): ids never clash with individuals'
        elif isinstance(ref, dict) and ref:
            try:
                self.find_ref(CUSTOMER, ref, site)
            except ApiError:
                by = "id" if "id" in ref else "externalId"
                errors["customer"] = f"Customer with {by} {ref.get(by)} not found."
        return errors

    def insert(self, kind: EntityKind, data: Json, site: str, change: HistoryChange | None) -> Json:
        """Store a new, validated entity; `change` None writes no history (the seed)."""
        entity = copy.deepcopy(data) | {"id": self.new_id(kind.name), "site": site}
        entity.setdefault("createdAt", self.now())
        if "externalId" in entity:
            entity["externalId"] = str(entity["externalId"])
        if kind is ORDER:
            entity.setdefault("number", f"{entity['id']}A")  # like the fixtures' "7146A"
            entity.setdefault("status", "new")
            entity |= {"slug": entity["id"], "statusUpdatedAt": entity["createdAt"]}
            entity["fromApi"] = change is not None and change.source == "api"
            self._link_customer(entity, site)
            self.catalogue.unbind(entity.get("items") or [])
            normalize_order(entity, self.new_id)
        else:
            entity.setdefault("type", "customer")
            entity.setdefault("phones", [])
            entity.setdefault("customFields", {})
            for key, value in (("vip", False), ("bad", False), ("personalDiscount", 0)):
                entity.setdefault(key, value)
        self.entities[kind.name][entity["id"]] = entity
        self._index_external(kind, entity, None)
        if change is not None:
            # §2.5: a creation record carries the full entity; field "id" (§2.5 field list).
            rows: list[Row] = [("id", None, entity["id"], {})]
            shown = self.render(kind, entity)
            self.feeds[kind.name].append(entity, shown, rows, change, at=self.now(), created=True)
            if kind is ORDER:
                self._notify(entity, None, change)
        return entity

    def patch(self, kind: EntityKind, entity: Json, changes: Json, change: HistoryChange) -> Json:
        """Apply the keys sent to a stored entity; one history record per changed field."""
        before = copy.deepcopy(entity)
        candidate = copy.deepcopy(before)
        candidate |= {k: v for k, v in copy.deepcopy(changes).items() if k not in ("id", "site")}
        if "externalId" in changes:
            candidate["externalId"] = str(changes["externalId"])
        if kind is ORDER:
            if "items" in changes:
                self.catalogue.unbind(candidate["items"] or [])
                keep_item_ids(before.get("items", []), candidate["items"] or [])
            self._link_customer(candidate, candidate["site"])
            if candidate.get("status") != before.get("status"):
                candidate["statusUpdatedAt"] = self.now()
            normalize_order(candidate, self.new_id)  # may refuse a bad number: nothing saved
        entity.clear()
        entity.update(candidate)
        self._index_external(kind, entity, before.get("externalId"))
        rows = diff_fields(before, entity)
        if rows:
            self.feeds[kind.name].append(entity, summary(kind, entity), rows, change, at=self.now())
        if kind is ORDER:
            self._notify(entity, before.get("status"), change)
        return entity

    def _index_external(self, kind: EntityKind, entity: Json, old: Any) -> None:
        index = self._by_external[kind.name]
        if old is not None and str(old) != str(entity.get("externalId")):
            index.get(str(old), set()).discard(entity["id"])
        if entity.get("externalId") is not None:
            index.setdefault(str(entity["externalId"]), set()).add(entity["id"])

    def _notify(self, order: Json, old_status: str | None, change: HistoryChange) -> None:
        for listener in self.order_listeners:
            listener(order, old_status, change)

    def _link_customer(self, order: Json, site: str) -> None:
        ref = order.get("customer")
        if isinstance(ref, dict) and ref.get("id") in self.corporate:
            # §10.4: a corporate order names its contact person, an individual customer.
            order["customer"] = {"id": ref["id"]}
            contact = order.get("contact")
            if isinstance(contact, dict) and contact:
                order["contact"] = {"id": self.find_ref(CUSTOMER, contact, site)["id"]}
        elif isinstance(ref, dict) and ref:
            order["customer"] = {"id": self.find_ref(CUSTOMER, ref, site)["id"]}
        else:
            order.pop("customer", None)  # Decision: no customer is made from contact fields

    def snapshot(self) -> Json:
        """Every order and customer as the API shows them (`GET /__emulator__/state`)."""
        kinds = (ORDER, CUSTOMER)
        return {
            k.plural: [self.render(k, e) for e in self.entities[k.name].values()] for k in kinds
        }

    def seed_sandbox(self) -> None:
        """Three shoppers (two with loyalty cards) and an order each for the first two."""
        seed_sandbox(self)


def _customer_errors(data: Json) -> dict[str, str]:
    """A customer's e-mail, birthday (§1.3 dates `Y-m-d`, §3.1) and sex (PHP
    `Enum\\Customers\\Gender`: `male`, `female`); Decision: the wording of the refusals."""
    errors: dict[str, str] = {}
    email = data.get("email")
    if email not in (None, "") and "@" not in str(email):
        errors["email"] = "This value is not a valid email address."
    birthday = data.get("birthday")
    if birthday not in (None, "") and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(birthday)):
        errors["birthday"] = "This value is not a valid date."
    elif birthday not in (None, ""):
        try:
            date.fromisoformat(str(birthday))
        except ValueError:
            errors["birthday"] = "This value is not a valid date."
    if data.get("sex") not in (None, "", "male", "female"):
        errors["sex"] = "The value you selected is not a valid choice."
    return errors


def _shape_errors(data: Json) -> dict[str, str]:
    """Lists of objects and objects where the API expects them."""
    errors: dict[str, str] = {}
    for key in ("items", "payments", "phones"):
        rows = data.get(key)
        if rows is not None and not all(isinstance(r, dict) for r in as_list(rows)):
            errors[key] = "This value should be a list of objects."
    for key in ("customer", "delivery", "address", "contragent"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            errors[key] = "This value should be an object."
    return errors
