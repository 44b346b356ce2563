"""Wire clients for a 1C infobase: SOAP through zeep, or the HTTP service with JSON.

Both speak the service's own names: an operation and its elements (SOAP), a method, path,
query and JSON body (HTTP); what the bridge means by each is the declaration's business
(``declared/``). Both call asynchronously, on the caller's event
loop, through one kept-alive aiohttp pool (``wire.py``); zeep builds and reads the SOAP
envelopes (its async path, ``AsyncServiceProxy``), and only the WSDL is fetched with
``requests``, once, by the blocking ``SoapClient.load`` (callers run it in a worker
thread). Wire failures become the exceptions below; which reaction each calls for is
decided in ``errors.py``. Nothing here imports the bridge's core.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any, Literal

import requests
import requests.structures
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.proxy
import zeep.wsdl.utils
from requests.adapters import HTTPAdapter

from connectors.onec.http_client import HttpServiceClient
from connectors.onec.values import OnecBadValue, canonical_xml
from connectors.onec.wire import (
    OnecCallError,
    OnecUnreachable,
    Wire,
    environment_ca_bundle,
    environment_proxy,
    excerpt,
)

SoapVersion = Literal["1.1", "1.2"]
# element → (XML Schema type, field) of an answer's non-text fields.
Kinds = Mapping[str, tuple[str, str]]
# The operation a SOAP call is answering and its kinds, from SoapClient.call to the transport
# that reads the answer (zeep calls post_xml in the same task).
_ANSWERING: ContextVar[tuple[str, Kinds] | None] = ContextVar("onec_answering", default=None)


class OnecFault(OnecCallError):
    """1C answered with a fault (SOAP) or an error document (HTTP service)."""

    def __init__(self, text: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.code = code  # the business code, when the service gave one
        self.status = status


class OnecHTTPError(OnecCallError):
    """An HTTP status that is not the service talking: 401, 404 of the publication, 502."""

    def __init__(self, status: int, excerpt: str) -> None:
        super().__init__(f"HTTP {status}: {excerpt}")
        self.status = status


class OnecContractMismatch(OnecCallError):
    """The service does not have what the configured names say (operation, element)."""


def _session(url: str, username: str, password: str) -> requests.Session:
    """The session the WSDL is fetched with (zeep loads it synchronously, once)."""
    session = requests.Session()
    # requests encodes Basic credentials as latin-1: a Cyrillic 1C user name cannot pass
    # (onec.md §1.4); the options validation asks for a Latin technical user.
    session.auth = (username, password)
    # trust_env=False: the proxy and CA variables are read here, once, like the Wire does.
    session.trust_env = False
    session.verify = environment_ca_bundle() or True
    proxy = environment_proxy(url)
    session.proxies = {"http": proxy, "https": proxy} if proxy else {}
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=1, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SoapClient:
    """zeep's async path over the Wire: Basic auth, one timeout per call, pooled connections.

    Generic over the service: a call names the operation and gives its input elements by
    name; the answer comes back as its response's elements by name (``return`` and any
    out-parameters beside it, onec.md §1.5), whatever zeep would unwrap.
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
    ) -> None:
        self._wsdl = wsdl
        self._name = service
        self._namespace = namespace
        self._address = address
        self._version = soap_version
        self._timeout = timeout
        self._session = _session(address or wsdl, username, password)
        self._wire = Wire(
            url=address or wsdl,
            username=username,
            password=password,
            timeout=timeout,
            pool_size=pool_size,
        )
        self._service: Any = None
        self._operations: dict[str, Any] = {}

    @property
    def loaded(self) -> bool:
        """Whether the WSDL has been loaded and checked (``load``)."""
        return self._service is not None

    def load(self) -> str:
        """Load the WSDL once and find the service's binding.

        Blocking (zeep reads the WSDL synchronously): run it in a worker thread.
        """
        transport = _SoapTransport(self._wire, session=self._session, timeout=self._timeout)
        # strict=False: a hand-written 1C record may carry elements the WSDL does not list
        # (onec.md §1.5, zeep #779); xml_huge_tree off keeps lxml's limits on hostile input.
        settings = zeep.Settings(strict=False, xml_huge_tree=False)
        try:
            client = zeep.AsyncClient(self._wsdl, transport=transport, settings=settings)
        except requests.HTTPError as exc:  # zeep's WSDL download calls raise_for_status()
            status = exc.response.status_code if exc.response is not None else 0
            raise OnecHTTPError(status, "while loading the WSDL") from exc
        except requests.RequestException as exc:
            raise _unreachable(exc) from exc
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
        _ANSWERING.set((operation, kinds))
        try:
            answer = await getattr(self._service, operation)(**elements)
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
        plain = zeep.helpers.serialize_object(answer, dict)
        children = _children(bound.output)
        # zeep hands a response of one element back unwrapped: wrap it again, so a
        # declaration reads `return` (and out-parameters beside it) the same way always.
        if len(children) == 1:
            return {children[0]: plain}
        return dict(plain) if isinstance(plain, dict) else {}

    async def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
        await self._wire.close()


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


class _SoapTransport(zeep.Transport):
    """zeep's transport: the WSDL through ``requests`` (inherited, blocking, once), the calls
    through the Wire (``post_xml`` is awaited by zeep's async path).

    It reports HTTP errors by their status before zeep reads the body: 1C answers a
    business error with HTTP 500 and a SOAP fault, which zeep must parse; but a 401 or a
    proxy's 502 carries a web page, and zeep reads a well-formed one as "Unknown fault
    occured", losing the status that says what to do.

    A Cyrillic SOAPAction (``…#БонуснаяПрограмма:ПолучитьБаланс``) goes out as UTF-8:
    aiohttp writes header values so, where http.client would fail on anything beyond
    latin-1 (python-zeep#1172, seen against a real 1C service).
    """

    def __init__(self, wire: Wire, *, session: requests.Session, timeout: float) -> None:
        super().__init__(session=session, timeout=timeout, operation_timeout=timeout)
        self._wire = wire

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, Any]) -> Any:
        """Post; raise OnecHTTPError unless the answer is a SOAP message; else zeep's input."""
        body = zeep.wsdl.utils.etree_to_string(envelope)
        sent = {str(k): v.decode() if isinstance(v, bytes) else str(v) for k, v in headers.items()}
        answer = await self._wire.post(address, body, sent)
        kind = answer.headers.get("Content-Type", "")
        if answer.status != 200 and not ("xml" in kind and answer.status == 500):
            raise OnecHTTPError(answer.status, excerpt(answer.text()))
        answering = _ANSWERING.get()
        body = answer.body
        if answering is not None and answering[1] and answer.status == 200:
            # 1C's own spellings of numbers, flags and dates, canonical before zeep reads them.
            body = canonical_xml(body, answering[1], answering[0])
        response = requests.Response()  # what zeep's process_reply reads
        response._content = body
        response.status_code = answer.status
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response.encoding = answer.charset
        return response


def _unreachable(exc: requests.RequestException) -> OnecUnreachable:
    timed_out = isinstance(exc, requests.Timeout)
    return OnecUnreachable(f"{type(exc).__name__}: {exc}", timed_out=timed_out)


__all__ = [
    "HttpServiceClient",
    "OnecCallError",
    "OnecContractMismatch",
    "OnecFault",
    "OnecHTTPError",
    "OnecUnreachable",
    "SoapClient",
    "environment_ca_bundle",
    "environment_proxy",
]
