"""The eight shipped mapping files to and from Bitrix: each loads clean and maps what the
sandboxes really give (samples taken from the emulators: crm.item.get of a deal and a
contact, 1C's GetOrder/GetCustomer, RetailCRM's GET /orders/{id} and /customers/{id}),
both as a create and as a write to what the target already holds (``when: create``)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.mapping import FlowMapping, MapResult, check_mapping, load_mapping

MAPPINGS = Path(__file__).resolve().parents[2] / "mappings"
FILES = [
    "bitrix_order_to_onec.yaml",
    "bitrix_order_to_retailcrm.yaml",
    "onec_order_to_bitrix.yaml",
    "retailcrm_order_to_bitrix.yaml",
    "bitrix_customer_to_onec.yaml",
    "bitrix_customer_to_retailcrm.yaml",
    "onec_customer_to_bitrix.yaml",
    "retailcrm_customer_to_bitrix.yaml",
]

# crm.item.get (entityTypeId 2) of a deal a manager made on the sandbox portal.
DEAL: dict[str, Any] = {
    "id": 7,
    "createdTime": "2026-11-23T08:03:32+03:00",
    "updatedTime": "2026-11-23T08:03:32+03:00",
    "createdBy": 1,
    "updatedBy": 1,
    "assignedById": 1,
    "opened": "Y",
    "comments": "Позвонить за час",
    "sourceId": "WEB",
    "sourceDescription": None,
    "typeId": "SALE",
    "companyId": None,
    "originatorId": None,
    "originId": None,
    "title": "Заказ №501 с сайта",
    "categoryId": 0,
    "stageId": "NEW",
    "currencyId": "RUB",
    "opportunity": 2490.5,
    "isManualOpportunity": "N",
    "taxValue": None,
    "contactId": 4,
    "contactIds": [4],
    "begindate": None,
    "closedate": None,
    "closed": "N",
    "probability": None,
    "additionalInfo": None,
    "entityTypeId": 2,
}
# crm.item.get (entityTypeId 3) of a contact with a phone and an e-mail.
CONTACT: dict[str, Any] = {
    "id": 4,
    "createdTime": "2026-11-23T08:03:32+03:00",
    "updatedTime": "2026-11-23T08:03:32+03:00",
    "createdBy": 1,
    "updatedBy": 1,
    "assignedById": 1,
    "opened": "Y",
    "comments": None,
    "sourceId": "CALL",
    "sourceDescription": None,
    "typeId": "CLIENT",
    "companyId": None,
    "originatorId": None,
    "originId": None,
    "honorific": None,
    "name": "Анна",
    "secondName": "Петровна",
    "lastName": "Сайтова",
    "birthdate": None,
    "post": None,
    "export": "Y",
    "ufCrmBonusBalance": None,
    "fm": [
        {"id": 4, "typeId": "PHONE", "valueType": "MOBILE", "value": "8 (900) 555-20-01"},
        {"id": 5, "typeId": "EMAIL", "valueType": "WORK", "value": "anna@example.ru"},
    ],
    "entityTypeId": 3,
}
# 1C's GetOrder of that deal once the bridge saved it (bitrix_order_to_onec) and 1C
# completed it.
ONEC_ORDER: dict[str, Any] = {
    "id": "10000000-0000-0000-0000-000000000001",
    "external_id": "bitrix-7",
    "number": "00-000001",
    "date": "2026-11-23T05:03:32Z",
    "status": "Выполнен",
    "version": "2",
    "document": {
        "number": "7",
        "status": "Выполнен",
        "date": "2026-11-23T08:03:32+03:00",
        "source": "bitrix",
        "title": "Заказ №501 с сайта",
        "total": "2490.50",
        "currency": "RUB",
        "comment": "Позвонить за час",
        "customer": {"bitrix_contact_id": "4"},
    },
}
# RetailCRM's GET /orders/5003?by=id of that deal (bitrix_order_to_retailcrm), assembling.
CRM_ORDER: dict[str, Any] = {
    "externalId": "bitrix-7",
    "customerComment": "Позвонить за час",
    "createdAt": "2026-11-23 08:03:32",
    "status": "assembling",
    "items": [
        {
            "productName": "Заказ №501 с сайта",
            "quantity": 1,
            "initialPrice": 2490.5,
            "id": 3,
            "discountManualAmount": 0,
            "bonusesChargeTotal": 0,
            "bonusesCreditTotal": 0,
            "status": "new",
            "discountTotal": 0,
            "prices": [{"price": 2490.5, "quantity": 1}],
        }
    ],
    "orderMethod": "shopping-cart",
    "id": 5003,
    "site": "shop",
    "number": "7",
    "slug": 5003,
    "statusUpdatedAt": "2026-11-23 08:05:00",
    "fromApi": True,
    "customFields": [],
    "payments": [],
    "summ": 2490.5,
    "bonusesChargeTotal": 0,
    "bonusesCreditTotal": 0,
    "prepaySum": 0,
    "totalSumm": 2490.5,
    "privilegeType": "none",
}
# 1C's GetCustomer of the contact, saved by the bridge and given a card in 1C.
ONEC_CUSTOMER: dict[str, Any] = {
    "customer_id": "00000000-0000-0000-0000-000000000004",
    "external_id": "bitrix-4",
    "phone": "+79005552001",
    "card": "2000000000770",
    "name": "Анна Сайтова",
    "version": "2",
    "document": {"phone": "+79005552001", "name": "Анна Сайтова", "source": "bitrix"},
}
# RetailCRM's GET /customers/104?by=id of the contact (bitrix_customer_to_retailcrm).
CRM_CUSTOMER: dict[str, Any] = {
    "externalId": "bitrix-4",
    "firstName": "Анна",
    "lastName": "Сайтова",
    "patronymic": "Петровна",
    "phones": [{"number": "+79005552001"}],
    "createdAt": "2026-11-23 08:03:40",
    "id": 104,
    "site": "shop",
    "type": "customer",
    "customFields": [],
    "vip": False,
    "bad": False,
    "personalDiscount": 0,
    "ordersCount": 0,
    "discountCardNumber": "2000000000770",
}
STAGES = ["NEW", "PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "FINAL_INVOICE", "WON", "LOSE"]


def flow(name: str) -> FlowMapping:
    return load_mapping(MAPPINGS / name)


def with_(sample: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return copy.deepcopy(sample) | changes


@pytest.mark.parametrize("name", FILES)
def test_each_file_loads_clean_and_agrees_with_its_name(name: str) -> None:
    assert check_mapping(MAPPINGS / name) == []
    data = yaml.safe_load((MAPPINGS / name).read_text(encoding="utf-8"))
    source, entity, _to, target = name.removesuffix(".yaml").split("_")
    assert (data["source"], data["entity"], data["target"]) == (source, entity, target)


def test_a_deal_becomes_a_1c_order_the_same_on_create_and_on_edit() -> None:
    expected = {
        "number": "7",
        "status": "Новый",
        "date": "2026-11-23T08:03:32+03:00",
        "source": "bitrix",
        "title": "Заказ №501 с сайта",
        "total": "2490.50",
        "currency": "RUB",
        "comment": "Позвонить за час",
        "customer": {"bitrix_contact_id": "4"},
        # One line of the deal's amount (issue 12: 1C's lines add up to its total).
        "items": [
            {"name": "Заказ №501 с сайта", "quantity": 1, "price": "2490.50", "discount": "0.00"}
        ],
    }
    mapping = flow("bitrix_order_to_onec.yaml")
    # SaveOrder replaces the whole document: a flow into 1C writes everything every time.
    assert mapping.apply(DEAL) == MapResult(expected)
    assert mapping.apply(DEAL, creating=False) == MapResult(expected)


def test_a_deal_without_amount_comment_or_contact_still_maps() -> None:
    bare = with_(DEAL, comments=None, opportunity=None, contactId=None)
    mapped = flow("bitrix_order_to_onec.yaml").apply(bare).document
    assert mapped is not None
    assert (mapped["total"], mapped["comment"], "customer" in mapped) == ("0.00", "", False)


def test_a_deal_of_another_pipeline_or_an_unlisted_stage_does_not_flow() -> None:
    for name in ("bitrix_order_to_onec.yaml", "bitrix_order_to_retailcrm.yaml"):
        mapping = flow(name)
        other = with_(DEAL, categoryId=1, stageId="C1:NEW")
        assert mapping.apply(other).skipped == "filters[0]: categoryId is 1, not one of '0'"
        custom = mapping.apply(with_(DEAL, stageId="UC_8KQ2Z1"))
        assert custom.document is None
        assert "'UC_8KQ2Z1' is not in table 'stages' (unknown: skip)" in str(custom.skipped)


def test_a_deal_becomes_a_retailcrm_order_whose_lines_are_written_once() -> None:
    mapping = flow("bitrix_order_to_retailcrm.yaml")
    always = {
        "status": "new",
        "number": "7",
        "createdAt": "2026-11-23 08:03:32",
        "customerComment": "Позвонить за час",
    }
    assert mapping.apply(DEAL) == MapResult(
        always
        | {
            "items": [{"productName": "Заказ №501 с сайта", "quantity": 1, "initialPrice": 2490.5}],
            "orderMethod": "shopping-cart",
        }
    )
    # A later stage in Bitrix edits the status; RetailCRM keeps its lines and the rest.
    won = with_(DEAL, stageId="WON", opportunity=100)
    assert mapping.apply(won, creating=False) == MapResult(always | {"status": "complete"})


def test_a_stage_means_the_same_straight_to_retailcrm_as_through_1c() -> None:
    """bitrix → retailcrm agrees with bitrix → 1C → retailcrm (onec_order_to_retailcrm), so a
    status that comes back through 1C never moves RetailCRM's order to another one."""
    straight, to_onec = flow("bitrix_order_to_retailcrm.yaml"), flow("bitrix_order_to_onec.yaml")
    onwards = load_mapping(MAPPINGS / "onec_order_to_retailcrm.yaml")
    for stage in STAGES:
        deal = with_(DEAL, stageId=stage)
        direct = straight.apply(deal, creating=False).document
        document = to_onec.apply(deal).document
        assert direct is not None and document is not None
        through = onwards.apply(
            with_(ONEC_ORDER, status=document["status"], document=document), creating=False
        ).document
        assert through is not None
        picked = {k: through[k] for k in ("status", "number", "createdAt")}
        assert picked == {k: direct[k] for k in picked}, stage


def test_1c_statuses_come_back_as_the_stages_they_came_from() -> None:
    to_onec, back = flow("bitrix_order_to_onec.yaml"), flow("onec_order_to_bitrix.yaml")
    for stage in STAGES:
        document = to_onec.apply(with_(DEAL, stageId=stage)).document
        assert document is not None
        status = document["status"]
        mapped = back.apply(with_(ONEC_ORDER, status=status), creating=False)
        # An invoice for prepayment is "confirmed" in 1C, which is PREPARATION again.
        assert mapped == MapResult(
            {"stageId": "PREPARATION" if stage.startswith("PREP") else stage}
        )


def test_retailcrm_statuses_move_the_deal_and_nothing_else() -> None:
    back = flow("retailcrm_order_to_bitrix.yaml")
    for status, stage in [
        ("new", "NEW"),
        ("availability-confirmed", "PREPARATION"),
        ("assembling", "EXECUTING"),
        ("send-to-delivery", "FINAL_INVOICE"),
        ("delivering", "FINAL_INVOICE"),
        ("complete", "WON"),
        ("cancel-other", "LOSE"),
    ]:
        mapped = back.apply(with_(CRM_ORDER, status=status), creating=False)
        assert mapped == MapResult({"stageId": stage})
    unknown = back.apply(with_(CRM_ORDER, status="prepayed"), creating=False)
    assert unknown.document is None


@pytest.mark.parametrize(
    ("name", "sample", "table"),
    [
        ("onec_order_to_bitrix.yaml", ONEC_ORDER, "only_deals_bitrix_holds"),
        ("retailcrm_order_to_bitrix.yaml", CRM_ORDER, "only_deals_bitrix_holds"),
        ("onec_customer_to_bitrix.yaml", ONEC_CUSTOMER, "only_contacts_bitrix_holds"),
        ("retailcrm_customer_to_bitrix.yaml", CRM_CUSTOMER, "only_contacts_bitrix_holds"),
    ],
)
def test_nothing_is_created_in_bitrix(name: str, sample: dict[str, Any], table: str) -> None:
    """What Bitrix does not hold yet is skipped (a till sale, a call-centre order, a
    customer the site does not know): the shop gets back only what it has."""
    result = flow(name).apply(sample)
    assert result.document is None
    assert f"is not in table {table!r} (unknown: skip)" in str(result.skipped)


def without_the_guard(name: str, tmp_path: Path) -> FlowMapping:
    """The file with its first field rule (the guard) deleted, as its comment says to."""
    data = yaml.safe_load((MAPPINGS / name).read_text(encoding="utf-8"))
    assert data["fields"][0]["when"] == "create"
    data["fields"] = data["fields"][1:]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    assert check_mapping(path) == []
    return load_mapping(path)


def test_without_the_guard_orders_would_become_deals(tmp_path: Path) -> None:
    till = with_(
        ONEC_ORDER,
        external_id=None,
        status="Новый",
        document={"number": "T-1", "status": "Новый", "total": "1500.00", "comment": "касса"},
    )
    assert without_the_guard("onec_order_to_bitrix.yaml", tmp_path).apply(till) == MapResult(
        {
            "stageId": "NEW",
            "title": "T-1",
            "opportunity": 1500,
            "currencyId": "RUB",
            "comments": "касса",
            "sourceId": "STORE",
        }
    )
    call_centre = with_(CRM_ORDER, externalId=None, number="5004A", status="new")
    assert without_the_guard("retailcrm_order_to_bitrix.yaml", tmp_path).apply(
        call_centre
    ) == MapResult(
        {
            "stageId": "NEW",
            "title": "5004A",
            "opportunity": 2490.5,
            "currencyId": "RUB",
            "comments": "Позвонить за час",
            "sourceId": "CALL",
        }
    )


def test_without_the_guard_customers_would_become_contacts(tmp_path: Path) -> None:
    phone = [{"typeId": "PHONE", "valueType": "MOBILE", "value": "+79005552001"}]
    onec = without_the_guard("onec_customer_to_bitrix.yaml", tmp_path)
    assert onec.apply(ONEC_CUSTOMER) == MapResult(
        {"ufCrmLoyaltyCard": "2000000000770", "name": "Анна Сайтова", "fm": phone}
    )
    crm = without_the_guard("retailcrm_customer_to_bitrix.yaml", tmp_path)
    assert crm.apply(CRM_CUSTOMER) == MapResult(
        {
            "name": "Анна",
            "lastName": "Сайтова",
            "secondName": "Петровна",
            "ufCrmLoyaltyCard": "2000000000770",
            "fm": phone,
        }
    )


def test_a_contact_becomes_a_1c_customer_by_its_phone() -> None:
    mapping = flow("bitrix_customer_to_onec.yaml")
    expected = {"phone": "+79005552001", "name": "Анна Сайтова", "source": "bitrix"}
    assert mapping.apply(CONTACT) == MapResult(expected)
    assert mapping.apply(CONTACT, creating=False) == MapResult(expected)
    carded = with_(CONTACT, ufCrmLoyaltyCard="2000000000770")
    assert mapping.apply(carded).document == expected | {"card": "2000000000770"}


def test_a_contact_becomes_a_retailcrm_customer_with_every_phone() -> None:
    mapping = flow("bitrix_customer_to_retailcrm.yaml")
    second = {"id": 6, "typeId": "PHONE", "valueType": "WORK", "value": "+7 495 123-45-67"}
    two = with_(CONTACT, fm=[*CONTACT["fm"], second])
    expected = {
        "phones": [{"number": "+79005552001"}, {"number": "+74951234567"}],
        "firstName": "Анна",
        "lastName": "Сайтова",
        "patronymic": "Петровна",
    }
    assert mapping.apply(two) == MapResult(expected)
    assert mapping.apply(two, creating=False) == MapResult(expected)


@pytest.mark.parametrize(
    "name", ["bitrix_customer_to_onec.yaml", "bitrix_customer_to_retailcrm.yaml"]
)
def test_a_contact_whose_first_entry_is_no_phone_is_skipped(name: str) -> None:
    email_first = with_(CONTACT, fm=list(reversed(CONTACT["fm"])))
    assert flow(name).apply(email_first) == MapResult(
        None, "filters[0]: fm[0].typeId is 'EMAIL', not one of 'PHONE'"
    )
    assert flow(name).apply(with_(CONTACT, fm=[])).document is None


def test_names_and_cards_go_back_onto_contacts_bitrix_holds() -> None:
    assert flow("onec_customer_to_bitrix.yaml").apply(ONEC_CUSTOMER, creating=False) == MapResult(
        {"ufCrmLoyaltyCard": "2000000000770"}
    )
    cardless = flow("onec_customer_to_bitrix.yaml").apply(with_(ONEC_CUSTOMER, card=None))
    assert cardless.skipped == "filters[0]: card is absent"
    crm = flow("retailcrm_customer_to_bitrix.yaml")
    assert crm.apply(CRM_CUSTOMER, creating=False) == MapResult(
        {
            "name": "Анна",
            "lastName": "Сайтова",
            "secondName": "Петровна",
            "ufCrmLoyaltyCard": "2000000000770",
        }
    )
