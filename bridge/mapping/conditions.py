"""Filters: which changes flow. Every filter must hold; the first that does not says why.

Values are compared as text (see :func:`values.key_text`), so ``in: [1]`` matches both
``1`` and ``"1"`` from the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

from pydantic import Field, model_validator

from bridge.mapping.errors import ValueProblem
from bridge.mapping.paths import MISSING, Path, read_path
from bridge.mapping.values import describe, key_text
from bridge.settings_base import Strict


class FilterSpec(Strict):
    """One entry of ``filters:``: a path and one or more conditions on its value."""

    path: str
    in_: list[Any] | None = Field(default=None, alias="in")
    not_in: list[Any] | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _has_condition(self) -> Self:
        if self.in_ is None and self.not_in is None and self.exists is None:
            raise ValueError("a filter needs one of `in`, `not_in`, `exists`")
        return self


@dataclass(frozen=True, slots=True)
class Condition:
    """A compiled filter."""

    label: str  # "filters[1]"
    path: Path
    path_text: str
    within: frozenset[str] | None
    outside: frozenset[str] | None
    exists: bool | None

    def refusal(self, document: Any) -> str | None:
        """None when the filter holds, else the reason the change does not flow."""
        value = read_path(document, self.path)
        if self.exists is not None and (value is not MISSING) is not self.exists:
            state = "absent" if self.exists else "present"
            return f"{self.label}: {self.path_text} is {state}"
        if self.within is None and self.outside is None:
            return None
        key = _key_or_none(value)
        if self.within is not None and key not in self.within:
            listed = ", ".join(repr(v) for v in sorted(self.within))
            return f"{self.label}: {self.path_text} is {describe(value)}, not one of {listed}"
        if self.outside is not None and key in self.outside:
            return f"{self.label}: {self.path_text} is {describe(value)}, excluded by not_in"
        return None


def _key_or_none(value: Any) -> str | None:
    if value is MISSING or isinstance(value, dict | list):
        return None
    try:
        return key_text(value)
    except ValueProblem:
        return None
