"""Reading a RetailCRM corporate customer for delivery (retailcrm-api.md §10.4).

``GET /customers-corporate/{id}?by=id`` gives the corporate customer with its contact
persons and companies by reference only: ``mainCustomerContact`` is ``{id, customer{id,
externalId}}`` and ``mainCompany`` ``{id, name}``. A corporate customer has no phone of
its own, and its contact person is an ordinary individual customer (``/customers``), so the
state handed to mappings carries the main contact person read in full under
``mainCustomerContact.customer`` and the main company in full (``contragent`` with the
INN) under ``mainCompany``: a target keyed by phone (1C) then has one.

An order of a corporate customer reads with ``customer.type: customer_corporate`` and the
contact person, an individual customer in full, under ``contact`` (§10.4). The corporate
customer has no phone, names or e-mail of its own, so :func:`with_contact_person` gives
its ``customer`` the contact person's: mappings written for individual customers
(``customer.phones[0].number``, ``customer.firstName``) then carry the person who ordered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from bridge.errors import PermanentError
from connectors.retailcrm.client import RetailcrmClient, RetailcrmError
from connectors.retailcrm.errors import is_not_found

T = TypeVar("T")
Run = Callable[[Callable[[], T]], Awaitable[T]]


async def read_corporate(
    client: RetailcrmClient, run: Run[Any], entity_id: str
) -> dict[str, Any] | None:
    """The corporate customer with its main contact person and company in full; None when
    RetailCRM no longer has it."""
    answer = await _read_or_none(run, lambda: client.customer_corporate(entity_id, by="id"))
    found = answer.get("customerCorporate") if answer is not None else None
    if not isinstance(found, Mapping):
        return None
    corporate = dict(found)
    main = corporate.get("mainCustomerContact")
    person = main.get("customer") if isinstance(main, Mapping) else None
    own = person.get("id") if isinstance(person, Mapping) else None
    if isinstance(main, Mapping) and own is not None:
        read = await _read_or_none(run, lambda: client.customer(str(own), by="id"))
        full = read.get("customer") if read is not None else None
        if isinstance(full, Mapping):
            corporate["mainCustomerContact"] = {**main, "customer": dict(full)}
    company = corporate.get("mainCompany")
    if isinstance(company, Mapping):
        companies = corporate.get("companies")
        rows = companies if isinstance(companies, list) else []
        same = [c for c in rows if isinstance(c, Mapping) and c.get("id") == company.get("id")]
        if same:
            corporate["mainCompany"] = {**company, **same[0]}
    return corporate


CORPORATE = "customer_corporate"  # `customer.type` of a corporate order (§10.4)
PERSONAL_KEYS = ("phones", "firstName", "lastName", "patronymic", "email")


def with_contact_person(order: dict[str, Any]) -> dict[str, Any]:
    """A corporate order's ``customer`` with its contact person's phones, names and e-mail
    where it has none of its own; any other order as it is."""
    customer, contact = order.get("customer"), order.get("contact")
    if not (
        isinstance(customer, Mapping)
        and customer.get("type") == CORPORATE
        and isinstance(contact, Mapping)
    ):
        return order
    filled = dict(customer)
    for key in PERSONAL_KEYS:
        if filled.get(key) in (None, "", []) and contact.get(key) not in (None, "", []):
            filled[key] = contact[key]
    return {**order, "customer": filled}


async def _read_or_none(run: Run[Any], call: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """A read's answer, or None when RetailCRM says ``Not found``."""
    try:
        answer: dict[str, Any] = await run(call)
    except PermanentError as exc:
        cause = exc.__cause__
        if isinstance(cause, RetailcrmError) and is_not_found(cause):
            return None
        raise
    return answer
