"""Value tables: ``new → Новый``, with a rule for values the table does not list."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import field_validator

from bridge.mapping.errors import SkipChange, UnknownValue
from bridge.mapping.values import describe, json_copy, key_text, yaml_value
from bridge.settings_base import Strict


class Unknown(StrEnum):
    """What a table does with a value it does not list."""

    ERROR = "error"  # the mapping fails: the delivery is dead-lettered
    SKIP = "skip"  # the whole change does not flow (the result is "skipped")
    KEEP = "keep"  # the source value is written unchanged
    DEFAULT = "default"  # the table's ``default`` is written


class TableSpec(Strict):
    """One entry of ``tables:`` as written in the file."""

    values: dict[str, Any]
    unknown: Unknown = Unknown.ERROR
    default: Any = None

    @field_validator("values", "default")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return yaml_value(value)


def table_problems(spec: TableSpec) -> list[tuple[str, str]]:
    """(key, message) for combinations pydantic does not see: ``unknown: default`` needs one."""
    given = "default" in spec.model_fields_set
    if spec.unknown is Unknown.DEFAULT and not given:
        return [("unknown", "unknown: default needs a `default` value in the table")]
    if given and spec.unknown is not Unknown.DEFAULT:
        return [("default", f"`default` is only used with unknown: default (not {spec.unknown})")]
    return []


@dataclass(frozen=True, slots=True)
class Table:
    """A compiled value table."""

    name: str
    values: dict[str, Any]
    unknown: Unknown
    default: Any

    @classmethod
    def from_spec(cls, name: str, spec: TableSpec) -> Table:
        """Compile a validated table."""
        return cls(name, dict(spec.values), spec.unknown, spec.default)

    def look_up(self, value: Any) -> Any:
        """The table's value for ``value``, or what its ``unknown`` rule says."""
        key = key_text(value)
        if key in self.values:
            return json_copy(self.values[key])
        if self.unknown is Unknown.KEEP:
            return json_copy(value)
        if self.unknown is Unknown.DEFAULT:
            return json_copy(self.default)
        message = f"{describe(value)} is not in table {self.name!r}"
        if self.unknown is Unknown.SKIP:
            raise SkipChange(f"{message} (unknown: skip)")
        raise UnknownValue(message)
