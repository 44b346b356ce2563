"""Wire clients for a 1C infobase: SOAP through zeep, or the HTTP service with JSON.

Both take and return the contract's *logical* names (``contract.py``) and translate to the
installation's names through a ``Naming``. Both are blocking (zeep and requests): callers
run them in worker threads. Wire failures become the exceptions below; which reaction each
calls for is decided in ``errors.py``. Nothing here imports the bridge's core.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal, Protocol

import requests
import zeep
import zeep.exceptions
import zeep.helpers
from requests.adapters import HTTPAdapter

from connectors.onec.contract import OPERATIONS, Naming

SoapVersion = Literal["1.1", "1.2"]


class OnecCallError(Exception):
    """A call to 1C failed; subclasses say how."""


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


class OnecUnreachable(OnecCallError):
    """No answer: the connection failed or the timeout passed."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class OnecContractMismatch(OnecCallError):
    """The service does not have what the configured names say (operation, element)."""


class OnecClient(Protocol):
    """What the connector needs of either transport."""

    def load(self) -> str:
        """Prepare (load the WSDL); return a one-line description of the service."""
        ...

    def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call a logical operation with logical parameters; the result by logical names."""
        ...

    def close(self) -> None:
        """Release pooled connections."""
        ...


def _session(username: str, password: str, pool_size: int) -> requests.Session:
    session = requests.Session()
    # requests encodes Basic credentials as latin-1: a Cyrillic 1C user name cannot pass
    # (onec.md §1.4); the options validation asks for a Latin technical user.
    session.auth = (username, password)
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:200]


class SoapClient:
    """zeep over a pooled requests session with Basic auth and timeouts."""

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
        self._session = _session(username, password, pool_size)
        self._service: Any = None

    def load(self) -> str:
        """Load and check the WSDL once; every named operation must be in the binding."""
        transport = _CheckedTransport(
            session=self._session, timeout=self._timeout, operation_timeout=self._timeout
        )
        # strict=False: a hand-written 1C record may carry elements the WSDL does not list
        # (onec.md §1.5, zeep #779); xml_huge_tree off keeps lxml's limits on hostile input.
        settings = zeep.Settings(strict=False, xml_huge_tree=False)
        try:
            client = zeep.Client(
                self._wsdl, transport=transport, settings=settings, plugins=[_Utf8Headers()]
            )
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
                # (onec.md §1.2, §1.5): create_service points the binding elsewhere.
                self._service = client.create_service(binding, self._address)
            else:
                port = f"{self._naming.service}Soap12" if self._version == "1.2" else None
                self._service = client.bind(self._naming.service, port)
        except (LookupError, ValueError, zeep.exceptions.Error) as exc:
            raise OnecContractMismatch(
                f"the WSDL has no binding {binding} (check service and namespace): {exc}"
            ) from exc
        missing = [
            f"{n.contract.name} → {n.name}"
            for n in self._naming.resolve_all()
            if not hasattr(self._service, n.name)
        ]
        if missing:
            raise OnecContractMismatch(f"the WSDL lacks operations: {', '.join(missing)}")
        return f"SOAP {self._version} service {self._naming.service}"

    def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """Call ``logical`` through zeep and rename the result back to logical names."""
        if self._service is None:
            self.load()
        named = self._naming.resolve(logical)
        values = named.params_to_elements({k: v for k, v in params.items() if v is not None})
        try:
            answer = getattr(self._service, named.name)(**values)
        except zeep.exceptions.Fault as exc:
            raise OnecFault(str(exc.message or ""), status=500) from exc
        except zeep.exceptions.TransportError as exc:
            raise OnecHTTPError(exc.status_code, _excerpt(str(exc.content or ""))) from exc
        except requests.RequestException as exc:
            raise _unreachable(exc) from exc
        except (zeep.exceptions.Error, TypeError) as exc:
            raise OnecContractMismatch(f"{named.name}: {exc}") from exc
        plain = zeep.helpers.serialize_object(answer, dict)
        if not isinstance(plain, dict):
            raise OnecContractMismatch(f"{named.name}: expected a record, got {plain!r:.80}")
        # A wrapper with out-parameters comes back whole, with `return` inside (onec.md §1.5).
        record = plain.get("return", plain) if "return" in plain else plain
        return named.result_from_elements(record)

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()


class HttpServiceClient:
    """The contract's HTTP-service form: ``POST <root>/v1/<operation>`` with JSON."""

    def __init__(
        self, *, url: str, username: str, password: str, timeout: float, pool_size: int = 4
    ) -> None:
        self._root = url.rstrip("/")
        self._timeout = timeout
        self._session = _session(username, password, pool_size)

    def load(self) -> str:
        """Nothing to load: the HTTP service has no schema (onec.md §2)."""
        return f"HTTP service at {self._root}"

    def call(self, logical: str, params: Mapping[str, Any]) -> dict[str, Any]:
        """POST the logical parameters as JSON; the answer's keys are logical already."""
        path = OPERATIONS[logical].http_path
        body = {k: _jsonable(v) for k, v in params.items() if v is not None}
        try:
            response = self._session.post(
                f"{self._root}/{path.lstrip('/')}", json=body, timeout=self._timeout
            )
        except requests.RequestException as exc:
            raise _unreachable(exc) from exc
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if response.ok and isinstance(doc, dict):
            return doc
        error = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(error, dict) and isinstance(error.get("code"), str):
            text = f"{error['code']}: {error.get('message', '')}"
            raise OnecFault(text, code=error["code"], status=response.status_code)
        raise OnecHTTPError(response.status_code, _excerpt(response.text))

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()


class _CheckedTransport(zeep.Transport):
    """A transport that reports HTTP errors by their status before zeep reads the body.

    1C answers a business error with HTTP 500 and a SOAP fault, which zeep must parse; but
    a 401 or a proxy's 502 carries a web page, and zeep reads a well-formed one as
    "Unknown fault occured", losing the status that says what to do.
    """

    def post_xml(self, address: str, envelope: Any, headers: dict[str, Any]) -> Any:
        """Post, then raise OnecHTTPError unless the answer is a SOAP message."""
        response = super().post_xml(address, envelope, headers)
        kind = response.headers.get("Content-Type", "")
        is_soap = "xml" in kind and response.status_code in (200, 500)
        if response.status_code != 200 and not is_soap:
            raise OnecHTTPError(response.status_code, _excerpt(response.text))
        return response


class _Utf8Headers(zeep.Plugin):
    """Send header values as UTF-8 bytes: http.client encodes str headers as latin-1, so a
    Cyrillic SOAPAction (``…#БонуснаяПрограмма:ПолучитьБаланс``) would fail before it is
    sent (python-zeep#1172, seen against a real 1C service)."""

    def egress(
        self, envelope: Any, http_headers: dict[str, Any], operation: Any, binding_options: Any
    ) -> tuple[Any, dict[str, Any]]:
        """Encode every non-latin-1 header value."""
        for key, value in list(http_headers.items()):
            if isinstance(value, str) and not value.isascii():
                http_headers[key] = value.encode("utf-8")
        return envelope, http_headers


def _jsonable(value: Any) -> Any:
    return str(value) if isinstance(value, Decimal) else value


def _unreachable(exc: requests.RequestException) -> OnecUnreachable:
    timed_out = isinstance(exc, requests.Timeout)
    return OnecUnreachable(f"{type(exc).__name__}: {exc}", timed_out=timed_out)


__all__ = [
    "HttpServiceClient",
    "OnecCallError",
    "OnecClient",
    "OnecContractMismatch",
    "OnecFault",
    "OnecHTTPError",
    "OnecUnreachable",
    "SoapClient",
]
