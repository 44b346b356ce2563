"""Dotted paths with list indexes (``customer.phones[0].number``): parse, read, write.

A path is parsed once, when the mapping file is loaded, into a tuple of segments (``str``
for a key, ``int`` for a list index); reading and writing at run time only walk tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any, Final

Segment = str | int
Path = tuple[Segment, ...]


class Missing(Enum):
    """The marker for "no value here": the path does not exist or holds ``null``."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING


class PathError(ValueError):
    """The text is not a well-formed path; the message says where it breaks."""


def parse_path(text: str) -> Path:
    """``"items[0].offer.externalId"`` → ``("items", 0, "offer", "externalId")``."""
    if not text:
        raise PathError("empty path")
    segments: list[Segment] = []
    i, end = 0, len(text)
    while i < end:
        char = text[i]
        if char == "[":
            if not segments:
                raise PathError(f"malformed path {text!r}: it must start with a key, not [")
            close = text.find("]", i)
            if close < 0:
                raise PathError(f"malformed path {text!r}: '[' at position {i + 1} is not closed")
            inner = text[i + 1 : close]
            if not (inner.isascii() and inner.isdigit()):
                raise PathError(
                    f"malformed path {text!r}: [{inner}] is not a list index (0, 1, 2 …)"
                )
            segments.append(int(inner))
            i = close + 1
            if i < end and text[i] not in ".[":
                raise PathError(f"malformed path {text!r}: expected '.' or '[' after ']'")
        elif char == "]":
            raise PathError(f"malformed path {text!r}: ']' at position {i + 1} has no '['")
        else:
            if char == "." and segments:
                i += 1
            j = i
            while j < end and text[j] not in ".[]":
                j += 1
            key = text[i:j]
            if not key:
                raise PathError(f"malformed path {text!r}: empty key at position {i + 1}")
            if key != key.strip():
                raise PathError(f"malformed path {text!r}: key {key!r} has spaces around it")
            segments.append(key)
            i = j
    return tuple(segments)


def format_path(path: Path) -> str:
    """The text form of a parsed path: ``("items", 0, "sku")`` → ``items[0].sku``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def read_path(document: Any, path: Path) -> Any:
    """The value at ``path``, or :data:`MISSING` when any step is absent or ``null``."""
    node = document
    for part in path:
        if isinstance(part, str):
            if isinstance(node, (dict, Mapping)):  # dict first: the common case is fast
                node = node.get(part)
            else:
                return MISSING
        elif isinstance(node, list | tuple) and part < len(node):
            node = node[part]
        else:
            return MISSING
        if node is None:
            return MISSING
    return node


def write_path(out: dict[Any, Any], path: Path, value: Any) -> None:
    """Set ``value`` at ``path``, creating objects on the way.

    An index segment creates an object keyed by ``int`` for now; :func:`finish_lists` turns
    those into lists once every rule has written. The rules' targets were checked for
    conflicts when the file was loaded, so every step on the way is an object.
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
