"""Compiled readers of the hot 1C operations' answers: lxml walks the answer along the
schema compiled once from the WSDL, and gives what ``SoapClient.call`` gave through zeep
(``process_reply``, ``serialize_object``, the unwrapping): the same dict, the same values.

The answer is first respelt by ``values.canonical_xml``, the very step zeep's path takes
(1C's own spellings of numbers, flags and dates; the same bytes back, after one scan, when
nothing needs it). The reader then takes only the answer it can read in full:
``Envelope/Body/<wrapper>`` (after a ``Header``, which 1C sends empty and zeep leaves out
of the result), the wrapper's children in schema order (an optional one may be absent),
each a simple-typed element (no attribute but ``xsi:nil``, no children) or a record of
such elements, a list of them where the schema allows repeats. Each value is converted by
the element's own zeep type (``parse_xmlelement``, or ``scalars``' quick path for the plain
spellings, equal to it), so ``Decimal``, ``datetime``, ``bool``, an empty element's None
and a nil's None are zeep's own.

Anything else, which zeep reads its own forgiving way, gives None and the caller hands the
same bytes to zeep: a fault, a required element missing, an element the schema does not
have (zeep keeps those as ``_raw_elements``), another namespace, ``xsi:type``, a nil
record, a DTD, XML only lxml's recovery reads. So a hostile answer costs what it costs
today and reads as it reads today (``tests/unit/test_onec_replies.py`` checks both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lxml import etree  # no type hints (mypy: ignore_missing_imports)
from zeep.xsd import AnySimpleType

from connectors.onec import scalars
from connectors.onec.envelopes import SOAP_ENVELOPES, XSI, flat_fields
from connectors.onec.values import canonical_xml

Kinds = Mapping[str, tuple[str, str]]
_NIL = f"{{{XSI}}}nil"
# zeep's parser (zeep.loader.parse_xml with strict=False) but for recover: an answer that
# only recovery can read is zeep's to read.
_PARSER = etree.XMLParser(
    remove_comments=True, resolve_entities=False, huge_tree=False, no_network=True
)
_DEPTH = 3  # records inside records: deeper answers are zeep's


class _Unreadable(Exception):
    """The answer is not in the compiled shape: zeep reads it."""


@dataclass(frozen=True)
class _Field:
    """One element of a sequence: where it is, how many, and how its value is read."""

    name: str  # zeep's attribute name: the key in the answer's dict
    tag: str  # {namespace}local, as lxml spells it
    simple: Any  # zeep's simple type, or None for a record
    read: Any  # the simple type's reader (scalars.reader), or None for a record
    children: tuple[_Field, ...]  # a record's fields
    multiple: bool  # maxOccurs > 1: a list
    min_occurs: int
    max_occurs: int | None  # None: unbounded


class ReplyReader:
    """The answer of one operation, compiled; ``read`` reads it."""

    def __init__(self, version: str, wrapper: str, fields: tuple[_Field, ...]) -> None:
        envelope = SOAP_ENVELOPES[version]
        self._envelope, self._body = f"{{{envelope}}}Envelope", f"{{{envelope}}}Body"
        self._header = f"{{{envelope}}}Header"
        self._wrapper, self._fields = wrapper, fields
        # zeep hands a response of one element back unwrapped, and a record of one element
        # inside it unwrapped once more (DocumentMessage.deserialize); SoapClient.call
        # wraps the first level again.
        only = fields[0] if len(fields) == 1 else None
        self._inner = (
            only.children[0].name
            if only is not None and not only.multiple and len(only.children) == 1
            else None
        )

    def read(self, body: bytes, kinds: Kinds, operation: str) -> dict[str, Any] | None:
        """The answer's elements by name, as ``SoapClient.call`` returns them through zeep;
        None when zeep must read it. OnecBadValue for a value 1C spelt beyond reading."""
        if kinds:
            # The very step zeep's path takes first (the same bytes back when nothing needs
            # respelling, the usual answer: one scan).
            body = canonical_xml(body, kinds, operation)
        if b"<!DOCTYPE" in body:
            return None  # zeep refuses entities its own way (forbid_entities)
        try:
            root = etree.fromstring(body, parser=_PARSER)
        except etree.XMLSyntaxError:
            return None
        try:
            return self._document(root)
        except _Unreadable:
            return None

    def _document(self, root: Any) -> dict[str, Any]:
        parts = list(root)
        if root.tag != self._envelope or not parts or parts[-1].tag != self._body:
            raise _Unreadable
        if len(parts) > 2 or (len(parts) == 2 and parts[0].tag != self._header):
            raise _Unreadable
        body = parts[-1]
        if len(body) != 1 or body[0].tag != self._wrapper:
            raise _Unreadable
        wrapper = body[0]
        if len(wrapper.attrib) or not len(wrapper):
            raise _Unreadable
        walk = _Walk()
        values = walk.sequence(wrapper, self._fields)
        if walk.failure is not None:
            raise walk.failure
        if len(self._fields) != 1:
            return values
        name = self._fields[0].name
        value = values[name]
        if self._inner is not None and isinstance(value, dict):
            value = value[self._inner]
        return {name: value}


def compile_reply(operation: Any, version: str) -> ReplyReader | None:
    """The reader of a zeep ``SoapOperation``'s output, or None if its answer is not flat
    records and simple values (zeep reads those)."""
    message = operation.output
    body = getattr(message, "body", None)
    if body is None or getattr(message, "_is_body_wrapped", True):
        return None
    header = getattr(message, "header", None)
    if header is not None and header.type.elements:
        return None
    fields = _fields(body, 0)
    if fields is None:
        return None
    return ReplyReader(version, body.qname.text, fields)


def _fields(element: Any, depth: int) -> tuple[_Field, ...] | None:
    found = flat_fields(element)
    if found is None or depth >= _DEPTH:
        return None
    fields = []
    for name, child in found:
        simple = child.type if isinstance(child.type, AnySimpleType) else None
        children: tuple[_Field, ...] = ()
        if simple is None:
            nested = _fields(child, depth + 1)
            if nested is None:
                return None
            children = nested
        most = child.max_occurs
        fields.append(
            _Field(
                name=name,
                tag=child.qname.text,
                simple=simple,
                read=None if simple is None else scalars.reader(simple),
                children=children,
                multiple=most != 1,
                min_occurs=int(child.min_occurs),
                max_occurs=None if most == "unbounded" else int(most),
            )
        )
    if len({f.tag for f in fields}) != len(fields):
        return None  # two elements of one name: zeep's order rules decide
    return tuple(fields)


class _Walk:
    """One answer's walk: values converted as met; the first conversion that fails is
    raised once the whole answer proved readable (else zeep reads it and raises what it
    raises)."""

    def __init__(self) -> None:
        self.failure: Exception | None = None

    def sequence(self, parent: Any, fields: tuple[_Field, ...]) -> dict[str, Any]:
        kids, i, values = list(parent), 0, dict[str, Any]()
        count = len(kids)
        for f in fields:
            if f.multiple:
                items = []
                while i < count and kids[i].tag == f.tag:
                    items.append(self.value(kids[i], f))
                    i += 1
                too_many = f.max_occurs is not None and len(items) > f.max_occurs
                if too_many or len(items) < f.min_occurs:
                    raise _Unreadable
                values[f.name] = items
            elif i < count and kids[i].tag == f.tag:
                values[f.name] = self.value(kids[i], f)
                i += 1
            elif f.min_occurs == 0:
                values[f.name] = None
            else:
                raise _Unreadable  # zeep: a default, or None, by where the gap is
        if i != count:
            raise _Unreadable  # zeep keeps them as _raw_elements
        return values

    def value(self, element: Any, f: _Field) -> Any:
        attributes = element.attrib
        if f.simple is not None:
            if len(element) or (
                len(attributes) and (len(attributes) > 1 or _NIL not in attributes)
            ):
                raise _Unreadable  # xsi:type, or markup inside a value
            try:
                return f.read(element)
            except Exception as exc:  # zeep's own: raised after the walk, as zeep would
                self.failure = self.failure or exc
                return None
        if len(attributes):
            raise _Unreadable  # xsi:nil on a record: zeep makes a record of Nones of it
        if not len(element):
            return None  # zeep: an empty record is no record
        return self.sequence(element, f.children)
