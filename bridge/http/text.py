"""Text from callers that must not travel further: control characters and lone surrogates.

A lone surrogate (``"\\ud800"``) is valid JSON but not UTF-8: SQLite, the log and the
answer's own encoder refuse it. A NUL or another control character in a phone or an id
would reach the 1C SOAP client, whose XML library refuses it with a ``ValueError``. Both are
refused at the HTTP boundary with the field named.
"""

from __future__ import annotations

import re
from typing import Any

from bridge.http.problems import Problem

# C0 and C1 controls, DEL, the line and paragraph separators, and surrogates.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
SURROGATE = re.compile("[\ud800-\udfff]")
MAX_DEPTH = 64  # deeper documents were already refused by the JSON reader's recursion limit


def plain_text(value: str) -> str:
    """``value`` if it holds no control character (a pydantic validator's check)."""
    if CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def surrogate_field(doc: Any, path: str = "", depth: int = 0) -> str | None:
    """The path of the first key or text in ``doc`` holding a lone surrogate, if any."""
    if depth > MAX_DEPTH:
        return None
    if isinstance(doc, str):
        return (path or "body") if SURROGATE.search(doc) else None
    if isinstance(doc, dict):
        for key, value in doc.items():
            where = f"{path}.{key}" if path else str(key)
            if SURROGATE.search(key):
                return where
            found = surrogate_field(value, where, depth + 1)
            if found is not None:
                return found
    elif isinstance(doc, list):
        for index, item in enumerate(doc):
            found = surrogate_field(item, f"{path}.{index}" if path else str(index), depth + 1)
            if found is not None:
                return found
    return None


def refuse_surrogates(doc: Any) -> None:
    """A 422 naming the field when ``doc`` holds text that is not valid UTF-8."""
    field = surrogate_field(doc)
    if field is not None:
        # The field's own name may hold the surrogate: it is shown with escapes.
        shown = field.encode("utf-8", "backslashreplace").decode()
        raise Problem(
            422,
            "invalid_request",
            f"{shown}: is not valid UTF-8 text (a lone surrogate)",
            field=shown,
        )
