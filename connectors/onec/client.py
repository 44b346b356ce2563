"""Wire clients for a 1C infobase: SOAP through zeep, or the HTTP service with JSON.

Both take and return the contract's *logical* names (``contract.py``) and translate to the
installation's names through a ``Naming``. Both call asynchronously, on the caller's event
loop, through one kept-alive aiohttp pool (``wire.py``); zeep builds and reads the SOAP
envelopes (its async path, ``AsyncServiceProxy``), and only the WSDL is fetched with
``requests``, once, by the blocking ``SoapClient.load`` (callers run it in a worker
thread). Wire failures become the exceptions below; which reaction each calls for is
decided in ``errors.py``. Nothing here imports the bridge's core.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import requests
import requests.structures
import zeep
import zeep.exceptions
import zeep.helpers
import zeep.proxy
import zeep.wsdl.utils
from requests.adapters import HTTPAdapter

from connectors.onec.contract import OPERATIONS, Record, XsdType
from connectors.onec.naming import NamedOperation, Naming
from connectors.onec.values import OnecBadValue, canonical_xml
from connectors.onec.wire import (
    OnecCallError,
    OnecUnreachable,
    Wire,
    environment_ca_bundle,
    environment_proxy,
)

SoapVersion = Literal["1.1", "1.2"]
# The operation a SOAP call is answering, from SoapClient.call to the transport that reads
# the answer (zeep calls post_xml in the same task).
_ANSWERING: ContextVar[NamedOperation | None] = ContextVar("onec_answering", default=None)


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


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:200]


class SoapClient:
    """zeep's async path over the Wire: Basic auth, one timeout per call, pooled connections."""

    def __init__(
        self,
        *,
        wsdl: str,
        naming: Naming,
        username: str,
        password: str,
        timeout: float,
        address: str | None = None,
        soap_version: SoapVersion = "1.1",
        pool_size: int = 4,
    ) -> None:
        self._wsdl = wsdl
        self._naming = naming
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

    @property
    def loaded(self) -> bool:
        """Whether the WSDL has been loaded and checked (``load``)."""
        return self._service is not None

    def load(self) -> str:
        """Load and check the WSDL once; every named operation must be in the binding.

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
            raise OnecHTTPError(exc.status_code, _excerpt(str(exc.content or ""))) from exc
        except (zeep.exceptions.Error, ValueError, OSError) as exc:
            raise OnecContractMismatch(f"cannot read the WSDL {self._wsdl}: {exc}") from exc
        suffix = "Soap12Binding" if self._version == "1.2" else "SoapBinding"
        binding = f"{{{self._naming.namespace}}}{self._naming.service}{suffix}"
        try:
            if self._address:
                # 1C bakes the host it was reached by into the WSDL, often an internal one
                # (onec.md §1.2, §1.5): the binding is pointed elsewhere. (zeep's
                # create_service makes a blocking proxy even on an AsyncClient.)
                service = zeep.proxy.AsyncServiceProxy(
                    client, client.wsdl.bindings[binding], address=self._address
                )
            else:
                port = f"{self._naming.service}Soap12" if self._version == "1.2" else None
                service = client.bind(self._naming.service, port)
        except (LookupError, ValueError, zeep.exceptions.Error) as exc:
            raise OnecContractMismatch(
                f"the WSDL has no binding {binding} (check service and namespace): {exc}"
            ) from exc
        missing = [
            f"{n.contract.name} → {n.name}"
            for n in self._naming.resolve_all()
            if not hasattr(service, n.name) and not n.contract.optional
        ]
        if missing:
            raise OnecContractMismatch(f"the WSDL lacks operations: {', '.join(missing)}")
        self._service = service
        return f"SOAP {self._version} service {self._naming.service}"

    def publishes(self, logical: str) -> bool | None:
        """Whether the WSDL has ``logical`` (an optional operation may be missing); None
        until it is loaded."""
        if self._service is None:
            return None
        return hasattr(self._service, self._naming.resolve(logical).name)

    async def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``logical`` through zeep and rename the result back to logical names."""
        if self._service is None:
            raise OnecContractMismatch("the WSDL is not loaded yet (SoapClient.load)")
        named = self._naming.resolve(logical)
        values = named.params_to_elements({k: v for k, v in params.items() if v is not None})
        operation = getattr(self._service, named.name, None)
        if operation is None:  # an optional operation this 1C does not publish (yet)
            purpose = "backfill" if named.contract.listing else "mirror"
            raise OnecContractMismatch(
                f"the WSDL lacks {named.name} ({logical}): publish it to {purpose}"
                f" {logical.split('_')[1].removesuffix('s')}s (CONTRACT.md)"
            )
        _ANSWERING.set(named)
        try:
            answer = await operation(**values)
        except (ArithmeticError, ValueError) as exc:
            # A value its WSDL type does not allow, in a spelling values.py does not know
            # either (zeep's Decimal() or date parser refused it).
            raise OnecBadValue("return", f"not of its WSDL type ({exc})", named.name) from exc
        except zeep.exceptions.Fault as exc:
            raise OnecFault(str(exc.message or ""), status=500) from exc
        except zeep.exceptions.TransportError as exc:
            raise OnecHTTPError(exc.status_code, _excerpt(str(exc.content or ""))) from exc
        except (zeep.exceptions.Error, TypeError) as exc:
            raise OnecContractMismatch(f"{named.name}: {exc}") from exc
        plain = zeep.helpers.serialize_object(answer, dict)
        if not isinstance(plain, dict):
            raise OnecContractMismatch(f"{named.name}: expected a record, got {plain!r:.80}")
        # A wrapper with out-parameters comes back whole, with `return` inside (onec.md §1.5).
        record = plain.get("return", plain) if "return" in plain else plain
        return named.result_from_elements(record)

    async def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()
        await self._wire.close()


class HttpServiceClient:
    """The contract's HTTP-service form: ``POST <root>/v1/<operation>`` with JSON."""

    def __init__(
        self, *, url: str, username: str, password: str, timeout: float, pool_size: int = 4
    ) -> None:
        self._root = url.rstrip("/")
        self._wire = Wire(
            url=self._root,
            username=username,
            password=password,
            timeout=timeout,
            pool_size=pool_size,
        )

    @property
    def loaded(self) -> bool:
        """Always: there is nothing to load."""
        return True

    def load(self) -> str:
        """Nothing to load: the HTTP service has no schema (onec.md §2)."""
        return f"HTTP service at {self._root}"

    def publishes(self, logical: str) -> bool | None:
        """Unknown (None): without a schema only a call tells (a template it lacks is 404)."""
        return None

    async def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """POST the logical parameters as JSON; the answer's keys are logical already."""
        path = OPERATIONS[logical].http_path
        body = {k: _jsonable(v) for k, v in params.items() if v is not None}
        answer = await self._wire.post(
            f"{self._root}/{path.lstrip('/')}",
            json.dumps(body, allow_nan=False).encode(),
            {"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            # bytes: a UTF-8 BOM, which 1C may write, is fine. A JSON number (ЗаписатьJSON
            # writes an Число so) is read as a Decimal: amounts exact, never via a float.
            doc = json.loads(answer.body, parse_float=Decimal)
        except ValueError:
            doc = None
        if answer.status < 400 and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            text = f"{error['code']}: {error.get('message', '')}"
            raise OnecFault(text, code=error["code"], status=answer.status)
        raise OnecHTTPError(answer.status, _excerpt(answer.text()))

    async def close(self) -> None:
        """Close the pooled connections (a later call opens a new pool)."""
        await self._wire.close()


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
            raise OnecHTTPError(answer.status, _excerpt(answer.text()))
        named = _ANSWERING.get()
        body = answer.body
        if named is not None and answer.status == 200:
            # 1C's own spellings of numbers, flags and dates, canonical before zeep reads them.
            body = canonical_xml(body, answer_kinds(named), named.name)
        response = requests.Response()  # what zeep's process_reply reads
        response._content = body
        response.status_code = answer.status
        response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
        response.encoding = answer.charset
        return response


_KINDS: dict[tuple[str, str], dict[str, tuple[str, str]]] = {}


def answer_kinds(named: NamedOperation) -> dict[str, tuple[str, str]]:
    """Element → (XML Schema type, logical field) of the answer's non-text fields; an element
    name two fields of different types share is left out (it cannot be told apart)."""
    key = (named.name, named.soap_action)
    if key not in _KINDS:
        kinds: dict[str, tuple[str, str]] = {}
        clashes: set[str] = set()
        records: list[Record] = list(named.contract.result.walk())
        for record in records:
            for field in record.fields:
                if not isinstance(field.type, XsdType) or field.type is XsdType.STRING:
                    continue
                element, kind = named.fields[field.name], (field.type.value, field.name)
                if kinds.setdefault(element, kind) != kind:
                    clashes.add(element)
        _KINDS[key] = {e: k for e, k in kinds.items() if e not in clashes}
    return _KINDS[key]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        # xs:dateTime in UTC, as the contract's JSON writes times: 2026-11-22T10:00:00Z.
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return str(value) if isinstance(value, Decimal) else value


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
