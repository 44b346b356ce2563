"""The 1C contract as code, and its WSDL as real zeep reads it (no network, no mocks)."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
import zeep
from lxml import etree
from pydantic import BaseModel, ValidationError
from zeep.wsdl.bindings.soap import Soap11Binding, Soap12Binding

from connectors.onec.contract import (
    OPERATIONS,
    RECORDS,
    ErrorCode,
    default_element,
    fault_code,
    fault_text,
)
from connectors.onec.naming import Naming
from connectors.onec.wsdl import REFERENCE_LOCATION, REFERENCE_PATH, render_wsdl

ONEC = Path(__file__).parents[2] / "connectors" / "onec"
CYRILLIC = ONEC / "wsdl" / "cyrillic_example.yaml"
SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"


def cyrillic() -> Naming:
    return Naming.model_validate(yaml.safe_load(CYRILLIC.read_text(encoding="utf-8")))


def problems(data: dict[str, Any]) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(ValidationError) as caught:
        Naming.model_validate(data)
    return {tuple(error["loc"]): error["msg"] for error in caught.value.errors()}


# --- the contract matches CONTRACT.md -----------------------------------------------------


def test_operations_table_matches_contract_md() -> None:
    text = (ONEC / "CONTRACT.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| `(\w+)` \| `(\w+)` \| `POST ([^`]+)` \| (.*) \| `(\w+)` \|$", text, re.M
    )
    assert [row[0] for row in rows] == list(OPERATIONS)
    for logical, soap, path, params, result in rows:
        op = OPERATIONS[logical]
        assert (op.soap, op.http_path, op.result.name) == (soap, path, result)
        documented = re.findall(r"`(\w+)(\??)`", params)
        assert [(p.element, "?" if p.optional else "") for p in op.params] == documented


def test_error_codes_match_contract_md() -> None:
    text = (ONEC / "CONTRACT.md").read_text(encoding="utf-8")
    errors = text[text.index("## Errors") :]
    assert set(re.findall(r"^\| `(\w+)` \|", errors, re.M)) == set(ErrorCode)
    assert ErrorCode.OPERATION_CONFLICT.http_status == 409
    assert ErrorCode.UNKNOWN_CUSTOMER.http_status == 404
    assert ErrorCode.RESERVATION_NOT_FOUND.http_status == 404
    assert ErrorCode.INSUFFICIENT_BALANCE.http_status == 422
    assert ErrorCode.UNKNOWN_ORDER.http_status == 404


def test_fault_text_round_trips_and_unknown_text_has_no_code() -> None:
    text = fault_text(ErrorCode.UNKNOWN_CUSTOMER, "Клиент не найден")
    assert text == "unknown_customer: Клиент не найден"
    assert fault_code(text) is ErrorCode.UNKNOWN_CUSTOMER
    assert fault_code("Ошибка преобразования данных XDTO") is None
    assert fault_code("no_such_code: x") is None


def test_records_default_names_and_idempotency() -> None:
    assert default_element("since_message_no") == "SinceMessageNo"
    assert [f.element for f in RECORDS["Balance"].fields] == [
        "CustomerId", "Balance", "Reserved", "Available", "MaxRedeemable", "Level", "AsOf",
    ]  # fmt: skip
    items = RECORDS["Changes"].fields[0]
    assert (items.name, items.type, items.repeated) == ("items", RECORDS["Change"], True)
    ledger = {name for name, op in OPERATIONS.items() if op.idempotent}
    assert ledger == {
        "reserve", "commit", "release", "accrue", "reverse", "save_order", "save_customer",
        "attach_card", "set_card_status", "set_main_card", "move_points", "save_profile",
        "register_customer",
    }  # fmt: skip
    for op in OPERATIONS.values():  # one flat logical → element map per operation needs this
        names = [name for record in op.result.walk() for name in record.names]
        assert len(names) == len(set(names)), op.name


# --- Naming -------------------------------------------------------------------------------


def test_empty_naming_is_the_reference_contract() -> None:
    balance = Naming().resolve("balance")
    assert balance.name == "GetBalance"
    assert balance.soap_action == "urn:bridge-loyalty:v1#BridgeLoyalty:GetBalance"
    assert dict(balance.params) == {"customer_id": "CustomerId", "cart_total": "CartTotal"}
    assert balance.fields["max_redeemable"] == "MaxRedeemable"
    assert Naming().logical_for("GetChanges") == "get_changes"
    assert Naming().logical_for("НетТакой") is None


def test_cyrillic_example_names_every_operation_parameter_and_field() -> None:
    naming = cyrillic()
    for op in naming.resolve_all():
        own = naming.operations[op.contract.name]
        assert own.operation == op.name
        assert set(own.params) == set(op.params)
        assert set(own.result) == set(op.fields)
    balance = naming.resolve("balance")
    assert (
        balance.soap_action == "http://www.example-shop.ru/bonus#БонуснаяПрограмма:ПолучитьБаланс"
    )
    assert naming.logical_for("Списать") == "commit"


def test_unknown_keys_and_bad_names_are_all_reported_at_their_place() -> None:
    found = problems(
        {
            "service": "Бонусы 2",
            "operations": {
                "bogus": {},
                "balance": {
                    "operation": "1Баланс",
                    "params": {"phone": "Телефон", "cart_total": "Сумма Корзины"},
                    "result": {"colour": "Цвет", "balance": "ns:Баланс"},
                },
            },
        }
    )
    assert set(found) == {
        ("service",),
        ("operations", "bogus"),
        ("operations", "balance", "operation"),
        ("operations", "balance", "params", "phone"),
        ("operations", "balance", "params", "cart_total"),
        ("operations", "balance", "result", "colour"),
        ("operations", "balance", "result", "balance"),
    }
    assert "'bogus'" in found["operations", "bogus"]
    assert "'phone'" in found["operations", "balance", "params", "phone"]
    assert "customer_id, cart_total" in found["operations", "balance", "params", "phone"]
    assert "'colour'" in found["operations", "balance", "result", "colour"]
    bad = found["operations", "balance", "params", "cart_total"]
    assert "'Сумма Корзины' is not a valid XML name" in bad


def test_misspelt_keys_and_clashing_names_are_rejected() -> None:
    assert problems({"servce": "X"}).keys() == {("servce",)}
    assert problems({"operations": {"commit": {"operaton": "X"}}}).keys() == {
        ("operations", "commit", "operaton")
    }
    found = problems(
        {
            "operations": {
                "balance": {"operation": "Reserve"},
                "commit": {"params": {"amount": "OperationId"}},
                "get_changes": {"result": {"more": "Items"}},
            }
        }
    )
    assert set(found) == {
        ("operations", "balance", "operation"),
        ("operations", "reserve", "operation"),
        ("operations", "commit", "params"),
        ("operations", "get_changes", "result"),
    }
    assert "operation_id and amount" in found["operations", "commit", "params"]
    # Elements of different records may share a name: Changes.Items and Change.Id.
    Naming.model_validate({"operations": {"get_changes": {"result": {"id": "Items"}}}})


def test_errors_keep_their_place_inside_a_larger_config() -> None:
    class Options(BaseModel):
        naming: Naming

    with pytest.raises(ValidationError) as caught:
        Options.model_validate({"naming": {"operations": {"balance": {"params": {"x": "Y"}}}}})
    assert [e["loc"] for e in caught.value.errors()] == [
        ("naming", "operations", "balance", "params", "x")
    ]


@pytest.mark.parametrize("naming", [Naming(), cyrillic()], ids=["reference", "cyrillic"])
def test_mapping_round_trips(naming: Naming) -> None:
    for op in naming.resolve_all():
        logical = {name: f"value of {name}" for name in op.params}
        elements = op.params_to_elements(logical)
        assert list(elements) == list(op.params.values())
        assert op.params_from_elements(elements) == logical
    changes = naming.resolve("get_changes")
    result = {
        "items": [{"message_no": 7, "entity": "order", "id": "77", "action": "changed"}],
        "last_message_no": 7,
        "more": False,
    }
    wire = changes.result_to_elements(result)
    assert wire[changes.fields["items"]][0][changes.fields["entity"]] == "order"
    assert changes.result_from_elements(wire) == result


def test_mapping_is_strict_outbound_and_lenient_inbound() -> None:
    balance = cyrillic().resolve("balance")
    with pytest.raises(ValueError, match="unknown parameter phone"):
        balance.params_to_elements({"phone": "+79000000001"})
    with pytest.raises(ValueError, match="unknown Balance field colour"):
        balance.result_to_elements({"colour": "red"})
    wire = {"Баланс": Decimal("150.00"), "Доступно": Decimal(100), "Комментарий": "extra"}
    assert balance.result_from_elements(wire) == {
        "balance": Decimal("150.00"),
        "available": Decimal(100),
    }


# --- the WSDL -----------------------------------------------------------------------------


def test_committed_wsdl_is_rendered_from_the_contract() -> None:
    rendered = render_wsdl(Naming(), REFERENCE_LOCATION)
    assert REFERENCE_PATH.read_text(encoding="utf-8") == rendered, (
        "regenerate with: python -m connectors.onec.wsdl"
    )
    assert rendered.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    assert render_wsdl(cyrillic(), "http://x/ws") == render_wsdl(cyrillic(), "http://x/ws")


@pytest.fixture(params=["reference", "cyrillic"])
def loaded(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Naming, zeep.Client]:
    """A naming and a plain zeep client over its WSDL file (the committed one for reference)."""
    if request.param == "reference":
        return Naming(), zeep.Client(wsdl=str(REFERENCE_PATH))
    naming = cyrillic()
    path = tmp_path / "cyrillic.wsdl"
    path.write_text(render_wsdl(naming, "http://127.0.0.1:9/base/ws/bonus.1cws"), "utf-8")
    return naming, zeep.Client(wsdl=str(path))


def test_zeep_sees_both_ports_and_every_operation(loaded: tuple[Naming, zeep.Client]) -> None:
    naming, client = loaded
    svc, ns = naming.service, naming.namespace
    service = client.wsdl.services[svc]
    assert list(service.ports) == [f"{svc}Soap", f"{svc}Soap12"]
    soap11 = service.ports[f"{svc}Soap"].binding
    soap12 = service.ports[f"{svc}Soap12"].binding
    assert isinstance(soap11, Soap11Binding)
    assert isinstance(soap12, Soap12Binding)
    assert client.service._binding is soap11  # SOAP 1.1 is the default, as with 1C
    assert soap11.name.text == f"{{{ns}}}{svc}SoapBinding"
    for op in naming.resolve_all():
        for binding in (soap11, soap12):
            operation = binding.get(op.name)
            assert operation.soapaction == f"{ns}#{svc}:{op.name}"
            assert [name for name, _ in operation.input.body.type.elements] == list(
                op.params.values()
            )
            [(name, returned)] = operation.output.body.type.elements
            assert name == "return"
            assert [n for n, _ in returned.type.elements] == [
                op.fields[f] for f in op.contract.result.names
            ]


def test_zeep_request_carries_the_configured_element_names(
    loaded: tuple[Naming, zeep.Client],
) -> None:
    naming, client = loaded
    balance = naming.resolve("balance")
    arguments = balance.params_to_elements({"customer_id": "c1", "cart_total": Decimal("100")})
    if naming == Naming():
        assert arguments == {"CustomerId": "c1", "CartTotal": Decimal("100")}
        envelope = client.create_message(
            client.service, "GetBalance", CustomerId="c1", CartTotal=Decimal("100")
        )
    else:
        envelope = client.create_message(client.service, balance.name, **arguments)
    assert etree.QName(envelope).namespace == SOAP11_ENV
    [wrapper] = envelope.find(f"{{{SOAP11_ENV}}}Body")
    ns = naming.namespace
    assert wrapper.tag == f"{{{ns}}}{balance.name}"
    assert [(child.tag, child.text) for child in wrapper] == [
        (f"{{{ns}}}{balance.params['customer_id']}", "c1"),
        (f"{{{ns}}}{balance.params['cart_total']}", "100"),
    ]
    soap12 = client.bind(naming.service, f"{naming.service}Soap12")
    envelope = client.create_message(soap12, balance.name, **arguments)
    assert etree.QName(envelope).namespace == SOAP12_ENV


def test_differing_result_names_get_their_own_complex_type(tmp_path: Path) -> None:
    naming = Naming.model_validate({"operations": {"reserve": {"result": {"balance": "Остаток"}}}})
    path = tmp_path / "mixed.wsdl"
    path.write_text(render_wsdl(naming, "http://127.0.0.1:9/ws"), "utf-8")
    binding = zeep.Client(wsdl=str(path)).service._binding

    def returned(operation: str) -> tuple[str, list[str]]:
        [(_, element)] = binding.get(operation).output.body.type.elements
        return element.type.name, [name for name, _ in element.type.elements]

    assert returned("Reserve")[0] == "ReserveOperation"
    assert "Остаток" in returned("Reserve")[1]
    assert returned("Commit")[0] == "CommitOperation"
    assert "Balance" in returned("Commit")[1]
    assert returned("GetBalance")[0] == "Balance"


def test_reference_wsdl_declares_every_record_field() -> None:
    tree = etree.parse(str(REFERENCE_PATH))
    xs = {"xs": "http://www.w3.org/2001/XMLSchema"}
    assert sorted(tree.xpath("//xs:schema/xs:complexType/@name", namespaces=xs)) == sorted(RECORDS)
    for record in RECORDS.values():
        path = f"//xs:complexType[@name='{record.name}']/xs:sequence/xs:element"
        elements = tree.xpath(path, namespaces=xs)
        assert [e.get("name") for e in elements] == [f.element for f in record.fields]
        assert [e.get("minOccurs") == "0" for e in elements] == [f.optional for f in record.fields]
    changes = "//xs:complexType[@name='Changes']/xs:sequence/xs:element"
    [items, *_] = tree.xpath(changes, namespaces=xs)
    assert (items.get("type"), items.get("maxOccurs")) == ("tns:Change", "unbounded")
