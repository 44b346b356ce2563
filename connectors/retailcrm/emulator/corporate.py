"""Corporate customers in the emulator (retailcrm-api.md §10.4).

``/customers-corporate``: list (``filter[ids][]``, ``externalIds[]``, ``nickName[]``,
``sites[]``), ``create`` (``customerCorporate`` JSON, ``site``), ``{externalId}`` (``by``,
``site``), ``{externalId}/edit``, ``history`` and ``fix-external-ids``. The object:
``type: customer_corporate``, ``nickName``, ``customerContacts[{id, isMain, customer{id,
externalId, site}}]`` (a contact person is an ordinary individual customer), ``companies``,
``addresses``, and ``mainCustomerContact``/``mainCompany``/``mainAddress``.

History records follow the PHP fixture (CustomersCorporateTest::testHistory): the entity
under ``customer`` (in full on ``created``, else ``{id, externalId, site}``), field codes
``contact``/``main_contact`` with ``customerContact``, ``company``/``main_company`` with
``company``, other fields in snake_case.

Decisions: corporate ids come from the customers' sequence, so an order's ``customer.id``
names one or the other, never both; the Python client's edit sends the JSON under
``customersCorporate`` (PY 5.3.0 ``customer_corporate_edit``), PHP's under
``customerCorporate``: both are read.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from connectors.retailcrm.emulator.history import (
    CUSTOMER,
    EntityKind,
    HistoryChange,
    HistoryFeed,
    Row,
    snake,
)
from connectors.retailcrm.emulator.wire import (
    INPUT_PARAMS,
    ApiError,
    Json,
    as_list,
    filter_of,
    invalid,
    json_field,
    paginate,
)

if TYPE_CHECKING:
    from connectors.retailcrm.emulator.state import RetailcrmState

CORPORATE = EntityKind("customer", "customers-corporate", 0)  # records name the entity `customer`
FIELD = "customerCorporate"
_DERIVED = frozenset({"id", "site", "type", "createdAt"})
_DERIVED |= {"mainCustomerContact", "mainCompany", "mainAddress"}


class CorporateBook:
    """The corporate customers of one account, with their history feed."""

    def __init__(self, state: RetailcrmState) -> None:
        self.state = state
        self.book = state.corporate
        self.feed = HistoryFeed(CORPORATE)
        self._next = {"contact": 1, "company": 1, "address": 1}

    def _id(self, counter: str) -> int:
        self._next[counter] += 1
        return self._next[counter] - 1

    def create(self, params: Mapping[str, Any], change: HistoryChange) -> Json:
        """``POST /customers-corporate/create`` → ``{success, id}``."""
        data = json_field(params, FIELD)
        site = str(params.get("site") or data.get("site") or self.state.sites[0])
        if site not in self.state.sites:
            raise invalid({"site": f"Site with code '{site}' not found."})
        if data.get("externalId") and self._find(str(data["externalId"]), "externalId", site):
            raise invalid({"externalId": "Corporate customer with this externalId already exists."})
        entity: Json = {"type": "customer_corporate", "id": self.state.new_id(CUSTOMER.name)}
        entity |= {"site": site, "createdAt": self.state.now(), "customFields": []}
        entity |= {"vip": False, "bad": False, "nickName": None}
        entity |= self._shaped(data, site)
        self.book[entity["id"]] = entity
        rows: list[Row] = [("id", None, entity["id"], {})]
        at = self.state.now()
        self.feed.append(entity, copy.deepcopy(entity), rows, change, at=at, created=True)
        return {"success": True, "id": entity["id"]}

    def get(self, ref: str, params: Mapping[str, Any]) -> Json:
        """``GET /customers-corporate/{externalId}`` (``by``, ``site``)."""
        by = params.get("by") or "externalId"
        found = self._find(ref, by, params.get("site"))
        if found is None:
            raise ApiError(404, "Not found")
        return {"success": True, FIELD: copy.deepcopy(found)}

    def search(self, params: Mapping[str, Any]) -> Json:
        """``GET /customers-corporate`` with the filters the clients model."""
        wanted = filter_of(params)
        tests = {
            "ids": "id",
            "externalIds": "externalId",
            "nickName": "nickName",
            "sites": "site",
        }
        found = [
            c
            for c in self.book.values()
            if all(
                str(c.get(key)) in {str(v) for v in as_list(wanted[name])}
                for name, key in tests.items()
                if wanted.get(name) not in (None, "", [])
            )
        ]
        rows, pagination = paginate(found, params)
        listed = [copy.deepcopy(c) for c in rows]
        return {"success": True, "pagination": pagination, "customersCorporate": listed}

    def edit(self, ref: str, params: Mapping[str, Any], change: HistoryChange) -> Json:
        """``POST /customers-corporate/{externalId}/edit``: the keys sent change."""
        by = params.get("by") or "externalId"
        entity = self._find(ref, by, params.get("site"))
        if entity is None:
            raise ApiError(404, "Not found")
        field = "customersCorporate" if params.get("customersCorporate") else FIELD
        changes = json_field(params, field)
        before = copy.deepcopy(entity)
        entity |= self._shaped(changes, entity["site"], entity)
        rows = _diff(before, entity)
        if rows:
            shown = {k: entity[k] for k in ("id", "externalId", "site") if entity.get(k)}
            self.feed.append(entity, shown, rows, change, at=self.state.now())
        return {"success": True, "id": entity["id"]}

    def history(self, params: Mapping[str, Any], caller_key: str | None) -> Json:
        """``GET /customers-corporate/history`` (``filter[sinceId]`` …, §10.4)."""
        return self.feed.page(params, caller_key, self.state.now())

    def _find(self, ref: Any, by: str, site: Any = None) -> Json | None:
        if by not in ("externalId", "id"):
            raise ApiError(400, INPUT_PARAMS, {"by": "The value you selected is not valid."})
        for entity in self.book.values():
            if str(entity.get(by)) == str(ref) and (by == "id" or site in (None, entity["site"])):
                return entity
        return None

    def _shaped(self, data: Json, site: str, current: Json | None = None) -> Json:
        """The stored keys made of a create's or an edit's JSON; 400 naming a bad one."""
        out = {k: copy.deepcopy(v) for k, v in data.items() if k not in _DERIVED}
        if "externalId" in out:
            out["externalId"] = str(out["externalId"])
        contacts, companies = [], []
        for n, row in enumerate(as_list(data.get("customerContacts"))):
            ref = row.get("customer") if isinstance(row, dict) else None
            if not isinstance(ref, dict):
                raise invalid({f"customerContacts[{n}].customer": "This value is required."})
            try:
                person = self.state.find_ref(CUSTOMER, ref, site)
            except ApiError:
                raise invalid({f"customerContacts[{n}].customer": "Customer not found."}) from None
            link = {"id": person["id"], "externalId": person.get("externalId"), "site": site}
            contacts.append(
                {"id": self._id("contact"), "isMain": bool(row.get("isMain")), "customer": link}
            )
        for row in as_list(data.get("companies")):
            if not isinstance(row, dict) or not row.get("name"):
                raise invalid({"companies": "Each company needs a name."})
            companies.append({"active": True, **row, "id": self._id("company")})
        addresses = [
            {**(row if isinstance(row, dict) else {}), "id": self._id("address")}
            for row in as_list(data.get("addresses"))
        ]
        lists = {"customerContacts": contacts, "companies": companies, "addresses": addresses}
        out |= {k: rows for k, rows in lists.items() if k in data or current is None}
        merged = (current or {}) | out
        main_contact = _main(merged.get("customerContacts", []))
        main_company = _main(merged.get("companies", []))
        main_address = _main(merged.get("addresses", []))
        out["mainCustomerContact"] = main_contact and {
            "id": main_contact["id"],
            "customer": {k: main_contact["customer"][k] for k in ("id", "externalId")},
        }
        out["mainCompany"] = main_company and {k: main_company[k] for k in ("id", "name")}
        out["mainAddress"] = main_address and {
            "id": main_address["id"],
            "name": main_address.get("name") or main_address.get("text"),
        }
        return out


def corporate_order_parts(corporate: Json, contact: Json | None, company: Any) -> Json:
    """How an order of a corporate customer reads (§10.4): ``customer`` the corporate
    customer (``type: customer_corporate``), ``contact`` the contact person in full,
    ``company`` the company object it names."""
    ref = company.get("id") if isinstance(company, dict) else None
    found = [c for c in corporate["companies"] if c["id"] == ref]
    shown = copy.deepcopy(found[0]) if found else company or None
    return {"customer": copy.deepcopy(corporate), "contact": contact, "company": shown}


def _main(rows: list[Json]) -> Json | None:
    """The row marked ``isMain``, else the first."""
    return next((r for r in rows if r.get("isMain")), rows[0] if rows else None)


def _diff(old: Json, new: Json) -> list[Row]:
    """Corporate history rows: contacts, companies, their main ones, other fields."""
    out: list[Row] = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        if a == b or key in ("id", "site", "type", "createdAt", "mainAddress"):
            continue
        if key == "customerContacts":
            was = {c["id"] for c in a or []}
            out += [
                ("contact", None, {"id": c["id"]}, {"customerContact": c})
                for c in b or []
                if c["id"] not in was
            ]
        elif key == "companies":
            was = {c["id"] for c in a or []}
            out += [
                ("company", None, {"id": c["id"], "name": c["name"]}, {"company": c})
                for c in b or []
                if c["id"] not in was
            ]
        elif key == "mainCustomerContact":
            out.append(("main_contact", a and {"id": a["id"]}, b and {"id": b["id"]}, {}))
        elif key == "mainCompany":
            out.append(("main_company", a, b, {}))
        else:
            out.append((snake(key), a, b, {}))
    return out
