"""SOAP 1.1 and 1.2 envelopes as a 1C web service reads and writes them, for the emulator.

Pure functions over bytes: ``parse_request`` turns a posted envelope into the logical
operation and its parameters as text, ``render_result`` and ``render_fault`` write the
answer. The emulator (``server.py``) adds HTTP, auth and the ledger around them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import unquote

# lxml ships no type hints; it is what zeep itself parses with, and it can be told not to
# resolve entities or touch the network while reading a request from outside.
from lxml import etree

from connectors.onec.contract import Record, XsdType
from connectors.onec.emulator.faults import Spelled
from connectors.onec.naming import NamedOperation, Naming

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSD = "http://www.w3.org/2001/XMLSchema"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XML_NS = "http://www.w3.org/XML/1998/namespace"
_NIL = f"{{{XSI}}}nil"
# Characters XML 1.0 cannot carry at all; replaced rather than failing the whole answer.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_XDTO = "Ошибка преобразования данных XDTO"
_Element = Any  # an lxml element


@dataclass(frozen=True)
class SoapVersion:
    """What differs between SOAP 1.1 and 1.2 on the wire."""

    name: str
    envelope: str  # the envelope namespace
    content_type: str
    sender: str  # fault code of a bad request: Client (1.1) / Sender (1.2)
    receiver: str  # fault code of a failure in the service: Server (1.1) / Receiver (1.2)


SOAP11 = SoapVersion("1.1", SOAP11_ENV, "text/xml; charset=utf-8", "Client", "Server")
SOAP12 = SoapVersion("1.2", SOAP12_ENV, "application/soap+xml; charset=utf-8", "Sender", "Receiver")


class SoapFault(Exception):
    """A fault to answer with; ``client`` when the request itself was wrong."""

    def __init__(self, text: str, *, client: bool = False, code: str | None = None) -> None:
        super().__init__(text)
        self.text = text
        self.client = client
        self.code = code  # a fault code local name overriding Client/Server, e.g. VersionMismatch


@dataclass(frozen=True)
class SoapRequest:
    """A parsed call: the operation under the installation's names and its parameters."""

    operation: NamedOperation
    params: dict[str, str]  # logical name → text; nil and empty optional elements left out


def detect_version(content_type: str) -> tuple[SoapVersion, str | None]:
    """The SOAP version a request's Content-Type announces, and the 1.2 ``action`` parameter."""
    # SOAP 1.2 carries the action in the media type (onec.md §1.4):
    # application/soap+xml; charset=UTF-8; action="<namespace>#<Service>:<Op>".
    media, *parameters = (part.strip() for part in content_type.split(";"))
    if media.lower() != "application/soap+xml":
        return SOAP11, None
    for parameter in parameters:
        key, _, value = parameter.partition("=")
        if key.strip().lower() == "action":
            return SOAP12, value.strip().strip('"')
    return SOAP12, None


def defused_parser() -> Any:
    """An lxml parser for untrusted calls: no entity expansion, no DTD or network fetches,
    no huge trees, comments and processing instructions dropped."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_request(
    body: bytes, version: SoapVersion, naming: Naming, action: str | None
) -> SoapRequest:
    """Read a document/literal wrapped call; raises SoapFault(client=True) on anything wrong."""
    parser = defused_parser()
    try:
        root = etree.fromstring(body, parser)
    except etree.XMLSyntaxError as exc:
        raise SoapFault(f"Malformed SOAP message: {exc}", client=True) from exc
    if root.getroottree().docinfo.doctype:
        raise SoapFault("A SOAP message must not contain a DTD", client=True)
    other = SOAP12_ENV if version is SOAP11 else SOAP11_ENV
    if root.tag == f"{{{other}}}Envelope":
        text = f"SOAP {version.name} was announced by the Content-Type, the envelope is another"
        raise SoapFault(text, client=True, code="VersionMismatch")
    if root.tag != f"{{{version.envelope}}}Envelope":
        raise SoapFault(f"Not a SOAP {version.name} envelope: {root.tag}", client=True)
    body_element = root.find(f"{{{version.envelope}}}Body")
    calls = [] if body_element is None else [e for e in body_element if isinstance(e.tag, str)]
    if not calls:
        raise SoapFault("The SOAP Body has no operation element", client=True)
    qname = etree.QName(calls[0])
    logical = naming.logical_for(qname.localname) if qname.namespace == naming.namespace else None
    if logical is None:
        raise SoapFault(f"Unknown operation {qname.text}", client=True)
    named = naming.resolve(logical)
    # A Cyrillic action cannot go out as latin-1: clients send it as UTF-8 bytes (zeep#1172's
    # workaround, read back here as UTF-8) or percent-encoded; either names the operation.
    if action and unquote(action) != named.soap_action:
        raise SoapFault(f"SOAPAction {action!r} does not name {named.name}", client=True)
    return SoapRequest(named, _read_params(calls[0], named, naming.namespace))


def _read_params(call: _Element, named: NamedOperation, namespace: str) -> dict[str, str]:
    known = set(named.params.values())
    optional = {named.params[p.name] for p in named.contract.params if p.optional}
    values: dict[str, str | None] = {}
    for child in call:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        # elementFormDefault="qualified" (onec.md §1.2): parameters are in the service
        # namespace. What XDTO cannot map is an "Ошибка преобразования данных XDTO" (§1.5).
        if qname.namespace != namespace or qname.localname not in known:
            raise SoapFault(f"{_XDTO}: unexpected element {qname.text}", client=True)
        if qname.localname in values or len(child):
            raise SoapFault(f"{_XDTO}: {qname.localname} must be one simple value", client=True)
        nil = child.get(_NIL, "").strip() in {"true", "1"}
        value = None if nil else (child.text or "")
        # An unset optional value may arrive nil or as an empty element: either is absent.
        values[qname.localname] = None if qname.localname in optional and not value else value
    present = {element: value for element, value in values.items() if value is not None}
    return named.params_from_elements(present)


def render_result(
    version: SoapVersion,
    named: NamedOperation,
    namespace: str,
    record: Mapping[str, Any],
    zone: tzinfo | None = None,
) -> bytes:
    """``<OpResponse><return>record</return></OpResponse>`` in a SOAP envelope; dateTime
    values local in ``zone`` without an offset, as 1C writes a Дата (None: UTC with a Z)."""
    envelope, body = _envelope(version)
    # document/literal wrapped: the result is the `return` element of OpResponse (onec.md §1.2).
    wrapper = etree.SubElement(body, f"{{{namespace}}}{named.name}Response", nsmap={"m": namespace})
    result = etree.SubElement(wrapper, f"{{{namespace}}}return", nsmap={"xs": XSD, "xsi": XSI})
    values = named.result_to_elements(record)
    _fill(result, named.contract.result, values, named, namespace, zone)
    return _serialize(envelope)


def _fill(
    parent: _Element,
    record: Record,
    values: Mapping[str, Any],
    named: NamedOperation,
    namespace: str,
    zone: tzinfo | None = None,
) -> None:
    for field in record.fields:
        element = named.fields[field.name]
        value = values.get(element)
        tag = f"{{{namespace}}}{element}"
        if isinstance(field.type, Record):
            items = value if field.repeated else [value]
            for item in items or ():
                if item is not None:
                    element = etree.SubElement(parent, tag)
                    _fill(element, field.type, item, named, namespace, zone)
        elif value is None:
            # An undefined value comes back as xsi:nil (onec.md §1.5 "nillable results").
            etree.SubElement(parent, tag, {_NIL: "true"})
        else:
            etree.SubElement(parent, tag).text = xsd_text(field.type, value, zone)


def xsd_text(type_: XsdType, value: Any, zone: tzinfo | None = None) -> str:
    """The lexical form of a value for its XML Schema type (a Spelled value as it is); a
    dateTime local in ``zone`` without an offset (None: UTC with a Z)."""
    if isinstance(value, Spelled):
        return str(value)
    if type_ is XsdType.DECIMAL:
        number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        return format(number, "f")  # xs:decimal has no exponent form
    if type_ is XsdType.BOOLEAN:
        return "true" if value else "false"
    if type_ is XsdType.DATETIME and isinstance(value, datetime):
        return iso_utc(value) if zone is None else iso_local(value, zone)
    return _NOT_XML.sub("\ufffd", str(value))


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second (1C's Дата has no fractions)."""
    return moment.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def iso_local(moment: datetime, zone: tzinfo) -> str:
    """Local time in ``zone`` without an offset, to the second: how 1C writes a Дата."""
    return moment.astimezone(zone).replace(microsecond=0, tzinfo=None).isoformat()


def render_fault(version: SoapVersion, fault: SoapFault) -> bytes:
    """A SOAP Fault of the version asked in (onec.md §1.5: 1C's exception text as the message)."""
    envelope, body = _envelope(version)
    env = version.envelope
    element = etree.SubElement(body, f"{{{env}}}Fault")
    code = "soap:" + (fault.code or (version.sender if fault.client else version.receiver))
    text = _NOT_XML.sub("\ufffd", fault.text)
    if version is SOAP11:
        etree.SubElement(element, "faultcode").text = code
        etree.SubElement(element, "faultstring").text = text
    else:
        value = etree.SubElement(etree.SubElement(element, f"{{{env}}}Code"), f"{{{env}}}Value")
        value.text = code
        reason = etree.SubElement(element, f"{{{env}}}Reason")
        etree.SubElement(reason, f"{{{env}}}Text", {f"{{{XML_NS}}}lang": "ru"}).text = text
    return _serialize(envelope)


def _envelope(version: SoapVersion) -> tuple[_Element, _Element]:
    env = version.envelope
    envelope = etree.Element(f"{{{env}}}Envelope", nsmap={"soap": env})
    etree.SubElement(envelope, f"{{{env}}}Header")
    return envelope, etree.SubElement(envelope, f"{{{env}}}Body")


def _serialize(envelope: _Element) -> bytes:
    data: bytes = etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)
    return data
