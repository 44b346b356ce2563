"""One capability called as declared: its arguments filled from the bridge's request, the
operation (SOAP) or route (HTTP) called, a refusal recognised by declaration, the answer
mapped back to the bridge's record. Failures are the wire clients' exceptions, classified
by ``errors.py`` as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from connectors.onec.client import (
    HttpServiceClient,
    Kinds,
    OnecCallError,
    OnecContractMismatch,
    OnecFault,
    OnecHTTPError,
    SoapClient,
)
from connectors.onec.contract import RECORDS, XsdType
from connectors.onec.declared.model import Declaration, Declared, Refusal
from connectors.onec.declared.spec import PLACEHOLDER, REFUSAL_CODES
from connectors.onec.declared.vocabulary import CAPABILITIES
from connectors.onec.wire import excerpt

# A logical answer field's XML Schema type, where it is not text (for 1C's spellings).
_TYPES: dict[str, str] = {
    field.name: field.type.value
    for record in RECORDS.values()
    for field in record.fields
    if isinstance(field.type, XsdType) and field.type is not XsdType.STRING
}


class OnecNotDeclared(OnecCallError):
    """The declaration has no operation for a capability the bridge needs."""

    def __init__(self, capability: str) -> None:
        super().__init__(f"the 1C service declares no {capability}")
        self.capability = capability


class DeclaredService:
    """A 1C service as its declaration describes it, over one wire client."""

    def __init__(self, declaration: Declaration, client: SoapClient | HttpServiceClient) -> None:
        self.declaration = declaration
        self.client = client
        self._kinds = {
            name: _kinds(declared, declaration.refusal_of(declared))
            for name, declared in declaration.capabilities.items()
        }

    def declares(self, capability: str) -> bool:
        """Whether an operation serves ``capability``."""
        return self.declaration.calls(capability) is not None

    def publishes(self, capability: str) -> bool | None:
        """Whether the service has the declared operation: False when not declared or not in
        the WSDL, None when only a call can tell (HTTP, or the WSDL not loaded yet)."""
        declared = self.declaration.calls(capability)
        if declared is None:
            return False
        if isinstance(self.client, SoapClient):
            return self.client.publishes(declared.operation or "")
        return None

    async def call(self, capability: str, request: Mapping[str, Any]) -> dict[str, Any]:
        """``capability`` for ``request`` (its fields by the bridge's names); the answer's
        record by the bridge's names."""
        declared = self.declaration.calls(capability)
        if declared is None:
            raise OnecNotDeclared(capability)
        given = {k: v for k, v in request.items() if v is not None}
        try:
            arguments = declared.arguments(given)
        except ValueError as exc:
            raise OnecFault(str(exc), code="invalid_request", status=422) from None
        if isinstance(self.client, SoapClient):
            document = await self._soap(self.client, declared, arguments)
            status = 200
        else:
            status, document = await self._http(self.client, declared, arguments)
        self._refused(declared, document, status)
        return declared.record(document)

    async def _soap(
        self, client: SoapClient, declared: Declared, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        assert declared.operation is not None  # a SOAP capability has one (compiler.py)
        if client.publishes(declared.operation) is False:
            purpose = CAPABILITIES[declared.name].feature
            raise OnecContractMismatch(
                f"the WSDL lacks {declared.operation} ({declared.name}): publish it for"
                f" {purpose}, or leave {declared.name} out of the declaration (CONTRACT.md)"
            )
        try:
            return await client.call(declared.operation, arguments, self._kinds[declared.name])
        except OnecFault as exc:
            # A fault's text may say which refusal it is (ВызватьИсключение, onec.md §1.5).
            refusal = self.declaration.refusal_of(declared)
            code = refusal.matching(exc.text) if refusal is not None else None
            if code is None:
                raise
            raise OnecFault(exc.text, code=code, status=exc.status) from exc

    async def _http(
        self, client: HttpServiceClient, declared: Declared, arguments: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        assert declared.method is not None  # an HTTP capability has both (compiler.py)
        assert declared.path is not None
        in_path = arguments.get("path") or {}

        def fill(match: Any) -> str:
            value = in_path.get(match.group(1))
            if value is None or value == "":
                raise OnecFault(
                    f"{declared.label}: no value for {{{match.group(1)}}}",
                    code="invalid_request",
                    status=422,
                )
            return quote(str(value), safe="")

        path = PLACEHOLDER.sub(fill, declared.path)
        status, parsed, answer = await client.request(
            declared.method, path, arguments.get("query") or {}, arguments.get("body")
        )
        # A JSON object is read from its root; anything else (a list, a bare number, plain
        # text such as 1C's "1 234,50") is `body` (DECLARATION.md, "HTTP").
        if isinstance(parsed, dict):
            document: dict[str, Any] = parsed
        elif parsed is not None:
            document = {"body": parsed}
        else:
            text = answer.text().strip()
            document = {"body": text} if text else {}
        if status >= 400 and not self._refusal_in(declared, document, status):
            raise OnecHTTPError(status, excerpt(answer.text()))
        return status, document

    def _refusal_in(self, declared: Declared, document: Any, status: int) -> bool:
        refusal = self.declaration.refusal_of(declared)
        return (
            refusal is not None and refusal.of_answer(document, status, REFUSAL_CODES) is not None
        )

    def _refused(self, declared: Declared, document: Any, status: int) -> None:
        refusal = self.declaration.refusal_of(declared)
        if refusal is None or document is None:
            return
        found = refusal.of_answer(document, status, REFUSAL_CODES)
        if found is not None:
            code, text = found
            raise OnecFault(f"{code}: {text}", code=code, status=status if status >= 400 else 422)


def _kinds(declared: Declared, refusal: Refusal | None) -> Kinds:
    """Answer element → (XML Schema type, field) of the typed fields its rules read directly,
    and of the flags its refusal compares (1C may spell them its own way)."""
    kinds: dict[str, tuple[str, str]] = {}
    rules = list(declared.answer)
    while rules:
        rule = rules.pop()
        if rule.each:
            rules.extend(rule.each)
            continue
        field = rule.target[0] if rule.target else None
        if not isinstance(field, str) or field not in _TYPES:
            continue
        if len(rule.sources) == 1 and rule.sources[0] and isinstance(rule.sources[0][-1], str):
            kinds.setdefault(rule.sources[0][-1], (_TYPES[field], field))
    for when in refusal.when if refusal is not None else ():
        if isinstance(when.equals, bool) and when.path and isinstance(when.path[-1], str):
            kinds.setdefault(when.path[-1], ("boolean", "refusal"))
    return MappingProxyType(kinds)  # read-only: the answer's scan is kept by it (values.py)
