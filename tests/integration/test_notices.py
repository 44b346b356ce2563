"""A programme notice's phones left mid-send (issue 17): the sandbox gateway can tell
whether the text left (sent → not again, not sent → sent now); an HTTP provider cannot, so
the phone is ``unknown`` and not resent. A provider that refuses a text fails that phone
with the reason; one that is down leaves it pending for the next run. A ``{link}`` carries
a proof of each phone, kept nowhere."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.customers.notices import Notice, Pacer, notice_id, read_phones
from bridge.customers.outbox import sent_check
from bridge.customers.proofs import ProofBook
from bridge.settings import StoreSettings
from bridge.settings_sms import SmsSettings
from bridge.sms.factory import build_gateway
from bridge.store import Store, open_store
from bridge.store.customer_records import RecordKind, customer_records_of
from tests.support.sms import sms_provider

TEXT = "Баллы сгорят 1 июня"
A, B, C = "+79001110001", "+79001110002", "+79001110003"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(StoreSettings(url=f"sqlite:///{tmp_path / 'bridge.db'}"))
    await opened.open()
    yield opened
    await opened.close()


async def no_wait(_seconds: float) -> None:
    return None


async def run(notice: Notice, phones: list[str]) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    await notice.run(phones, lambda outcome: outcomes.update([outcome]))
    return outcomes


async def left_sending(store: Store, template: str, *phones: str) -> None:
    """Records of ``phones`` as a run killed between "sending" and the gateway's answer
    leaves them."""
    records = customer_records_of(store)
    for phone in phones:
        key = f"{notice_id(template)}:{phone}"
        record, _ = await records.add_record(RecordKind.NOTICE, key, phone, "pending", {})
        await records.update_record(record, "sending", {})


async def test_the_sandbox_tells_what_left_and_nothing_is_sent_twice(store: Store) -> None:
    gateway = build_gateway(SmsSettings(), store)
    await left_sending(store, TEXT, A, B)
    await gateway.send(A, TEXT, f"{notice_id(TEXT)}:{A}")  # A's text had left; B's had not
    notice = Notice(TEXT, customer_records_of(store), gateway, sent_check(gateway, store))
    assert await run(notice, [A, B, C]) == Counter({"already_sent": 1, "sent": 2})
    sent = Counter(m.phone for m in await store.list_sandbox_messages(None, 100))
    assert sent == Counter({A: 1, B: 1, C: 1})
    records = customer_records_of(store)
    assert await records.count_records(RecordKind.NOTICE) == {"sent": 3}


async def test_an_http_provider_cannot_tell_so_the_phone_is_unknown(store: Store) -> None:
    async with sms_provider() as provider:
        gateway = build_gateway(SmsSettings.model_validate(provider.gateway()), store)
        await left_sending(store, TEXT, A)
        notice = Notice(TEXT, customer_records_of(store), gateway, sent_check(gateway, store))
        assert await run(notice, [A, B]) == Counter({"unknown": 1, "sent": 1})
        assert provider.texts == [TEXT]  # B's only: A's fate is unknown, never sent twice
        assert await run(notice, [A, B]) == Counter({"unknown": 1, "already_sent": 1})
        await gateway.close()


@pytest.fixture
async def refusing() -> AsyncIterator[dict[str, Any]]:
    """A provider answering 400 to one phone and 503 to another, 200 to the rest."""
    seen: list[str] = []

    async def send(request: web.Request) -> web.Response:
        to = (await request.json())["to"]
        seen.append(to)
        if to == A:
            return web.json_response({"error": "invalid number"}, status=400)
        if to == B:
            return web.json_response({"error": "maintenance"}, status=503)
        return web.json_response({"status": "queued"})

    app = web.Application()
    app.router.add_post("/send", send)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/send"
    yield {"url": url, "seen": seen}
    await runner.cleanup()


async def test_refused_fails_with_the_reason_and_down_is_left_for_the_next_run(
    store: Store, refusing: dict[str, Any]
) -> None:
    body = {"to": "{phone}", "text": "{text}"}
    settings = SmsSettings.model_validate(
        {"gateway": {"type": "http", "url": refusing["url"], "json_body": body}}
    )
    gateway = build_gateway(settings, store)
    notice = Notice(TEXT, customer_records_of(store), gateway, None, sleep=no_wait)
    assert await run(notice, [A, B, C]) == Counter({"failed": 1, "left": 1, "sent": 1})
    assert Counter(refusing["seen"]) == Counter({A: 1, B: 3, C: 1})  # B tried 3 times
    records = customer_records_of(store)
    failed = await records.get_record(RecordKind.NOTICE, f"{notice_id(TEXT)}:{A}")
    assert failed is not None and failed.status == "failed" and failed.body["reason"]
    left = await records.get_record(RecordKind.NOTICE, f"{notice_id(TEXT)}:{B}")
    assert left is not None and left.status == "pending"
    await gateway.close()


async def test_a_link_carries_a_proof_of_each_phone_stored_nowhere(store: Store) -> None:
    proofs = ProofBook(b"k" * 32, 900, lambda: 1_800_000_000.0)
    template = "Заполните анкету: {link}"
    gateway = build_gateway(SmsSettings(), store)
    link = "https://shop.example/p?proof={proof}"

    def link_of(phone: str) -> str:
        return link.format(proof=proofs.issue(phone)[0])

    notice = Notice(template, customer_records_of(store), gateway, None, link_of, Pacer(1000))
    assert await run(notice, [A, B]) == Counter({"sent": 2})
    for message in await store.list_sandbox_messages(None, 10):
        proof = message.text.split("proof=", 1)[1]
        assert proofs.check(proof).phone == message.phone
        record = await customer_records_of(store).get_record(
            RecordKind.NOTICE, f"{notice_id(template)}:{message.phone}"
        )
        assert record is not None and proof not in str(record.body)


def test_a_phone_file_is_read_with_line_numbers() -> None:
    found = read_phones(["# list", "", "8 900 111-00-01", "abc", "+7 900 111 00 01", "9001110002"])
    assert found.phones == [A, B]
    assert [line for line, _why in found.bad] == [4]
    assert found.repeated == 1
