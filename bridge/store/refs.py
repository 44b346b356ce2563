"""Public ids (``evt_12``, ``dlv_7``) and their parsing."""

from __future__ import annotations

from bridge.errors import NotFound


def parse_ref(ref: str, prefix: str) -> int:
    """``evt_12`` (or a bare ``12``) → 12; anything else raises NotFound naming the input."""
    text = ref.strip()
    if text.startswith(f"{prefix}_"):
        text = text[len(prefix) + 1 :]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound(f"{ref!r} is not a valid {prefix}_<number> id")
    return int(text)
