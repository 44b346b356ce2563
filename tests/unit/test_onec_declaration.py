"""Declarations of 1C services (issue 14): what compiles, what is refused and where (file and
line, every problem at once), and how a refusal inside an ordinary answer is recognised."""

from __future__ import annotations

from pathlib import Path

import pytest

from bridge.mapping.transforms import TRANSFORMS, PhoneParams
from connectors.onec.declared import DeclarationError, declaration_for
from connectors.onec.declared.compiler import declaration_from, load_declaration
from connectors.onec.declared.reference import REFERENCE_FILE, reference_declaration, reference_yaml
from connectors.onec.declared.spec import REFUSAL_CODES
from connectors.onec.features import features
from connectors.onec.naming import Naming

ROOT = Path(__file__).parents[2]
SHIPPED = sorted(
    [
        *ROOT.glob("examples/onec/*/declaration.yaml"),
        *ROOT.glob("tests/fixtures/onec_services/*/declaration.yaml"),
    ]
)


def test_the_shipped_reference_file_is_the_reference_the_code_uses() -> None:
    assert REFERENCE_FILE.read_text(encoding="utf-8") == reference_yaml()
    from_file = load_declaration(REFERENCE_FILE)
    built = reference_declaration()
    assert set(from_file.capabilities) == set(built.capabilities)
    for name, declared in built.capabilities.items():
        assert from_file.capabilities[name].operation == declared.operation


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_every_shipped_declaration_compiles(path: Path) -> None:
    declared = load_declaration(path)
    assert declared.capabilities
    assert declared.calls("balance") is not None  # every one at least looks balances up


def test_the_reference_under_an_installations_names_is_renamed() -> None:
    naming = Naming.model_validate({"operations": {"balance": {"operation": "ПолучитьБаланс"}}})
    declared = declaration_for(None, naming, "soap", ROOT)
    balance = declared.calls("balance")
    assert balance is not None
    assert balance.operation == "ПолучитьБаланс"
    http = declaration_for(None, Naming(), "http", ROOT)
    assert (http.calls("balance").method, http.calls("balance").path) == ("POST", "/v1/balance")  # type: ignore[union-attr]


BROKEN = """\
version: 1
transport: http
timezone: Mars/Olympus
capabilities:
  balanse:
    method: GET
    path: /x
  balance:
    method: GET
    path: /cards/{card}/balance/{when}
    args:
      - {to: path.card, from: telephone}
      - {to: header.x, from: phone}
    answer:
      - {to: points, from: data.balance}
      - {to: balance, from: data.balance, transform: nonsense}
  reserve:
    operation: Hold
    refusal:
      when: [{path: ok}]
      codes: [{match: нет баллов, code: out_of_points}]
  commit: {done_by_1c: at_noon}
"""


def test_a_broken_declaration_names_every_problem_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "service.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with pytest.raises(DeclarationError) as caught:
        load_declaration(path)
    problems = caught.value.problems
    text = "\n".join(problems)

    def at(line: int, *fragments: str) -> None:
        found = [p for p in problems if p.startswith(f"{path}:{line}:")]
        assert found, f"nothing at line {line} in:\n{text}"
        for fragment in fragments:
            assert any(fragment in p for p in found), f"{fragment!r} not at line {line}:\n{text}"

    at(3, "timezone", "unknown time zone 'Mars/Olympus'")
    at(5, "unknown capability 'balanse'")
    at(10, "{when} is filled by no argument")
    at(12, "'telephone' is not in balance's request")
    at(13, "an HTTP argument goes to path.<name>, query.<name> or body")
    at(15, "'points' is not in balance's answer")
    at(16, "unknown transform 'nonsense'")
    at(18, "`operation` is for SOAP")
    at(20, "give one of `equals`, `in` or `exists`")
    at(21, "unknown refusal code 'out_of_points'")
    at(22, "'at_noon': one of at_sale")
    # Every line above: one run of `bridge check` shows them all, in file order.
    lines = [int(p.split(":")[1]) for p in problems]
    assert lines == sorted(lines)


def test_a_soap_declaration_needs_the_service_and_each_operation(tmp_path: Path) -> None:
    with pytest.raises(DeclarationError) as caught:
        declaration_from(
            {"version": 1, "transport": "soap", "capabilities": {"balance": {"args": []}}},
            "options.service",
        )
    text = "\n".join(caught.value.problems)
    assert "transport soap needs `soap: {service:" in text
    assert "capabilities.balance: a SOAP capability needs `operation`" in text


def test_the_transport_of_the_options_and_of_the_declaration_must_agree() -> None:
    path = ROOT / "examples/onec/http_json/declaration.yaml"
    with pytest.raises(DeclarationError, match="the service is http, but the options say"):
        declaration_for(str(path), Naming(), "soap", ROOT)


def _refusal_of(when: list[dict[str, object]], **more: object) -> object:
    declared = declaration_from(
        {
            "version": 1,
            "transport": "http",
            "refusal": {"when": when, **more},
            "capabilities": {
                "balance": {
                    "method": "GET",
                    "path": "/b",
                    "answer": [{"to": "balance", "from": "b"}],
                }
            },
        },
        "test",
    )
    assert declared.refusal is not None
    return declared.refusal


@pytest.mark.parametrize("flag", [False, "false", "Ложь", "ложь", 0, "0", "Нет"])
def test_a_false_flag_in_any_of_1cs_spellings_is_a_refusal(flag: object) -> None:
    refusal = _refusal_of([{"path": "ok", "equals": False}], message="error")
    found = refusal.of_answer({"ok": flag, "error": "Клиент не найден"}, 200, REFUSAL_CODES)  # type: ignore[attr-defined]
    assert found == ("invalid_request", "Клиент не найден")


@pytest.mark.parametrize("flag", [True, "true", "Истина", 1])
def test_a_true_flag_is_an_answer(flag: object) -> None:
    refusal = _refusal_of([{"path": "ok", "equals": False}])
    assert refusal.of_answer({"ok": flag}, 200, REFUSAL_CODES) is None  # type: ignore[attr-defined]


def test_codes_read_the_text_and_a_machine_code_wins_when_it_is_one_of_ours() -> None:
    refusal = _refusal_of(
        [{"status": [404, 409]}, {"path": "error.code", "in": ["E1", "unknown_customer"]}],
        message="error.text",
        code_at="error.code",
        codes=[{"match": "НЕДОСТАТОЧНО", "code": "insufficient_balance"}],
        code="operation_conflict",
    )
    of = refusal.of_answer  # type: ignore[attr-defined]
    text = {"error": {"text": "Недостаточно баллов"}}
    assert of(text, 409, REFUSAL_CODES) == ("insufficient_balance", "Недостаточно баллов")
    assert of({"error": {"text": "?"}}, 404, REFUSAL_CODES) == ("operation_conflict", "?")
    coded = {"error": {"code": "unknown_customer", "text": "нет"}}
    assert of(coded, 200, REFUSAL_CODES) == ("unknown_customer", "нет")
    assert of({"error": {"code": "E2"}}, 200, REFUSAL_CODES) is None  # no condition holds


def test_exists_false_makes_an_empty_list_a_refusal() -> None:
    refusal = _refusal_of([{"path": "clients[0]", "exists": False}], code="unknown_customer")
    assert refusal.of_answer({"clients": []}, 200, REFUSAL_CODES) == ("unknown_customer", "refused")  # type: ignore[attr-defined]
    assert refusal.of_answer({"clients": [{"card": "1"}]}, 200, REFUSAL_CODES) is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("form", "written"),
    [
        ("e164", "+79001234567"),
        ("digits", "79001234567"),
        ("trunk", "89001234567"),
        ("national", "9001234567"),
        ("international", "+7 900 123-45-67"),
        ("+7 (###) ###-##-##", "+7 (900) 123-45-67"),
    ],
)
def test_the_phone_transform_writes_the_format_a_service_wants(form: str, written: str) -> None:
    convert = TRANSFORMS["phone"].build(PhoneParams(format=form), None)  # type: ignore[arg-type]
    assert convert("8 (900) 123-45-67") == written


def test_check_says_which_features_a_declaration_enables() -> None:
    lines = features(load_declaration(ROOT / "examples/onec/cyrillic_soap/declaration.yaml"))
    assert "look-ups: on (keyed by phone, no find_customer)" in lines
    assert "reservations: on (commit done by 1C (at_sale); release done by 1C (on_expiry))" in lines
    assert "accruals: off (accrue not declared)" in lines
    lookup = features(
        load_declaration(ROOT / "tests/fixtures/onec_services/lookup_only/declaration.yaml")
    )
    assert lookup[1].startswith("reservations: off (reserve not declared")


def test_an_answer_must_give_what_the_bridge_cannot_do_without() -> None:
    with pytest.raises(DeclarationError) as caught:
        declaration_from(
            {
                "version": 1,
                "transport": "http",
                "capabilities": {
                    "find_customer": {
                        "method": "GET",
                        "path": "/c",
                        "answer": [{"to": "name", "from": "n"}],
                    },
                    "balance": {
                        "method": "GET",
                        "path": "/b",
                        "answer": [{"to": "level", "from": "l"}],
                    },
                    "commit": {"done_by_1c": "at_sale", "operation": "X"},
                },
            },
            "test",
        )
    text = "\n".join(caught.value.problems)
    assert "find_customer.answer: find_customer must give customer_id" in text
    assert "balance.answer: balance must give balance or available" in text
    assert "commit: done_by_1c: 1C does it itself; drop operation" in text
