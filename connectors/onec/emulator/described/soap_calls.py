"""A described SOAP service's calls on the wire: a posted envelope read into the
operation and its arguments, the answer and the refusals written as 1C writes them.

The envelopes themselves (versions, faults) are the reference emulator's (``soap.py``);
what differs is that the names come from the service's own WSDL and description, not
from the contract. 1C's XDTO reads parameters by element name in the service namespace
(elementFormDefault="qualified", onec.md §1.2); what it cannot map is an "Ошибка
преобразования данных XDTO".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import tzinfo
from typing import Any
from urllib.parse import unquote

from lxml import etree

from connectors.onec.emulator.described.description import DescribedOperation, Refusal
from connectors.onec.emulator.described.template import XSI, render_xml
from connectors.onec.emulator.described.wsdl import ServiceWsdl
from connectors.onec.emulator.soap import (
    SOAP11,
    SOAP11_ENV,
    SOAP12_ENV,
    SoapFault,
    SoapVersion,
    defused_parser,
)

_XDTO = "Ошибка преобразования данных XDTO"
_NIL = f"{{{XSI}}}nil"
_PARSER = defused_parser()


@dataclass(frozen=True)
class SoapCall:
    """A call read off the wire: the operation and its arguments under logical names."""

    operation: DescribedOperation
    args: dict[str, str]


def read_call(
    body: bytes,
    version: SoapVersion,
    action: str | None,
    wsdl: ServiceWsdl,
    operations: Mapping[str, DescribedOperation],
) -> SoapCall:
    """The call in a posted envelope; SoapFault(client=True) when it is not one of ours."""
    try:
        root = etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise SoapFault(f"Malformed SOAP message: {exc}", client=True) from exc
    if root.getroottree().docinfo.doctype:
        raise SoapFault("A SOAP message must not contain a DTD", client=True)
    if version.name not in wsdl.versions:
        raise SoapFault(f"The service has no SOAP {version.name} binding", client=True)
    other = SOAP12_ENV if version is SOAP11 else SOAP11_ENV
    if root.tag == f"{{{other}}}Envelope":
        raise SoapFault("The envelope is not the announced version", code="VersionMismatch")
    body_element = root.find(f"{{{version.envelope}}}Body")
    calls = [] if body_element is None else [e for e in body_element if isinstance(e.tag, str)]
    if root.tag != f"{{{version.envelope}}}Envelope" or not calls:
        raise SoapFault(f"Not a SOAP {version.name} call", client=True)
    qname = etree.QName(calls[0])
    operation = operations.get(qname.localname) if qname.namespace == wsdl.namespace else None
    if operation is None:
        raise SoapFault(f"Unknown operation {qname.text}", client=True)
    # A Cyrillic action arrives as UTF-8 bytes (python-zeep#1172) or percent-encoded.
    if action and unquote(action) != wsdl.actions.get(operation.name):
        raise SoapFault(f"SOAPAction {action!r} does not name {operation.name}", client=True)
    return SoapCall(operation, _arguments(calls[0], operation, wsdl.namespace))


def _arguments(call: Any, operation: DescribedOperation, namespace: str) -> dict[str, str]:
    logical = {element: name for name, element in operation.inputs.items()}
    args: dict[str, str] = {}
    for child in call:
        if not isinstance(child.tag, str):
            continue
        qname = etree.QName(child)
        if qname.namespace != namespace or len(child):
            raise SoapFault(f"{_XDTO}: unexpected element {qname.text}", client=True)
        if qname.localname not in logical:
            continue  # a parameter of the WSDL the behaviour does not read
        if child.get(_NIL, "").strip() not in {"true", "1"}:
            args[logical[qname.localname]] = child.text or ""
    return args


def render_answer(
    version: SoapVersion,
    operation: DescribedOperation,
    namespace: str,
    out: Any,
    values: Mapping[str, Any],
    zone: tzinfo,
) -> bytes:
    """``<m:OpResponse>`` with ``return`` and the out-parameters the template gives."""
    envelope, body = _envelope(version)
    wrapper = etree.SubElement(
        body, f"{{{namespace}}}{operation.name}Response", nsmap={"m": namespace, "xsi": XSI}
    )
    render_xml(wrapper, out, values, namespace, zone)
    data: bytes = etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)
    return data


def refusal_fault(rule: Refusal, operation: DescribedOperation, text: str) -> SoapFault:
    """The fault 1C answers for ``ВызватьИсключение`` with the refusal's text (§1.5)."""
    return SoapFault(rule.text.format(operation=operation.name, text=text))


def _envelope(version: SoapVersion) -> tuple[Any, Any]:
    env = version.envelope
    envelope = etree.Element(f"{{{env}}}Envelope", nsmap={"soap": env})
    etree.SubElement(envelope, f"{{{env}}}Header")
    return envelope, etree.SubElement(envelope, f"{{{env}}}Body")
