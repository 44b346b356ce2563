"""Issue 12, point 9: corporate customers (retailcrm-api.md §10.4).

With ``corporate_customers: true`` the bridge polls ``/customers-corporate/history`` and
mirrors a corporate customer into 1C through the shipped mapping (its main contact
person's phone and name, the company's name); a corporate order reaches 1C with its
contact person's phone and name. Both sandboxes, over the wire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.store.records import EventFilter
from tests.support.bonus import BonusFactory, bonus_factory
from tests.support.emulators import onec_emulator
from tests.support.mirroring import crm_call, mirroring_config, shipped_route
from tests.support.waiting import eventually

__all__ = ["bonus_factory"]  # the fixture, used by name
MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"

CORPORATE = {
    "externalId": "corp-1",
    "nickName": "ООО Ромашка",
    "customerContacts": [{"isMain": True, "customer": {"externalId": "c-3"}}],
    "companies": [{"name": "ООО «Ромашка»", "isMain": True, "contragent": {"INN": "7701234567"}}],
}


def corporate_config(tmp_path: Path, *, poll: bool, route: bool = False) -> dict[str, Any]:
    config = mirroring_config(tmp_path)
    config["systems"]["retailcrm"]["options"]["corporate_customers"] = poll
    if route:
        corporate = shipped_route("retailcrm", "corporate_customer", "onec")
        corporate["mapping"] = str(MAPPINGS / "retailcrm_corporate_customer_to_onec.yaml")
        config["mirror"]["routes"].append(corporate)
    return config


async def test_a_corporate_order_reaches_1c_with_its_contact_person(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=corporate_config(tmp_path, poll=False))
    onec = onec_emulator(bonus.runtime)
    made = await crm_call(bonus, lambda c: c.customer_corporate_create(CORPORATE, "shop"))
    corporate = await crm_call(bonus, lambda c: c.customer_corporate("corp-1", "externalId"))
    company = corporate["customerCorporate"]["mainCompany"]["id"]
    order = {
        "externalId": "b2b-1",
        "number": "B2B-1",
        "status": "new",
        "customer": {"id": made["id"]},
        "contact": {"externalId": "c-3"},
        "company": {"id": company},
        "items": [{"offer": {"externalId": "SKU-1"}, "quantity": 10, "initialPrice": 1500}],
    }
    created = await crm_call(bonus, lambda c: c.order_create(order, "shop"))

    async def in_1c() -> Any:
        return onec.ledger.snapshot()["orders"].get(f"retailcrm-{created['id']}")

    _number, _version, document = await eventually(in_1c)
    # The contact person, c-3 (Ольга Иванова, +79000000003), not a company without a phone.
    assert document["customer"]["phone"] == "+79000000003"
    assert document["customer"]["name"] == "Ольга Иванова"
    assert document["customer"]["company"] == "ООО «Ромашка»"
    assert document["total"] == "15000.00"


async def test_corporate_customers_are_mirrored_into_1c_by_the_shipped_mapping(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    config = corporate_config(tmp_path, poll=True, route=True)
    bonus = await bonus_factory("onec", config=config)
    onec = onec_emulator(bonus.runtime)
    store = bonus.runtime.store
    await eventually(lambda: store.get_cursor("retailcrm", "corporate_customers"))
    made = await crm_call(bonus, lambda c: c.customer_corporate_create(CORPORATE, "shop"))
    key = f"retailcrm-{made['id']}"

    async def in_1c() -> Any:
        found = [
            c
            for c in onec.ledger.snapshot()["customers"].values()
            if (c[4] or {}).get("company") == "ООО «Ромашка»"
        ]
        return found[0] if found else None

    phone, _card, name, _version, document = await eventually(in_1c)
    # 1C keys customers by phone: the company reaches 1C as its main contact person (c-3,
    # whose own account it is), the company's name and INN beside.
    assert (phone, name) == ("+79000000003", "Ольга Иванова")
    assert document["inn"] == "7701234567"
    pair = await eventually(
        lambda: store.lookup_id("corporate_customer", "retailcrm", str(made["id"]), "onec")
    )
    assert pair is not None
    assert key == f"retailcrm-{made['id']}"


async def test_corporate_customer_changes_are_polled_when_configured(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=corporate_config(tmp_path, poll=True))
    store = bonus.runtime.store
    await eventually(lambda: store.get_cursor("retailcrm", "corporate_customers"))
    made = await crm_call(bonus, lambda c: c.customer_corporate_create(CORPORATE, "shop"))
    edit = {"externalId": "corp-1", "nickName": "ООО Ромашка и К"}
    await crm_call(bonus, lambda c: c.customer_corporate_edit(edit, "externalId", "shop"))

    async def polled() -> Any:
        events = await store.list_events(EventFilter(source="retailcrm", limit=100))
        return [e for e in events if e.entity == "corporate_customer"]

    (event, *_) = await eventually(polled)
    assert event.entity_id == str(made["id"])
    connector = bonus.runtime.connectors.by_system["retailcrm"]
    state = await connector.read_entity("corporate_customer", str(made["id"]))  # type: ignore[attr-defined]
    # Read in full: the main contact person (c-3) and the main company.
    assert state["mainCustomerContact"]["customer"]["phones"] == [{"number": "+79000000003"}]
    assert state["mainCompany"]["contragent"]["INN"] == "7701234567"


async def test_corporate_customers_are_not_polled_unless_configured(
    bonus_factory: BonusFactory, tmp_path: Path
) -> None:
    bonus = await bonus_factory("onec", config=corporate_config(tmp_path, poll=False))
    store = bonus.runtime.store
    await eventually(lambda: store.get_cursor("retailcrm", "orders"))
    assert await store.get_cursor("retailcrm", "corporate_customers") is None
