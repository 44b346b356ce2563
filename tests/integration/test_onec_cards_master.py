"""1C as a master of several cards per customer (issue 17): the connector's CardsAtMaster
calls over real sockets to the emulator, over SOAP 1.1, SOAP 1.2 under Cyrillic names and
the HTTP service; the seed journey's merge, idempotency, refusals and not_supported."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bridge.ledger import CardsAtMaster, CardStatus, LedgerErrorCode, LedgerRefused
from bridge.settings import DeliverySettings, SystemSettings
from connectors.onec.connector import ONEC, OnecConnector
from connectors.onec.contract import CARDS
from connectors.onec.declared.reference import reference_document
from connectors.onec.emulator import OnecEmulator, naming_from_yaml
from connectors.onec.emulator.ledger import OnecLedger
from tests.support.daemon import free_port
from tests.support.onec import onec_options

MARIA = "+79000000005"  # the sandbox's seed journey: three cards, one of them ownerless
FIRST, SECOND, LOOSE = "2000000000053", "2000000000060", "2000000000077"
VARIANTS: dict[str, dict[str, Any]] = {
    "soap11": {"transport": "soap"},
    "soap12-cyrillic": {"transport": "soap", "soap_version": "1.2", "cyrillic": True},
    "http": {"transport": "http"},
}


@dataclass
class Onec:
    emulator: OnecEmulator
    connector: OnecConnector

    @property
    def ledger(self) -> OnecLedger:
        return self.emulator.ledger


async def start(
    transport: str,
    soap_version: str = "1.1",
    cyrillic: bool = False,
    unpublished: Collection[str] = (),
    **extra: Any,
) -> Onec:
    naming = naming_from_yaml() if cyrillic else None
    emulator = OnecEmulator(naming=naming, unpublished=unpublished)  # the sandbox, seeded
    await emulator.start()
    raw = onec_options(emulator, transport, naming, soap_version=soap_version, **extra)
    options = ONEC.options_model.model_validate(raw)
    system = SystemSettings(
        type="onec", delivery=DeliverySettings(timeout_seconds=2.0, concurrency=4)
    )
    connector = ONEC.create("onec", system, options)
    await connector.start()
    return Onec(emulator, connector)


@pytest.fixture(params=sorted(VARIANTS))
async def onec(request: pytest.FixtureRequest) -> AsyncIterator[Onec]:
    started = await start(**VARIANTS[request.param])
    try:
        yield started
    finally:
        await started.connector.close()
        await started.emulator.stop()


async def refused(code: LedgerErrorCode, call: Any) -> LedgerRefused:
    with pytest.raises(LedgerRefused) as caught:
        await call
    assert caught.value.code is code, caught.value
    return caught.value


def test_the_1c_master_is_a_cards_master() -> None:
    assert isinstance(ONEC.create("onec", SystemSettings(type="onec"), _options()), CardsAtMaster)


def _options() -> Any:
    raw = {"transport": "http", "url": "http://127.0.0.1:9/base/hs/loyalty", "username": "u"}
    return ONEC.options_model.model_validate(raw | {"password": "p"})


async def test_a_phone_s_cards_main_first_and_an_ownerless_card(onec: Onec) -> None:
    cards = await onec.connector.cards(MARIA)
    assert [(c.number, c.status, c.balance, c.main) for c in cards] == [
        (FIRST, CardStatus.ACTIVE, D("120.50"), True),
        (SECOND, CardStatus.ACTIVE, D("80.00"), False),
    ]
    maria = await onec.connector.find_customer(phone=MARIA)
    assert {(c.customer_id, c.phone) for c in cards} == {(maria.customer_id, MARIA)}
    loose = await onec.connector.card(LOOSE)
    assert (loose.balance, loose.customer_id, loose.phone, loose.main) == (
        D("0.00"),
        None,
        None,
        False,
    )
    assert await onec.connector.cards("+79000000099") == []  # no one: no cards, no error


async def test_the_seed_journey_merge_leaves_exactly_200_50_on_the_second_card(onec: Onec) -> None:
    master = onec.connector
    attached = await master.attach_card("attach-1", LOOSE, MARIA)
    assert (attached.phone, attached.main, attached.balance) == (MARIA, False, D("0.00"))
    for card in await master.cards(MARIA):
        if card.number == SECOND:
            continue
        blocked = await master.set_card_status(
            f"block-{card.number}", card.number, CardStatus.BLOCKED
        )
        assert blocked.status is CardStatus.BLOCKED
        if card.balance:
            moved = await master.move_points(
                f"move-{card.number}", card.number, SECOND, card.balance
            )
            assert (moved.kind, moved.status, moved.amount) == ("move", "moved", card.balance)
    main = await master.set_main_card("main-1", SECOND)
    assert (main.main, main.balance) == (True, D("200.50"))
    cards = await master.cards(MARIA)
    assert [(c.number, c.status, c.balance, c.main) for c in cards] == [
        (SECOND, CardStatus.ACTIVE, D("200.50"), True),
        (FIRST, CardStatus.BLOCKED, D("0.00"), False),
        (LOOSE, CardStatus.BLOCKED, D("0.00"), False),
    ]
    # The customer's balance is the main card's from now on.
    maria = await master.find_customer(phone=MARIA)
    assert maria.card == SECOND
    assert (await master.balance(maria.customer_id)).balance == D("200.50")


async def test_a_move_is_done_once_whatever_the_retries(onec: Onec) -> None:
    master = onec.connector
    first = await master.move_points("mv-1", SECOND, FIRST, D("30.25"))
    again = await master.move_points("mv-1", SECOND, FIRST, D("30.25"))
    assert first == again
    assert (first.balance, first.available) == (D("150.75"), D("150.75"))  # the receiving card's
    cards = {c.number: c.balance for c in await master.cards(MARIA)}
    assert cards == {FIRST: D("150.75"), SECOND: D("49.75")}
    await refused(
        LedgerErrorCode.OPERATION_CONFLICT, master.move_points("mv-1", SECOND, FIRST, D("30.26"))
    )
    assert onec.ledger.snapshot()["cards"][SECOND][0] == D("49.75")


async def test_changing_calls_are_idempotent_on_their_operation_id(onec: Onec) -> None:
    master = onec.connector
    assert await master.attach_card("at-1", LOOSE, MARIA) == await master.attach_card(
        "at-1", LOOSE, MARIA
    )
    await refused(
        LedgerErrorCode.OPERATION_CONFLICT, master.attach_card("at-1", LOOSE, "+79000000006")
    )
    blocked = await master.set_card_status("st-1", LOOSE, CardStatus.BLOCKED)
    assert await master.set_card_status("st-1", LOOSE, CardStatus.BLOCKED) == blocked
    await refused(
        LedgerErrorCode.OPERATION_CONFLICT, master.set_card_status("st-1", LOOSE, CardStatus.ACTIVE)
    )
    assert (await master.set_main_card("mn-1", SECOND)).main is True
    assert (await master.set_main_card("mn-1", SECOND)).main is True
    # One phone, one customer: registering it again (any operation id) finds the same one.
    new = await master.register_customer("reg-1", "+79000000042", "Пётр Орлов")
    assert await master.register_customer("reg-1", "+79000000042", "Пётр Орлов") == new
    assert (await master.register_customer("reg-2", "+79000000042")).customer_id == new.customer_id
    maria = await master.register_customer("reg-3", MARIA)
    assert maria.customer_id == (await master.find_customer(phone=MARIA)).customer_id
    await refused(LedgerErrorCode.OPERATION_CONFLICT, master.register_customer("reg-1", MARIA))
    cards = await master.cards("+79000000042")
    assert [(c.number, c.main, c.balance) for c in cards] == [(new.card, True, D("0.00"))]


async def test_an_ownerless_card_attached_to_a_new_phone_registers_its_customer(
    onec: Onec,
) -> None:
    card = await onec.connector.attach_card("at-new", LOOSE, "+79000000043")
    assert (card.phone, card.main) == ("+79000000043", True)
    found = await onec.connector.find_customer(phone="+79000000043")
    assert (found.customer_id, found.card) == (card.customer_id, LOOSE)


async def test_refusals_are_the_ledger_s_codes(onec: Onec) -> None:
    master = onec.connector
    await refused(LedgerErrorCode.UNKNOWN_CARD, master.card("0000000000000"))
    await refused(
        LedgerErrorCode.UNKNOWN_CARD, master.move_points("m0", "0000000000000", SECOND, D(1))
    )
    await refused(LedgerErrorCode.CARD_TAKEN, master.attach_card("t0", "2000000000015", MARIA))
    await refused(
        LedgerErrorCode.INSUFFICIENT_BALANCE, master.move_points("m1", SECOND, FIRST, D("80.01"))
    )
    await master.set_card_status("b0", LOOSE, CardStatus.BLOCKED)
    await refused(LedgerErrorCode.CARD_BLOCKED, master.move_points("m2", SECOND, LOOSE, D(1)))
    await refused(LedgerErrorCode.UNKNOWN_CUSTOMER, master.profile("nobody"))
    bad = await refused(
        LedgerErrorCode.INVALID_REQUEST,
        master.save_profile("p0", _maria_id(onec), {"email": "not an address"}),
    )
    assert "profile.email" in str(bad)
    # Only free points move: a hold on the main card keeps its points there.
    maria = _maria_id(onec)
    await master.reserve("hold-1", maria, D("100.00"), "order-1")
    await refused(
        LedgerErrorCode.INSUFFICIENT_BALANCE, master.move_points("m3", FIRST, SECOND, D("20.51"))
    )
    assert (await master.move_points("m4", FIRST, SECOND, D("20.50"))).balance == D("100.50")


async def test_a_blocked_or_accumulate_only_main_card_does_not_spend(onec: Onec) -> None:
    master, maria = onec.connector, _maria_id(onec)
    await master.set_card_status("s1", FIRST, CardStatus.ACCUMULATE_ONLY)
    await refused(LedgerErrorCode.CARD_BLOCKED, master.reserve("r1", maria, D(1), "o-1"))
    assert (await master.accrue("a1", maria, D("10.00"), "o-1")).balance == D("130.50")
    await master.set_card_status("s2", FIRST, CardStatus.BLOCKED)
    await refused(LedgerErrorCode.CARD_BLOCKED, master.accrue("a2", maria, D(1), "o-2"))
    await refused(LedgerErrorCode.CARD_BLOCKED, master.set_main_card("s3", FIRST))


async def test_the_questionnaire_is_read_saved_and_cleared(onec: Onec) -> None:
    master, maria = onec.connector, _maria_id(onec)
    assert await master.profile(maria) == {
        "last_name": "Соколова", "first_name": "Мария", "middle_name": None,
        "birth_date": None, "gender": None, "email": None,
    }  # fmt: skip
    given: dict[str, str | None] = {
        "middle_name": "Ивановна", "birth_date": "1990-05-17", "gender": "female",
    }  # fmt: skip
    saved = await master.save_profile("pf-1", maria, given | {"email": "m@example.com"})
    assert saved == {
        "last_name": "Соколова", "first_name": "Мария", "middle_name": "Ивановна",
        "birth_date": "1990-05-17", "gender": "female", "email": "m@example.com",
    }  # fmt: skip
    assert await master.save_profile("pf-1", maria, given | {"email": "m@example.com"}) == saved
    cleared = await master.save_profile("pf-2", maria, {"email": None, "middle_name": ""})
    assert (cleared["email"], cleared["middle_name"], cleared["gender"]) == (None, None, "female")
    assert await master.profile(maria) == cleared
    # A field the questionnaire does not have never reaches 1C.
    calls = onec.emulator.calls["save_profile"]
    bad = await refused(
        LedgerErrorCode.INVALID_REQUEST, master.save_profile("pf-3", maria, {"nick": "x"})
    )
    assert "profile.nick" in str(bad)
    assert onec.emulator.calls["save_profile"] == calls


def _maria_id(onec: Onec) -> str:
    return onec.ledger.find_customer(phone=MARIA).customer_id


# -- a service without the card calls ---------------------------------------------------------

CALLS: dict[str, tuple[Any, ...]] = {
    "cards": (MARIA,),
    "card": (FIRST,),
    "attach_card": ("o1", LOOSE, MARIA),
    "set_card_status": ("o2", FIRST, CardStatus.BLOCKED),
    "set_main_card": ("o3", SECOND),
    "move_points": ("o4", FIRST, SECOND, D(1)),
    "profile": ("c1",),
    "save_profile": ("o5", "c1", {"email": None}),
    "register_customer": ("o6", "+79000000044"),
}


async def each_refused_not_supported(onec: Onec) -> None:
    before = onec.ledger.snapshot()
    for method, args in CALLS.items():
        error = await refused(LedgerErrorCode.NOT_SUPPORTED, getattr(onec.connector, method)(*args))
        assert "1C service" in str(error), error
    assert onec.ledger.snapshot() == before
    assert not set(onec.emulator.calls) & CARDS  # nothing of it was served


@pytest.mark.parametrize("transport", ["soap", "http"])
async def test_a_declaration_without_the_card_calls_answers_not_supported(
    tmp_path: Path, transport: str
) -> None:
    document = reference_document(None, transport)
    document["capabilities"] = {
        name: rule for name, rule in document["capabilities"].items() if name not in CARDS
    }
    declared = tmp_path / "declaration.yaml"
    declared.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    onec = await start(transport, service=str(declared))
    try:
        for capability in CARDS:
            assert onec.connector.missing(capability) is not None
        await each_refused_not_supported(onec)
    finally:
        await onec.connector.close()
        await onec.emulator.stop()


@pytest.mark.parametrize("transport", ["soap", "http"])
async def test_a_1c_published_before_the_card_calls_answers_not_supported(transport: str) -> None:
    onec = await start(transport, unpublished=CARDS)
    try:
        # The WSDL tells before any call (a merge is refused at once, not at its first step);
        # an HTTP service only when called.
        told = {c for c in CARDS if onec.connector.missing(c) is not None}
        assert told == (CARDS if transport == "soap" else set())
        assert onec.connector.missing("reserve") is None
        await each_refused_not_supported(onec)
        assert (await onec.connector.find_customer(phone=MARIA)).card == FIRST  # the rest works
    finally:
        await onec.connector.close()
        await onec.emulator.stop()


def test_the_emulator_state_page_shows_cards_as_json() -> None:
    ledger = OnecLedger()
    ledger.seed_sandbox()
    cards = json.loads(json.dumps(ledger.snapshot()["cards"], default=str))
    assert cards[LOOSE] == ["0.00", "0.00", "active", None]


@pytest.mark.parametrize("transport", ["soap", "http"])
async def test_the_probe_tries_the_card_reads_and_passes_an_older_1c(transport: str) -> None:
    onec = await start(transport)
    older = await start(transport, unpublished=CARDS)
    try:
        rows = {line.split()[0]: line for line in (await onec.connector.probe()).splitlines()[1:]}
        assert "available" in rows["find_cards"]
        assert "refused the probe: unknown_card" in rows["get_card"]
        assert "refused the probe: unknown_customer" in rows["get_profile"]
        assert "not tried (it writes)" in rows["move_points"]
        text = await older.connector.probe()  # raises ProbeFailed on a failing row
        rows = {line.split()[0]: line for line in text.splitlines()[1:]}
        # SOAP: the WSDL tells for every call; HTTP: only a call tells, and writes are not tried.
        told = CARDS if transport == "soap" else {"find_cards", "get_card", "get_profile"}
        assert all("not published" in rows[name] for name in told), text
    finally:
        for started in (onec, older):
            await started.connector.close()
            await started.emulator.stop()


async def test_a_test_issues_cards_through_the_emulator_s_admin_route() -> None:
    onec = await start("http")
    admin = f"http://{onec.emulator.host}:{onec.emulator.port}/__emulator__/cards"
    try:
        async with aiohttp.ClientSession() as http:
            for body in (
                {"number": "2000000000091", "points": "15.00"},
                {"number": "2000000000107", "points": "5.25", "phone": MARIA},
                {"number": "2000000000114", "phone": "+79000000046"},
            ):
                async with http.post(admin, json=body) as answer:
                    assert answer.status == 200, await answer.text()
            async with http.post(admin, json={"number": FIRST}) as answer:
                assert answer.status == 422  # a number is unique
                assert (await answer.json())["error"]["code"] == "invalid_request"
        loose = await onec.connector.card("2000000000091")
        assert (loose.balance, loose.customer_id) == (D("15.00"), None)
        assert [c.number for c in await onec.connector.cards(MARIA)] == [
            FIRST, SECOND, "2000000000107",
        ]  # fmt: skip
        new = await onec.connector.cards("+79000000046")
        assert [(c.number, c.main) for c in new] == [("2000000000114", True)]
    finally:
        await onec.connector.close()
        await onec.emulator.stop()


EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "onec"


@pytest.mark.parametrize(
    ("folder", "where"),
    [
        ("cyrillic_soap", {"transport": "soap", "address": "/base/ws/bonus.1cws"}),
        ("http_json", {"transport": "http", "url": "/base/hs/bonus"}),
    ],
)
async def test_a_retailer_s_own_service_declares_no_cards_so_they_are_not_supported(
    folder: str, where: dict[str, str]
) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    options = ONEC.options_model.model_validate(
        {k: base + v if k in ("address", "url") else v for k, v in where.items()}
        | {"username": "bridge", "password": "sandbox"}
        | {"service": str(EXAMPLES / folder / "declaration.yaml")}
        | {"emulator": str(EXAMPLES / folder / "emulator.yaml")}
    )
    system = SystemSettings(type="onec", delivery=DeliverySettings(timeout_seconds=2.0))
    emulator = ONEC.create_emulator("onec", system, options)
    await emulator.start()
    connector = ONEC.create("onec", system, options)
    await connector.start()
    try:
        for method, args in CALLS.items():
            error = await refused(LedgerErrorCode.NOT_SUPPORTED, getattr(connector, method)(*args))
            assert "declares no" in str(error), error
    finally:
        await connector.close()
        await emulator.stop()
