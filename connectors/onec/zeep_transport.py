"""zeep's side of the SOAP client: the session the WSDL is fetched with, and the transport
that posts zeep's envelopes through the Wire and hands the answers back for zeep to read.

The compiled path (``envelopes.py``, ``replies.py``) posts through the Wire itself and
shares the two steps every answer takes before zeep reads it: the status check
(``soap_answer``) and 1C's spellings respelt (``zeep_response``).
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import requests
import requests.structures
import zeep
import zeep.wsdl.utils
from requests.adapters import HTTPAdapter

from connectors.onec.values import canonical_xml
from connectors.onec.wire import (
    Answer,
    OnecHTTPError,
    OnecUnreachable,
    Wire,
    environment_ca_bundle,
    environment_proxy,
    excerpt,
)

# element → (XML Schema type, field) of an answer's non-text fields.
Kinds = Mapping[str, tuple[str, str]]
# The operation a SOAP call is answering and its kinds, from SoapClient.call to the transport
# that reads the answer (zeep calls post_xml in the same task).
ANSWERING: ContextVar[tuple[str, Kinds] | None] = ContextVar("onec_answering", default=None)


def wsdl_session(url: str, username: str, password: str) -> requests.Session:
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


def soap_answer(answer: Answer) -> Answer:
    """``answer`` if it is a SOAP message (200, or 500 with XML: 1C's fault); else
    OnecHTTPError with its status, before zeep reads a 401's or a proxy's web page as
    "Unknown fault occured"."""
    kind = answer.headers.get("Content-Type", "")
    if answer.status != 200 and not ("xml" in kind and answer.status == 500):
        raise OnecHTTPError(answer.status, excerpt(answer.text()))
    return answer


def zeep_response(answer: Answer, answering: tuple[str, Kinds] | None) -> Any:
    """What zeep's ``process_reply`` reads: the answer, 1C's own spellings of numbers, flags
    and dates (``answering``'s kinds) canonical first."""
    body = answer.body
    if answering is not None and answering[1] and answer.status == 200:
        body = canonical_xml(body, answering[1], answering[0])
    response = requests.Response()
    response._content = body
    response.status_code = answer.status
    response.headers = requests.structures.CaseInsensitiveDict(answer.headers)
    response.encoding = answer.charset
    return response


class ZeepTransport(zeep.Transport):
    """zeep's transport: the WSDL through ``requests`` (inherited, blocking, once), the calls
    through the Wire (``post_xml`` is awaited by zeep's async path).

    A Cyrillic SOAPAction (``…#БонуснаяПрограмма:ПолучитьБаланс``) goes out as UTF-8:
    aiohttp writes header values so, where http.client would fail on anything beyond
    latin-1 (python-zeep#1172, seen against a real 1C service).
    """

    def __init__(self, wire: Wire, *, session: requests.Session, timeout: float) -> None:
        super().__init__(session=session, timeout=timeout, operation_timeout=timeout)  # type: ignore[no-untyped-call]
        self._wire = wire

    async def post_xml(self, address: str, envelope: Any, headers: dict[str, Any]) -> Any:
        """Post; raise OnecHTTPError unless the answer is a SOAP message; else zeep's input."""
        body = zeep.wsdl.utils.etree_to_string(envelope)  # type: ignore[no-untyped-call]
        sent = {str(k): v.decode() if isinstance(v, bytes) else str(v) for k, v in headers.items()}
        answer = soap_answer(await self._wire.post(address, body, sent))
        return zeep_response(answer, ANSWERING.get())


def unreachable(exc: requests.RequestException) -> OnecUnreachable:
    """The WSDL download's failure, as a call's."""
    timed_out = isinstance(exc, requests.Timeout)
    return OnecUnreachable(f"{type(exc).__name__}: {exc}", timed_out=timed_out)
