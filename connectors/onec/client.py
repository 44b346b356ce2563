"""Wire clients for a 1C infobase: SOAP through zeep, or the HTTP service with JSON.

Both speak the service's own names: an operation and its elements (SOAP), a method, path,
query and JSON body (HTTP); what the bridge means by each is the declaration's business
(``declared/``). Both call asynchronously, on the caller's event
loop, through one kept-alive aiohttp pool (``wire.py``). The hot SOAP operations go out
and come back through envelopes compiled from the WSDL once (``envelopes.py``,
``replies.py``); zeep builds and reads the rest (its async path, ``AsyncServiceProxy``,
over ``zeep_transport.py``), and only the WSDL is fetched with ``requests``, once, by the
blocking ``SoapClient.load`` (callers run it in a worker thread). Wire failures become the
exceptions of ``wire.py``; which reaction each calls for is decided in ``errors.py``.
Nothing here imports the bridge's core.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import requests
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.proxy

from connectors.onec.envelopes import RequestTemplate, compile_request, soap_headers
from connectors.onec.http_client import HttpServiceClient
from connectors.onec.replies import ReplyReader, compile_reply
from connectors.onec.values import OnecBadValue
from connectors.onec.wire import (
    Answer,
    OnecCallError,
    OnecContractMismatch,
    OnecFault,
    OnecHTTPError,
    OnecUnreachable,
    Wire,
    environment_ca_bundle,
    environment_proxy,
    excerpt,
)
from connectors.onec.zeep_transport import (
    ANSWERING,
    Kinds,
    ZeepTransport,
    soap_answer,
    unreachable,
    wsdl_session,
    zeep_response,
)

SoapVersion = Literal["1.1", "1.2"]


@dataclass(frozen=True)
class Compiled:
    """A hot operation's envelope and answer, compiled from the WSDL (issue 16)."""

    request: RequestTemplate
    reply: ReplyReader
    headers: dict[str, str]


class SoapClient:
    """zeep's async path over the Wire: Basic auth, one timeout per call, pooled connections.

    Generic over the service: a call names the operation and gives its input elements by
    name; the answer comes back as its response's elements by name (``return`` and any
    out-parameters beside it, onec.md §1.5), whatever zeep would unwrap.

    The hot operations, whose input is flat and whose answer is flat records, skip zeep:
    their envelopes and answers are compiled from the WSDL at ``load`` (``envelopes.py``,
    ``replies.py``; ``compiled=False`` turns that off). zeep still builds what a template
    cannot and reads what a reader cannot (faults, answers off the schema), call by call,
    from the same bytes: the result and the exceptions are the same either way.
    """

    def __init__(
        self,
        *,
        wsdl: str,
        service: str,
        namespace: str | None,
        username: str,
        password: str,
        timeout: float,
        address: str | None = None,
        soap_version: SoapVersion = "1.1",
        pool_size: int = 4,
        compiled: bool = True,
    ) -> None:
        self._wsdl = wsdl
        self._name = service
        self._namespace = namespace
        self._address = address
        self._version = soap_version
        self._timeout = timeout
        self._session = wsdl_session(address or wsdl, username, password)
        self._wire = Wire(
            url=address or wsdl,
            username=username,
            password=password,
            timeout=timeout,
            pool_size=pool_size,
        )
        self._service: Any = None
        self._operations: dict[str, Any] = {}
        self._compile = compiled
        self._compiled: dict[str, Compiled] = {}
        self._zeep: Any = None  # the zeep client, binding and address compiled calls use
        self._bound: Any = None
        self._endpoint = ""

    @property
    def loaded(self) -> bool:
        """Whether the WSDL has been loaded and checked (``load``)."""
        return self._service is not None

    def load(self) -> str:
        """Load the WSDL once and find the service's binding.

        Blocking (zeep reads the WSDL synchronously): run it in a worker thread.
        """
        transport = ZeepTransport(self._wire, session=self._session, timeout=self._timeout)
        # strict=False: a hand-written 1C record may carry elements the WSDL does not list
        # (onec.md §1.5, zeep #779); xml_huge_tree off keeps lxml's limits on hostile input.
        settings = zeep.Settings(strict=False, xml_huge_tree=False)
        try:
            client = zeep.AsyncClient(self._wsdl, transport=transport, settings=settings)
        except requests.HTTPError as exc:  # zeep's WSDL download calls raise_for_status()
            status = exc.response.status_code if exc.response is not None else 0
            raise OnecHTTPError(status, "while loading the WSDL") from exc
        except requests.RequestException as exc:
            raise unreachable(exc) from exc
        except zeep.exceptions.TransportError as exc:
            raise OnecHTTPError(exc.status_code, excerpt(str(exc.content or ""))) from exc
        except (zeep.exceptions.Error, ValueError, OSError) as exc:
            raise OnecContractMismatch(f"cannot read the WSDL {self._wsdl}: {exc}") from exc
        binding = self._binding(client)
        try:
            # 1C bakes the host it was reached by into the WSDL, often an internal one
            # (onec.md §1.2, §1.5): the binding is pointed at the configured address. (zeep's
            # create_service makes a blocking proxy even on an AsyncClient.)
            address = self._address or _bound_address(client, binding)
            service = zeep.proxy.AsyncServiceProxy(client, binding, address=address)
        except (LookupError, ValueError, zeep.exceptions.Error) as exc:
            raise OnecContractMismatch(f"the WSDL's {self._name} has no address: {exc}") from exc
        self._operations = dict(binding._operations)
        self._zeep, self._bound, self._endpoint = client, binding, address
        if self._compile:
            # Decided once per operation: a complex one stays with zeep for good.
            found = {name: _compile(op, self._version) for name, op in self._operations.items()}
            self._compiled = {name: c for name, c in found.items() if c is not None}
        self._service = service
        return f"SOAP {self._version} service {self._name} at {self._address or self._wsdl}"

    def _binding(self, client: Any) -> Any:
        suffix = "Soap12Binding" if self._version == "1.2" else "SoapBinding"
        local = f"{self._name}{suffix}"
        for qname, binding in client.wsdl.bindings.items():
            namespace, _, name = str(qname).lstrip("{").rpartition("}")
            if name == local and self._namespace in (None, namespace):
                return binding
        found = ", ".join(str(q) for q in client.wsdl.bindings) or "none"
        where = f" in {self._namespace}" if self._namespace else ""
        raise OnecContractMismatch(
            f"the WSDL has no binding {local}{where} (check soap.service and namespace;"
            f" it has {found})"
        )

    def publishes(self, operation: str) -> bool | None:
        """Whether the WSDL has ``operation``; None until it is loaded."""
        if self._service is None:
            return None
        return operation in self._operations

    def compiled(self, operation: str) -> bool:
        """Whether ``operation``'s envelope and answer are compiled (else zeep's)."""
        return operation in self._compiled

    def inputs(self, operation: str) -> tuple[str, ...] | None:
        """The input elements of ``operation`` (its wrapper's children), if it has it."""
        found = self._operations.get(operation)
        return None if found is None else _children(found.input)

    async def call(
        self, operation: str, elements: Mapping[str, Any], kinds: Kinds
    ) -> dict[str, Any]:
        """Call ``operation`` with its input ``elements``; its response's elements by name.

        ``kinds``: element → (XML Schema type, field) of the answer, respelt from 1C's own
        spelling before zeep reads them (``values.canonical_xml``).
        """
        if self._service is None:
            raise OnecContractMismatch("the WSDL is not loaded yet (SoapClient.load)")
        bound = self._operations.get(operation)
        if bound is None:
            raise OnecContractMismatch(f"the WSDL lacks the operation {operation}")
        compiled = self._compiled.get(operation)
        envelope = None if compiled is None else compiled.request.render(elements)
        try:
            if compiled is None or envelope is None:
                ANSWERING.set((operation, kinds))
                return _unwrapped(bound, await getattr(self._service, operation)(**elements))
            sent = await self._wire.post(self._endpoint, envelope, compiled.headers)
            return self._read(operation, soap_answer(sent), kinds, compiled.reply)
        except (ArithmeticError, ValueError) as exc:
            # A value its WSDL type does not allow, in a spelling values.py does not know
            # either (zeep's Decimal() or date parser refused it).
            raise OnecBadValue("return", f"not of its WSDL type ({exc})", operation) from exc
        except zeep.exceptions.Fault as exc:
            raise OnecFault(str(exc.message or ""), status=500) from exc
        except zeep.exceptions.TransportError as exc:
            raise OnecHTTPError(exc.status_code, excerpt(str(exc.content or ""))) from exc
        except (zeep.exceptions.Error, TypeError) as exc:
            raise OnecContractMismatch(f"{operation}: {exc}") from exc

    def _read(
        self, operation: str, answer: Answer, kinds: Kinds, reader: ReplyReader
    ) -> dict[str, Any]:
        """The compiled reader's result, or zeep's of the same bytes where it gives none."""
        if answer.status == 200:
            found = reader.read(answer.body, kinds, operation)
            if found is not None:
                return found
        bound = self._operations[operation]
        response = zeep_response(answer, (operation, kinds))
        return _unwrapped(bound, self._bound.process_reply(self._zeep, bound, response))

    async def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
        await self._wire.close()


def _compile(operation: Any, version: str) -> Compiled | None:
    request, reply = compile_request(operation, version), compile_reply(operation, version)
    if request is None or reply is None:
        return None
    return Compiled(request, reply, soap_headers(operation, version))


def _unwrapped(bound: Any, answer: Any) -> dict[str, Any]:
    """zeep's answer as plain data, by its response's element names."""
    plain = zeep.helpers.serialize_object(answer, dict)
    children = _children(bound.output)
    # zeep hands a response of one element back unwrapped: wrap it again, so a
    # declaration reads `return` (and out-parameters beside it) the same way always.
    if len(children) == 1:
        return {children[0]: plain}
    return dict(plain) if isinstance(plain, dict) else {}


def _children(message: Any) -> tuple[str, ...]:
    """The element names inside a document/literal message's wrapper element."""
    body = getattr(message, "body", None)
    elements = getattr(getattr(body, "type", None), "elements", None) or []
    return tuple(name for name, _ in elements)


def _bound_address(client: Any, binding: Any) -> str:
    """The address the WSDL gives the binding's port (when none is configured)."""
    for service in client.wsdl.services.values():
        for port in service.ports.values():
            if port.binding is binding:
                return str(port.binding_options["address"])
    raise LookupError("no port uses it")


__all__ = [
    "HttpServiceClient",
    "Kinds",
    "OnecCallError",
    "OnecContractMismatch",
    "OnecFault",
    "OnecHTTPError",
    "OnecUnreachable",
    "SoapClient",
    "environment_ca_bundle",
    "environment_proxy",
]
