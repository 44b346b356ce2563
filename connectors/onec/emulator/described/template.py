"""An answer template filled with a behaviour's values: as JSON (an HTTP service's body)
or as XML elements (the children of a SOAP ``<OpResponse>``: ``return`` and the
out-parameters, onec.md §1.2).

A template is what ``description.py`` read: maps become objects or elements in their
order, a ``Leaf`` a value in its spelling, a ``Const`` itself, an ``Each`` one item per
element of a list value (an XML element repeated under the same name, a JSON list).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import Any

from lxml import etree

from connectors.onec.emulator.described.description import Const, Each, Leaf, Node
from connectors.onec.emulator.described.spelling import spell, xml_text

XSI = "http://www.w3.org/2001/XMLSchema-instance"
_NIL = f"{{{XSI}}}nil"
_Element = Any  # an lxml element (lxml ships no type hints)


def render_json(node: Node, values: Mapping[str, Any], zone: tzinfo) -> Any:
    """The template as a JSON value."""
    if isinstance(node, Leaf):
        return spell(values.get(node.value), node.spelling, zone)
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Each):
        return [render_json(node.item, _scope(values, item), zone) for item in _items(node, values)]
    return {key: render_json(child, values, zone) for key, child in node.items()}


def render_xml(
    parent: _Element, node: Node, values: Mapping[str, Any], namespace: str, zone: tzinfo
) -> None:
    """The template's elements appended to ``parent``, qualified in ``namespace`` (1C's
    elementFormDefault="qualified")."""
    if not isinstance(node, dict):
        _fill(parent, node, values, namespace, zone)
        return
    for name, child in node.items():
        tag = f"{{{namespace}}}{name}"
        if isinstance(child, Each):
            for item in _items(child, values):
                element = etree.SubElement(parent, tag)
                render_xml(element, child.item, _scope(values, item), namespace, zone)
        else:
            render_xml(etree.SubElement(parent, tag), child, values, namespace, zone)


def _fill(
    element: _Element, node: Leaf | Const | Each, values: Mapping[str, Any], ns: str, zone: tzinfo
) -> None:
    if isinstance(node, Each):  # a list as the whole of an element: its items unnamed
        raise TypeError("a $each needs an element name above it")
    value = spell(values.get(node.value), node.spelling, zone) if isinstance(node, Leaf) else None
    text = xml_text(node.value if isinstance(node, Const) else value)
    if text is None:
        # An undefined value goes out as xsi:nil (onec.md §1.5 "nillable results").
        element.set(_NIL, "true")
    else:
        element.text = text


def _items(node: Each, values: Mapping[str, Any]) -> list[Any]:
    items = values.get(node.source)
    return list(items) if isinstance(items, list | tuple) else []


def _scope(values: Mapping[str, Any], item: Any) -> Mapping[str, Any]:
    """An item's values, the outer ones beneath them."""
    return {**values, **item} if isinstance(item, Mapping) else {**values, "item": item}
