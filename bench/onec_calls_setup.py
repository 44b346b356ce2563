"""One transport's variants of the balance call for bench/onec_calls.py, set up and checked
to read the same balance, and the wire canned so they can also be timed without the
network."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import zeep.helpers
from onec_calls_before14 import Before14, before14_balance, jsonable
from onec_calls_clients import CART, PHONE, check_raw, raw_client
from onec_calls_measure import Call, Variant  # bench/ is on sys.path when run as a script

from connectors.onec.client import SoapClient
from connectors.onec.connector import OnecConnector
from connectors.onec.http_client import dump_json
from connectors.onec.naming import Naming
from connectors.onec.wire import Answer
from connectors.onec.zeep_transport import ANSWERING as _ANSWERING


@dataclass
class Setup:
    """One transport's connector, its before-issue-14 twin and a raw client, all warm; over
    SOAP also the same connector on zeep's path (its envelopes not compiled, issue 16)."""

    transport: str
    connector: OnecConnector
    old: Before14
    cid: str
    raw: Call
    raw_canned: Callable[[bytes], Awaitable[object]]
    zeep: OnecConnector | None = None  # SOAP: compiled=False
    zeep_answer: Any = None  # SOAP: zeep's answer object, what the old client renamed
    document: Any = None  # what the declared answer rules map: the wrapped answer, or JSON

    @property
    def params(self) -> dict[str, Any]:
        """The balance request as the master gives it (by the bridge's names)."""
        return {"customer_id": self.cid, "cart_total": CART}

    def variants(self) -> list[Variant]:
        """The balance call five ways: raw, the wire layer and the connector, each before
        issue 14 and today; over SOAP seven: the wire layer and the connector also on zeep's
        path (before issue 16), today's on the compiled envelopes."""
        old_balance = before14_balance(self.connector, self.old)
        service, cid, params = self.connector.service, self.cid, self.params
        raw_label = "raw zeep async (aiohttp)" if self.transport == "soap" else "raw aiohttp"
        declared = [
            Variant("declared", "DeclaredService.call()", lambda: service.call("balance", params))
        ]
        connector = [
            Variant("connector", "connector.balance()", lambda: self.connector.balance(cid, CART))
        ]
        if self.zeep is not None:
            on_zeep, zeep_service = self.zeep, self.zeep.service
            declared.insert(
                0,
                Variant(
                    "declared_zeep",
                    "DeclaredService.call() on zeep",
                    lambda: zeep_service.call("balance", params),
                ),
            )
            connector.insert(
                0,
                Variant(
                    "connector_zeep",
                    "connector.balance() on zeep",
                    lambda: on_zeep.balance(cid, CART),
                ),
            )
        return [
            Variant("raw", raw_label, self.raw),
            Variant(
                "baseline",
                "before 14: wire client + Naming",
                lambda: self.old.call("balance", params),
            ),
            *declared,
            Variant("old_connector", "before 14: old balance()", lambda: old_balance(cid, CART)),
            *connector,
        ]

    def pure_steps(self) -> list[Variant]:
        """The renaming alone, before issue 14 and as declared, both ways, no I/O."""
        declared = self.connector.declaration.calls("balance")
        assert declared is not None
        naming, params = self.old.naming, self.params
        answer, document = self.zeep_answer, self.document

        async def old_rename() -> object:
            if answer is None:  # HTTP: the body by the bridge's names, the JSON returned as is
                json.dumps({k: jsonable(v) for k, v in params.items() if v is not None})
                return document
            named = naming.resolve("balance")
            named.params_to_elements({k: v for k, v in params.items() if v is not None})
            plain = zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
            return named.result_from_elements(plain)

        async def declared_rules() -> object:
            arguments = declared.arguments({k: v for k, v in params.items() if v is not None})
            if answer is None:  # what HttpServiceClient.request does to the body
                dump_json(arguments["body"])
            else:  # what SoapClient.call does to zeep's answer
                zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
            return declared.record(document)

        if answer is None:
            what, steps = "_jsonable, json.dumps", "arguments, dump_json, record"
        else:
            what = "resolve, params_to_elements, serialize_object, result_from_elements"
            steps = "arguments, serialize_object, record"
        return [
            Variant("old_rename", f"  old renaming alone ({what})", old_rename),
            Variant("declared_rules", f"  declared rules alone ({steps})", declared_rules),
        ]


async def set_up(
    connector: OnecConnector,
    transport: str,
    urls: dict[str, str],
    http: aiohttp.ClientSession,
    zeep_twin: OnecConnector | None = None,
) -> Setup:
    """Start the connectors (WSDL loaded), find the customer, check every variant's answer."""
    await connector.start()
    if zeep_twin is not None:
        await zeep_twin.start()
    cid = (await connector.find_customer(phone=PHONE)).customer_id
    raw, canned = raw_client(transport, urls, cid, http)
    check_raw(transport, await raw())
    s = Setup(transport, connector, Before14(connector._client, Naming()), cid, raw, canned)
    s.zeep = zeep_twin
    declared = connector.declaration.calls("balance")
    assert declared is not None
    client, kinds = connector._client, connector.service._kinds["balance"]
    arguments = declared.arguments(s.params)
    if isinstance(client, SoapClient):
        named = s.old.naming.resolve("balance")
        _ANSWERING.set((named.name, kinds))
        s.zeep_answer = await getattr(client._service, named.name)(
            **named.params_to_elements(s.params)
        )
        s.document = await client.call(named.name, arguments, kinds)
        if s.old.answer_kinds(named) != kinds:
            print(f"  note: answer kinds differ: before {s.old.answer_kinds(named)}, now {kinds}")
    else:
        assert declared.method is not None
        assert declared.path is not None
        _, s.document, _ = await client.request(
            declared.method, declared.path, {}, arguments["body"]
        )
    # Like with like: both layers make the same record of the same answer, both connectors
    # the same balance (but for as_of, which the emulator may stamp with its clock).
    before, now = (
        await s.old.call("balance", s.params),
        await connector.service.call("balance", s.params),
    )
    if {k: v for k, v in before.items() if k != "as_of"} != {
        k: v for k, v in now.items() if k != "as_of"
    }:
        raise SystemExit(f"NOT THE SAME record: before 14 {before!r}, declared {now!r}")
    old_balance = await before14_balance(connector, s.old)(cid, CART)
    new_balance = await connector.balance(cid, CART)
    if replace(old_balance, as_of=new_balance.as_of) != new_balance:
        raise SystemExit(f"NOT THE SAME balance: before 14 {old_balance}, now {new_balance}")
    if zeep_twin is not None:
        client = connector._client
        if not isinstance(client, SoapClient) or not client.compiled("GetBalance"):
            raise SystemExit("the connector's GetBalance is not compiled")
        on_zeep = await zeep_twin.balance(cid, CART)
        if replace(on_zeep, as_of=new_balance.as_of) != new_balance:
            raise SystemExit(f"NOT THE SAME balance: zeep {on_zeep}, compiled {new_balance}")
    return s


@asynccontextmanager
async def canned_wire(s: Setup) -> AsyncIterator[bytes]:
    """The connectors' ``Wire.send`` answering the ``Answer`` each recorded from one real
    balance call, without any I/O (both layers of a connector share its wire); yields the
    answer's body."""
    async with AsyncExitStack() as stack:
        body = await stack.enter_async_context(_canned(s.connector, s.params))
        if s.zeep is not None:
            await stack.enter_async_context(_canned(s.zeep, s.params))
        yield body


@asynccontextmanager
async def _canned(connector: OnecConnector, params: dict[str, Any]) -> AsyncIterator[bytes]:
    wire = connector._client._wire
    real_send, recorded = wire.send, []

    async def recording(
        method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        recorded.append(await real_send(method, url, body, headers))
        return recorded[-1]

    async def replaying(
        method: str, url: str, body: bytes | None, headers: Mapping[str, str]
    ) -> Answer:
        return recorded[-1]

    wire.send = recording  # type: ignore[method-assign]
    try:
        await connector.service.call("balance", params)
        wire.send = replaying  # type: ignore[method-assign]
        yield recorded[-1].body
    finally:
        del wire.send
