"""Dotted paths with list indexes (``customer.phones[0].number``): parse, read, write.

A path is parsed once, when the mapping file is loaded, into a tuple of segments (``str``
for a key, ``int`` for a list index, :data:`EVERY` for ``[*]``); reading and writing at run
time only walk tuples.

``[*]`` steps into every item of a list or every value of an object, in document order.
RetailCRM answers an order's ``payments`` as an object keyed by payment id, or ``[]`` when
there are none (PHP's ``json_encode`` of an empty array; reference/retailcrm-api.md §1.4,
§2.2), so ``payments[*].type`` reads both shapes. :func:`read_path` gives the first value
such a path yields; :func:`read_every` gives them all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import Enum
from typing import Any, Final

from bridge.errors import BridgeError


class Every(Enum):
    """The ``[*]`` step: every item of a list, or every value of an object."""

    EVERY = "*"


EVERY: Final = Every.EVERY

Segment = str | int | Every
Path = tuple[Segment, ...]


class Missing(Enum):
    """The marker for "no value here": the path does not exist or holds ``null``."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING


class PathError(BridgeError, ValueError):
    """The text is not a well-formed path; the message says where it breaks."""


def parse_path(text: str) -> Path:
    """``"items[0].offer.externalId"`` → ``("items", 0, "offer", "externalId")``."""
    if not text:
        raise PathError("empty path")
    segments: list[Segment] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == "]":
            raise PathError(f"malformed path {text!r}: ']' at position {i + 1} has no '['")
        if char == "[":
            if not segments:
                raise PathError(f"malformed path {text!r}: it must start with a key, not [")
            segment, i = _index_at(text, i)
        else:
            segment, i = _key_at(text, i + 1 if char == "." and segments else i)
        segments.append(segment)
    return tuple(segments)


def _index_at(text: str, i: int) -> tuple[Segment, int]:
    """The ``[n]`` or ``[*]`` step opening at ``i``, and where the next step starts."""
    close = text.find("]", i)
    if close < 0:
        raise PathError(f"malformed path {text!r}: '[' at position {i + 1} is not closed")
    inner = text[i + 1 : close]
    segment: Segment
    if inner == "*":
        segment = EVERY
    elif inner.isascii() and inner.isdigit():
        segment = int(inner)
    else:
        raise PathError(
            f"malformed path {text!r}: [{inner}] is not a list index (0, 1, 2 …) or [*]"
        )
    if close + 1 < len(text) and text[close + 1] not in ".[":
        raise PathError(f"malformed path {text!r}: expected '.' or '[' after ']'")
    return segment, close + 1


def _key_at(text: str, i: int) -> tuple[Segment, int]:
    """The key starting at ``i``, and where the next step starts."""
    j = i
    while j < len(text) and text[j] not in ".[]":
        j += 1
    key = text[i:j]
    if not key:
        raise PathError(f"malformed path {text!r}: empty key at position {i + 1}")
    if key != key.strip():
        raise PathError(f"malformed path {text!r}: key {key!r} has spaces around it")
    if key == "*":
        raise PathError(
            f"malformed path {text!r}: '*' is not a key; every item or value of"
            " a key is written with [*], as in payments[*].type"
        )
    return key, j


def format_path(path: Path) -> str:
    """The text form of a parsed path: ``("items", 0, "sku")`` → ``items[0].sku``."""
    out = ""
    for part in path:
        if isinstance(part, str):
            out += f".{part}" if out else part
        else:
            out += f"[{part.value if isinstance(part, Every) else part}]"
    return out


def fans_out(path: Path) -> bool:
    """Whether ``path`` has a ``[*]`` step, so it may yield several values."""
    return EVERY in path


def read_path(document: Any, path: Path) -> Any:
    """The value at ``path``, or :data:`MISSING` when any step is absent or ``null``.

    A path with ``[*]`` gives the first value it yields in document order.
    """
    node = document
    for index, part in enumerate(path):
        if isinstance(part, str):
            if isinstance(node, (dict, Mapping)):  # dict first: the common case is fast
                node = node.get(part)
            else:
                return MISSING
        elif isinstance(part, Every):
            first = next(_walk(node, path, index, ()), None)
            return MISSING if first is None else first[1]
        elif isinstance(node, list | tuple) and part < len(node):
            node = node[part]
        else:
            return MISSING
        if node is None:
            return MISSING
    return node


def read_every(document: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    """Every value ``path`` yields, in document order, each with the path it was found at.

    ``[*]`` over a list gives its items (``[0]``, ``[1]`` …), over an object its values
    (found at their keys: ``payments.17``), over anything else nothing. Absent and ``null``
    values are left out, as :func:`read_path` treats them as missing. A path without
    ``[*]`` yields its one value, if it has one.
    """
    return _walk(document, path, 0, ())


def _walk(node: Any, path: Path, start: int, where: Path) -> Iterator[tuple[Path, Any]]:
    for index in range(start, len(path)):
        part = path[index]
        if isinstance(part, Every):
            children: Iterator[tuple[Segment, Any]]
            if isinstance(node, (dict, Mapping)):
                children = ((k if isinstance(k, str) else str(k), v) for k, v in node.items())
            elif isinstance(node, list | tuple):
                children = enumerate(node)
            else:
                return
            for key, child in children:
                if child is not None:
                    yield from _walk(child, path, index + 1, (*where, key))
            return
        node = read_path(node, (part,))
        if node is MISSING:
            return
        where = (*where, part)
    yield where, node


def write_path(out: dict[Any, Any], path: Path, value: Any) -> None:
    """Set ``value`` at ``path``, creating objects on the way.

    An index segment creates an object keyed by ``int`` for now; :func:`finish_lists` turns
    those into lists once every rule has written. The rules' targets were checked for
    conflicts (and for ``[*]``, which names no one place) when the file was loaded, so
    every step on the way is an object.
    """
    node = out
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def finish_lists(node: dict[Any, Any]) -> Any:
    """Replace objects keyed by list indexes with lists, in index order, gaps closed."""
    for key, value in node.items():
        if isinstance(value, dict) and value:
            node[key] = finish_lists(value)
    indexes = sorted(k for k in node if isinstance(k, int))
    if indexes and len(indexes) == len(node):
        return [node[k] for k in indexes]
    return node
