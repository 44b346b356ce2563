"""zeep as the reference for the compiled SOAP path (issue 16): what zeep would send for an
operation's elements, what it reads out of an answer, and every WSDL in the repository
loaded into a ``SoapClient`` (no network: the WSDL is read from its file)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zeep.wsdl.utils
from lxml import etree
from multidict import CIMultiDict, CIMultiDictProxy

from connectors.onec.client import SoapClient, _unwrapped
from connectors.onec.emulator.server import naming_from_yaml
from connectors.onec.wire import Answer
from connectors.onec.wsdl import REFERENCE_PATH, render_wsdl
from connectors.onec.zeep_transport import Kinds, zeep_response

ROOT = Path(__file__).parents[2]
SHAPES = ROOT / "tests/fixtures/onec_soap/shapes.wsdl"
# The operations of shapes.wsdl that stay with zeep: a record as input, xs:choice, an attribute.
NOT_COMPILED = frozenset({"Вложенный", "Выбор", "Атрибут"})
NOWHERE = "http://127.0.0.1:9/base/ws/service.1cws"  # never called: these clients only compile


@dataclass(frozen=True)
class Wsdl:
    """A WSDL of the repository and the service it publishes."""

    label: str
    path: Path
    service: str


def repository_wsdls() -> list[Wsdl]:
    """connectors/onec/wsdl (the reference, and as the Cyrillic renaming publishes it, in a
    temporary folder removed at exit), examples/onec/*, tests/fixtures/onec_services/*,
    and tests/fixtures/onec_soap/shapes.wsdl (operations zeep must keep): every WSDL here."""
    cyrillic = naming_from_yaml()
    scratch = Path(tempfile.mkdtemp(prefix="onec-wsdl-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    renamed = scratch / "cyrillic_reference.wsdl"
    renamed.write_text(render_wsdl(cyrillic, NOWHERE), encoding="utf-8")
    found = [
        Wsdl("reference", REFERENCE_PATH, "BridgeLoyalty"),
        Wsdl("reference renamed (cyrillic_example.yaml)", renamed, cyrillic.service),
    ]
    for folder in ("examples/onec", "tests/fixtures/onec_services", "tests/fixtures"):
        found += [
            Wsdl(str(path.relative_to(ROOT)), path, _service_name(path))
            for path in sorted((ROOT / folder).glob("*/*.wsdl"))
        ]
    return found


def _service_name(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    start = text.index("<service name=") + len("<service name=") + 1
    return text[start : text.index('"', start)]


def loaded_client(wsdl: Wsdl, version: str, *, compiled: bool = True) -> SoapClient:
    """A SoapClient with ``wsdl`` loaded (``version``'s binding), pointed nowhere."""
    client = SoapClient(
        wsdl=str(wsdl.path),
        service=wsdl.service,
        namespace=None,
        username="bridge",
        password="sandbox",
        timeout=1,
        address=NOWHERE,
        soap_version="1.2" if version == "1.2" else "1.1",
        compiled=compiled,
    )
    client.load()
    return client


def zeep_envelope(client: SoapClient, operation: str, elements: Mapping[str, Any]) -> Any:
    """zeep's envelope bytes and headers for ``elements`` (what its async path posts)."""
    envelope, headers = client._bound._create(operation, (), dict(elements), client=client._zeep)
    return zeep.wsdl.utils.etree_to_string(envelope), dict(headers)


def answer(body: bytes, status: int = 200, content_type: str = "text/xml; charset=utf-8") -> Answer:
    """An HTTP answer as the Wire hands it over."""
    headers = CIMultiDictProxy(CIMultiDict({"Content-Type": content_type}))
    return Answer(status, body, headers, "utf-8")


def zeep_read(client: SoapClient, operation: str, reply: Answer, kinds: Kinds) -> Any:
    """What zeep's path makes of ``reply``: respelt, ``process_reply``, unwrapped."""
    bound = client._operations[operation]
    response = zeep_response(reply, (operation, kinds))
    return _unwrapped(bound, client._bound.process_reply(client._zeep, bound, response))


def compiled_read(client: SoapClient, operation: str, reply: Answer, kinds: Kinds) -> Any:
    """What the compiled path makes of ``reply`` (zeep where its reader gives up)."""
    return client._read(operation, reply, kinds, client._compiled[operation].reply)


def outcome(read: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", the value as plain data) or ("raised", the exception's type and text)."""
    try:
        return "ok", plain(read())
    except Exception as exc:  # compared, whatever it is
        return "raised", (type(exc), str(exc))


def plain(value: Any) -> Any:
    """``value`` comparable by repr: elements zeep keeps (``_raw_elements``) as their XML."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | deque):
        return [plain(v) for v in value]
    if isinstance(value, etree._Element):
        return ("element", etree.tostring(value))
    return value


def operations(client: SoapClient) -> Iterator[tuple[str, Any]]:
    """The binding's operations, by name."""
    yield from client._operations.items()
