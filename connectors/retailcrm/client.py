"""Wire client for the RetailCRM API v5: the methods the connector uses, typed.

Built on the official ``retailcrm`` package (5.3.x) with its transport replaced
(``transport.py``): every call gets a fresh package object over one shared pooled session,
so calls from many threads never share request state (retailcrm-api.md §6.2), and every call
has a timeout. Methods return the parsed answer on success and raise the ``Retailcrm*``
exceptions otherwise; ``errors.py`` decides what each means to the bridge. It is blocking:
the connector runs it in a worker thread after the key's rate limiter (``ratelimit.py``).
Nothing here imports the bridge.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import quote, urlsplit

from connectors.retailcrm.transport import (
    PackageApi,
    RetailcrmApiError,
    RetailcrmError,
    RetailcrmNotJson,
    RetailcrmPartial,
    RetailcrmUnreachable,
    dict_list,
    jsonable,
    normalize_errors,
    open_session,
)

By = Literal["externalId", "id"]
BonusStatus = Literal["waiting_activation", "burn_soon"]
HistoryFeed = Literal["orders", "customers", "customers-corporate"]
UPLOAD_MAX = 50  # entities per /orders/upload and /customers/upload call (§1.6, §2.4)


def phone_digits(phone: str) -> str:
    """A phone's digits with a Russian trunk ``8`` or a bare 10-digit mobile read as ``7…``."""
    digits = "".join(ch for ch in phone if ch.isdigit())
    if len(digits) == 11 and digits[0] == "8":
        return "7" + digits[1:]
    if len(digits) == 10 and digits[0] == "9":
        return "7" + digits
    return digits


class RetailcrmClient:
    """Blocking, thread-safe client for the API v5 methods the connector uses."""

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        pool_size: int = 8,
        site: str | None = None,
    ) -> None:
        root = url.strip().rstrip("/")  # the package would build "//api" (§6.2)
        parts = urlsplit(root)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"url: {url!r} is not an http(s) address")
        if parts.path.endswith("/api") or "/api/" in parts.path:
            raise ValueError(f"url: give the account address without /api, not {url!r}")
        self.url = root
        self.site = site
        self._timeout = timeout
        self._session = open_session(api_key, pool_size, root)

    def __repr__(self) -> str:
        return f"RetailcrmClient({self.url!r}, site={self.site!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    # Orders (§2) -----------------------------------------------------------------------

    def order(self, uid: str | int, *, by: By = "externalId") -> dict[str, Any]:
        """``GET /orders/{uid}``; raises ``RetailcrmApiError`` (404) when there is none."""
        site = self.site if by == "externalId" else None
        return self._call(lambda api: api.order(_segment(uid), by, site))

    def order_create(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /orders/create`` (201 ``{id, order}``)."""
        return self._call(lambda api: api.order_create(jsonable(order), self.site))

    def order_edit(self, order: Mapping[str, Any], *, by: By = "externalId") -> dict[str, Any]:
        """``POST /orders/{order[by]}/edit`` with only the keys to change."""
        return self._call(lambda api: self._edit(api, "order", order, by))

    def orders_upload(self, orders: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /orders/upload`` of 1..50 orders; a partial failure is ``RetailcrmPartial``."""
        batch = _batch(orders)
        return self._call(lambda api: api.orders_upload(batch, self.site))

    def orders(
        self, filters: Mapping[str, Any] | None = None, limit: int = 20, page: int = 1
    ) -> dict[str, Any]:
        """``GET /orders`` with ``filter[...]`` (§2.1), one page."""
        return self._call(lambda api: api.orders(dict(filters or {}), limit, page))

    def orders_history(self, since_id: int | None, limit: int = 100) -> dict[str, Any]:
        """``GET /orders/history`` after change ``since_id`` (all history when ``None``)."""
        filters = {} if since_id is None else {"sinceId": since_id}
        return self._call(lambda api: api.orders_history(filters, limit, 1))

    def history(
        self, feed: HistoryFeed, filters: Mapping[str, Any], limit: int = 100, page: int = 1
    ) -> dict[str, Any]:
        """``GET /<feed>/history`` with any ``filter[...]`` (``sinceId``, ``startDate``) and a
        page (§2.5, §10.4): ``orders``, ``customers`` or ``customers-corporate``."""
        read = {
            "orders": lambda api: api.orders_history(dict(filters), limit, page),
            "customers": lambda api: api.customers_history(dict(filters), limit, page),
            "customers-corporate": lambda api: api.customers_corporate_history(
                dict(filters), limit, page
            ),
        }[feed]
        return self._call(read)

    def customer_corporate(self, uid: str | int, *, by: By = "externalId") -> dict[str, Any]:
        """``GET /customers-corporate/{uid}`` (§10.4): ``{customerCorporate}``."""
        site = self.site if by == "externalId" else None
        return self._call(lambda api: api.customer_corporate(_segment(uid), by, site))

    # Customers (§3) --------------------------------------------------------------------

    def customer(self, uid: str | int, *, by: By = "externalId") -> dict[str, Any]:
        """``GET /customers/{uid}``; a merged-away customer's 404 body has ``combinedTo``."""
        site = self.site if by == "externalId" else None
        return self._call(lambda api: api.customer(_segment(uid), by, site))

    def customer_create(self, customer: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /customers/create`` (201 ``{id}``)."""
        return self._call(lambda api: api.customer_create(jsonable(customer), self.site))

    def customer_edit(
        self, customer: Mapping[str, Any], *, by: By = "externalId"
    ) -> dict[str, Any]:
        """``POST /customers/{customer[by]}/edit`` with only the keys to change."""
        return self._call(lambda api: self._edit(api, "customer", customer, by))

    def customers_upload(self, customers: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /customers/upload`` of 1..50 customers; partial failure: ``RetailcrmPartial``."""
        batch = _batch(customers)
        return self._call(lambda api: api.customers_upload(batch, self.site))

    def customers_history(self, since_id: int | None, limit: int = 100) -> dict[str, Any]:
        """``GET /customers/history`` after change ``since_id`` (all history when ``None``)."""
        filters = {} if since_id is None else {"sinceId": since_id}
        return self._call(lambda api: api.customers_history(filters, limit, 1))

    def customers(
        self, filters: Mapping[str, Any] | None = None, limit: int = 20, page: int = 1
    ) -> dict[str, Any]:
        """``GET /customers`` with ``filter[...]``."""
        return self._call(lambda api: api.customers(dict(filters or {}), limit, page))

    def customers_by_phone(self, phone: str, limit: int = 100) -> list[dict[str, Any]]:
        """Customers having exactly ``phone``: ``filter[name]`` search, then compared digits.

        ``/customers`` has no phone filter; ``name`` is a free-text search (§3.2) whose
        matching is not documented, so the national part is searched (it matches ``+7…``
        and ``8…`` spellings alike) and every hit is checked against ``phones[].number``.
        """
        wanted = phone_digits(phone)
        if len(wanted) < 5:
            raise ValueError("phone: too few digits to search by")
        needle = wanted[1:] if len(wanted) == 11 and wanted[0] == "7" else wanted
        found = self.customers({"name": needle}, limit, 1).get("customers") or []
        return [
            c
            for c in found
            if isinstance(c, dict)
            and any(
                phone_digits(str(p.get("number", ""))) == wanted for p in dict_list(c.get("phones"))
            )
        ]

    # Loyalty (§4) ----------------------------------------------------------------------

    def loyalties(
        self, filters: Mapping[str, Any] | None = None, limit: int = 20, page: int = 1
    ) -> dict[str, Any]:
        """``GET /loyalty/loyalties`` (programmes)."""
        return self._call(lambda api: api.loyalty_loyalties(dict(filters or {}), limit, page))

    def loyalty(self, loyalty_id: int) -> dict[str, Any]:
        """``GET /loyalty/loyalties/{id}``: a programme with its levels."""
        return self._call(lambda api: api.loyalty_loyalty(_segment(loyalty_id)))

    def loyalty_accounts(
        self, filters: Mapping[str, Any], limit: int = 20, page: int = 1
    ) -> dict[str, Any]:
        """``GET /loyalty/accounts`` by ``phoneNumber``, ``cardNumber``, ``customerId``, …."""
        return self._call(lambda api: api.loyalty_accounts(dict(filters), limit, page))

    def loyalty_account(self, account_id: int) -> dict[str, Any]:
        """``GET /loyalty/account/{id}``: balance, level, status."""
        return self._call(lambda api: api.loyalty_account(_segment(account_id)))

    def loyalty_account_create(self, account: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /loyalty/account/create`` in the client's site."""
        return self._call(lambda api: api.loyalty_account_create(self.site, jsonable(account)))

    def loyalty_account_edit(self, account_id: int, account: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /loyalty/account/{id}/edit``: ``phoneNumber``, ``cardNumber``, … (§4.2)."""
        return self._call(
            lambda api: api.loyalty_account_edit(_segment(account_id), jsonable(account))
        )

    def loyalty_account_activate(self, account_id: int) -> dict[str, Any]:
        """``POST /loyalty/account/{id}/activate`` (may return ``verification``)."""
        return self._call(lambda api: api.loyalty_account_activate(_segment(account_id)))

    def bonus_credit(
        self,
        account_id: int,
        amount: Decimal | int,
        *,
        activation_date: date | None = None,
        expire_date: date | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """``POST /loyalty/account/{id}/bonus/credit`` (a manual credit)."""
        start, end = _day(activation_date), _day(expire_date)
        return self._call(
            lambda api: api.loyalty_account_bonus_credit(
                _segment(account_id), amount, start, end, comment
            )
        )

    def bonus_charge(
        self, account_id: int, amount: Decimal | int, *, comment: str | None = None
    ) -> dict[str, Any]:
        """``POST /loyalty/account/{id}/bonus/charge`` (a manual charge)."""
        return self._call(
            lambda api: api.loyalty_account_bonus_charge(_segment(account_id), amount, comment)
        )

    def bonus_operations(
        self, loyalty_ids: Sequence[int] = (), cursor: str | None = None, limit: int = 100
    ) -> dict[str, Any]:
        """``GET /loyalty/bonus/operations``: every account's operations after ``cursor``."""
        filters = {"loyalties": list(loyalty_ids)} if loyalty_ids else {}
        return self._call(lambda api: api.loyalty_bonus_operations(filters, limit, cursor))

    def bonus_details(
        self, account_id: int, status: BonusStatus, limit: int = 20, page: int = 1
    ) -> dict[str, Any]:
        """``GET /loyalty/account/{id}/bonus/{status}/details``: pending or burning soon."""
        return self._call(
            lambda api: api.loyalty_account_bonus_details(
                _segment(account_id), status, {}, limit, page
            )
        )

    def loyalty_calculate(self, order: Mapping[str, Any], bonuses: Decimal | int) -> dict[str, Any]:
        """``POST /loyalty/calculate``: the cart's ``maxChargeBonuses`` and credit."""
        return self._call(lambda api: api.loyalty_calculate(jsonable(order), self.site, bonuses))

    def loyalty_apply(self, order: Mapping[str, Any], bonuses: Decimal | int) -> dict[str, Any]:
        """``POST /orders/loyalty/apply``: charge ``bonuses`` (may answer ``verification``)."""
        return self._call(lambda api: api.orders_loyalty_apply(jsonable(order), self.site, bonuses))

    def cancel_bonus_operations(self, order: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /orders/loyalty/cancel-bonus-operations``: undo an order's charge."""
        return self._call(
            lambda api: api.orders_loyalty_cancel_bonus_operations(jsonable(order), self.site)
        )

    def verification_confirm(self, code: str, check_id: str) -> dict[str, Any]:
        """``POST /verification/sms/confirm`` with the code the customer received."""
        verification = {"code": code, "checkId": check_id}
        return self._call(lambda api: api.verification_sms_confirm(verification))

    def verification_status(self, check_id: str) -> dict[str, Any]:
        """``GET /verification/sms/{checkId}/status``."""
        return self._call(lambda api: api.verification_sms_status(_segment(check_id)))

    def api_credentials(self) -> dict[str, Any]:
        """``GET /api/credentials``: the key's scopes and sites (a connection test)."""
        return self._call(lambda api: api.api_credentials())

    # Transport -------------------------------------------------------------------------

    def _call(self, request: Callable[[PackageApi], Any]) -> dict[str, Any]:
        # A fresh package object per call: it keeps request state on itself (§6.2).
        answer = request(PackageApi(self.url, self._session, self._timeout))
        if not isinstance(answer, dict):  # pragma: no cover - PackageApi only returns dicts
            raise TypeError(f"unexpected answer {answer!r:.80}")
        return answer

    def _edit(self, api: PackageApi, entity: str, payload: Mapping[str, Any], by: By) -> Any:
        # The package's order_edit/customer_edit put the raw id into the path (§2.1): an
        # externalId with "/" or "?" would address another resource. Same form, escaped path.
        uid = payload.get(by)
        if uid is None or uid == "":
            raise ValueError(f"{entity}.{by}: required to address the edit")
        api.parameters[entity] = json.dumps(jsonable(payload))
        if by != "externalId":
            api.parameters["by"] = by
        if self.site is not None:
            api.parameters["site"] = self.site
        return api.post(f"/{entity}s/{_segment(uid)}/edit")


def _batch(entities: Sequence[Mapping[str, Any]]) -> list[Any]:
    if not 1 <= len(entities) <= UPLOAD_MAX:
        raise ValueError(f"an upload takes 1..{UPLOAD_MAX} entities, not {len(entities)}")
    return [jsonable(entity) for entity in entities]


def _segment(uid: object) -> str:
    return quote(str(uid), safe="")


def _day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


__all__ = [
    "UPLOAD_MAX",
    "RetailcrmApiError",
    "RetailcrmClient",
    "RetailcrmError",
    "RetailcrmNotJson",
    "RetailcrmPartial",
    "RetailcrmUnreachable",
    "normalize_errors",
    "phone_digits",
]
