"""Compiled request envelopes for the hot 1C operations: built from the WSDL once, filled
by joining strings on every call, the same bytes zeep would send.

zeep builds an envelope by walking the operation's schema for every call (an lxml tree,
``validate``, ``render``, ``tostring``): about half of the 0.34 ms zeep spent per balance
call (issue 16). An operation whose input is a flat sequence of simple-typed elements
needs none of that: its envelope is a fixed head, one ``<ns0:Name>value</ns0:Name>`` per
given element in schema order, and a fixed tail. Each value is formatted by the element's
own zeep type (``xmlvalue``: ``Decimal`` as ``{:f}``, ``datetime`` as ISO with ``Z``…) and
escaped as lxml escapes text (``&``, ``<``, ``>``, and a carriage return as ``&#13;``).

What zeep would refuse or treat specially is left to zeep, call by call (``render`` gives
None): an element name the operation does not have, a required element without a value, a
value of a type other than the plain ones below, a text XML cannot carry (a control
character). zeep then raises exactly what it raises today. ``tests/contract/
test_onec_envelopes.py`` holds the compiled bytes against zeep's for every operation of
every WSDL in the repository.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from zeep.xsd import AnySimpleType, Element, Sequence

SOAP_ENVELOPES = {
    "1.1": "http://schemas.xmlsoap.org/soap/envelope/",
    "1.2": "http://www.w3.org/2003/05/soap-envelope",
}
XSI = "http://www.w3.org/2001/XMLSchema-instance"
# The values the bridge's declarations produce; anything else goes through zeep.
_PLAIN = frozenset({str, Decimal, int, bool, float, datetime, date})
# What lxml refuses in a text ("All strings must be XML compatible"): zeep raises it.
_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TEXT = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;"})
_ATTRIBUTE = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})


@dataclass(frozen=True)
class _Param:
    """One input element: its keyword, its tags, its zeep type, whether it may be left out."""

    name: str
    open: str
    close: str
    nil: str
    type: Any  # zeep's simple type: its xmlvalue formats the value
    optional: bool  # minOccurs=0: no value, no element
    nillable: bool  # no value: xsi:nil="true"


class RequestTemplate:
    """The envelope of one operation, compiled; ``render`` fills it."""

    def __init__(self, head: str, empty: str, tail: str, params: tuple[_Param, ...]) -> None:
        self._head, self._empty, self._tail, self._params = head, empty, tail, params
        self._names = frozenset(p.name for p in params)

    def render(self, elements: Mapping[str, Any]) -> bytes | None:
        """The envelope with ``elements``, byte for byte zeep's; None where zeep must decide
        (it raises, or formats a value this template does not know)."""
        if not self._names.issuperset(elements):
            return None
        parts = [self._head]
        for p in self._params:
            value = elements.get(p.name)
            if value is None:
                if p.optional:
                    continue
                if not p.nillable:
                    return None  # zeep: ValidationError "Missing element"
                parts.append(p.nil)
                continue
            if type(value) not in _PLAIN:
                return None
            try:
                text = p.type.xmlvalue(value)
            except Exception:  # zeep raises the same from its own call
                return None
            if not isinstance(text, str) or _UNSAFE.search(text):
                return None
            parts += (p.open, text.translate(_TEXT), p.close)
        if len(parts) == 1:
            return self._empty.encode()
        parts.append(self._tail)
        return "".join(parts).encode()


def compile_request(operation: Any, version: str) -> RequestTemplate | None:
    """The template of a zeep ``SoapOperation``'s input, or None if it is not a flat
    sequence of simple-typed elements in the wrapper's namespace (zeep builds those)."""
    message = operation.input
    body = getattr(message, "body", None)
    if not isinstance(body, Element) or getattr(message, "_is_body_wrapped", True):
        return None
    header = getattr(message, "header", None)
    if header is not None and header.type.elements:
        return None
    fields = flat_fields(body)
    namespace = body.qname.namespace
    if fields is None or not namespace:
        return None
    wrapper = f"ns0:{body.qname.localname}"
    env = SOAP_ENVELOPES[version]
    declaration = "<?xml version='1.0' encoding='utf-8'?>\n"
    start = f'{declaration}<soap-env:Envelope xmlns:soap-env="{_attribute(env)}"><soap-env:Body>'
    opening = f'<{wrapper} xmlns:ns0="{_attribute(namespace)}"'
    params = []
    for name, element in fields:
        if not isinstance(element.type, AnySimpleType) or element.max_occurs != 1:
            return None
        child_namespace = element.qname.namespace
        if child_namespace not in (None, namespace):
            return None
        tag = ("ns0:" if child_namespace else "") + element.qname.localname
        params.append(
            _Param(
                name=name,
                open=f"<{tag}>",
                close=f"</{tag}>",
                nil=f'<{tag} xmlns:xsi="{XSI}" xsi:nil="true"/>',
                type=element.type,
                optional=element.min_occurs == 0,
                nillable=bool(element.nillable),
            )
        )
    end = "</soap-env:Body></soap-env:Envelope>"
    return RequestTemplate(
        head=f"{start}{opening}>",
        empty=f"{start}{opening}/>{end}",
        tail=f"</{wrapper}>{end}",
        params=tuple(params),
    )


def flat_fields(element: Any) -> list[tuple[str, Any]] | None:
    """The (name, zeep Element) children of ``element``'s complex type when it is one plain
    sequence of elements (no attributes, choices, groups, wildcards, arrays); else None."""
    xsd_type = getattr(element, "type", None)
    if xsd_type is None or isinstance(xsd_type, AnySimpleType):
        return None
    if getattr(xsd_type, "attributes", None) or getattr(xsd_type, "_array_type", None):
        return None
    nested = getattr(xsd_type, "elements_nested", None)
    if not nested or len(nested) != 1:
        return None
    sequence = nested[0][1]
    if type(sequence) is not Sequence or sequence.min_occurs != 1 or sequence.max_occurs != 1:
        return None
    if not all(type(item) is Element for item in sequence):
        return None
    fields: list[tuple[str, Any]] = list(xsd_type.elements)
    return fields or None


def soap_headers(operation: Any, version: str) -> dict[str, str]:
    """The HTTP headers zeep sends with the operation (``SoapMessage.serialize``, then
    ``SoapBinding._set_http_headers``)."""
    action = operation.soapaction
    headers = {"SOAPAction": f'"{action}"' if action else '""'}
    if version == "1.2":
        headers["Content-Type"] = f'application/soap+xml; charset=utf-8; action="{action}"'
    else:
        headers["Content-Type"] = "text/xml; charset=utf-8"
    return headers


def _attribute(value: str) -> str:
    return value.translate(_ATTRIBUTE)
