"""bench/onec_calls.py's "before issue 14" variants: what the 1C connector did per balance
call at commit 80c9529, rebuilt over today's wire clients, so the same run compares the
declaration layer with the code it replaced."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import zeep.exceptions
import zeep.helpers

from bridge.ledger import LedgerBalance
from connectors.onec import answers
from connectors.onec.answers import read_answer
from connectors.onec.client import (
    HttpServiceClient,
    OnecContractMismatch,
    OnecFault,
    OnecHTTPError,
    SoapClient,
)
from connectors.onec.connector import OnecConnector
from connectors.onec.contract import OPERATIONS, Record, XsdType
from connectors.onec.naming import NamedOperation, Naming
from connectors.onec.zeep_transport import ANSWERING as _ANSWERING


class Before14:
    """What ``SoapClient.call`` / ``HttpServiceClient.call`` did per call before issue 14
    (``git show 80c9529:connectors/onec/client.py``), over the connector's own wire client:
    the same zeep service, ``_SoapTransport`` and ``Wire``, the reference names through
    ``Naming().resolve(logical)``, the old renaming both ways."""

    def __init__(self, client: SoapClient | HttpServiceClient, naming: Naming) -> None:
        self.client = client
        self.naming = naming
        self._kinds: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}

    async def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """The old ``client.call(logical, params)``: a record by logical names."""
        if isinstance(self.client, SoapClient):
            return await self._soap(self.client, logical, params)
        return await self._http(self.client, logical, params)

    async def _soap(
        self, client: SoapClient, logical: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        service = client._service
        if service is None:
            raise OnecContractMismatch("the WSDL is not loaded yet (SoapClient.load)")
        named = self.naming.resolve(logical)
        values = named.params_to_elements({k: v for k, v in params.items() if v is not None})
        operation = getattr(service, named.name, None)
        if operation is None:
            raise OnecContractMismatch(f"the WSDL lacks {named.name} ({logical})")
        # The old transport read the NamedOperation and looked its kinds up in a cache; today's
        # takes (operation, kinds): the same lookup, done here.
        _ANSWERING.set((named.name, self.answer_kinds(named)))
        try:
            answer = await operation(**values)
        except zeep.exceptions.Fault as exc:
            raise OnecFault(str(exc.message or ""), status=500) from exc
        except zeep.exceptions.TransportError as exc:
            raise OnecHTTPError(exc.status_code, str(exc.content or "")[:200]) from exc
        plain = zeep.helpers.serialize_object(answer, dict)  # type: ignore[no-untyped-call]
        if not isinstance(plain, dict):
            raise OnecContractMismatch(f"{named.name}: expected a record, got {plain!r:.80}")
        record = plain.get("return", plain) if "return" in plain else plain
        return named.result_from_elements(record)

    def answer_kinds(self, named: NamedOperation) -> dict[str, tuple[str, str]]:
        """The old ``client.answer_kinds``: element → (XML Schema type, field), cached."""
        key = (named.name, named.soap_action)
        if key not in self._kinds:
            kinds: dict[str, tuple[str, str]] = {}
            clashes: set[str] = set()
            records: list[Record] = list(named.contract.result.walk())
            for record in records:
                for f in record.fields:
                    if not isinstance(f.type, XsdType) or f.type is XsdType.STRING:
                        continue
                    element, kind = named.fields[f.name], (f.type.value, f.name)
                    if kinds.setdefault(element, kind) != kind:
                        clashes.add(element)
            self._kinds[key] = {e: k for e, k in kinds.items() if e not in clashes}
        return self._kinds[key]

    async def _http(
        self, client: HttpServiceClient, logical: str, params: Mapping[str, Any]
    ) -> dict[str, Any]:
        path = OPERATIONS[logical].http_path
        body = {k: jsonable(v) for k, v in params.items() if v is not None}
        answer = await client._wire.post(
            f"{client._root}/{path.lstrip('/')}",
            json.dumps(body, allow_nan=False).encode(),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            doc = json.loads(answer.body, parse_float=Decimal)
        except ValueError:
            doc = None
        if answer.status < 400 and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            text = f"{error['code']}: {error.get('message', '')}"
            raise OnecFault(text, code=error["code"], status=answer.status)
        raise OnecHTTPError(answer.status, answer.text()[:200])


def jsonable(value: Any) -> Any:
    """A value as the old HTTP client put it in JSON: datetimes in UTC, Decimals as text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value) if isinstance(value, Decimal) else value


def before14_balance(connector: OnecConnector, old: Before14) -> Callable[..., Awaitable[Any]]:
    """The old ``connector.balance()`` (80c9529: ``OnecMaster.balance`` over
    ``OnecConnector._call``): ``_bounded`` around the old client call, then the conversion."""

    async def balance(customer_id: str, cart_total: Decimal | None = None) -> LedgerBalance:
        params = {"customer_id": customer_id, "cart_total": cart_total}
        if not connector._client.loaded:
            raise OnecContractMismatch("not loaded")
        r = await connector._bounded(old.call("balance", params), ledger=True)
        received = datetime.now(UTC)
        return read_answer("balance", lambda record: answers.balance(record, received), r)

    return balance
