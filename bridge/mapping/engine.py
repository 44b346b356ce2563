"""Applying a compiled mapping to one source document: pure, synchronous, no I/O."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path as FilePath
from typing import Any

from bridge.mapping.conditions import Condition
from bridge.mapping.errors import MappingFailed, SkipChange, UnknownValue, ValueProblem
from bridge.mapping.paths import (
    MISSING,
    Path,
    fans_out,
    finish_lists,
    format_path,
    read_every,
    read_path,
    write_path,
)
from bridge.mapping.transforms import Converter, Parts
from bridge.mapping.values import describe, json_copy


class Invalid(StrEnum):
    """What a rule does when its transform cannot convert the value."""

    ERROR = "error"  # the mapping fails (dead letter)
    OMIT = "omit"  # as if the source had no value: `default`, `required`, or left out
    KEEP = "keep"  # the source value is written unchanged


class When(StrEnum):
    """When a rule writes its target: on every write, or only when the write creates.

    The dispatcher knows the target holds the entity when the entity came from the target
    or the id map has its id there; a rule marked ``create`` is then left out of the result
    altogether (not written, so a target that edits key by key keeps what it has).
    """

    ALWAYS = "always"
    CREATE = "create"


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One compiled entry of ``fields:`` (or of an ``each:`` inside it)."""

    location: str  # "mappings/x.yaml:14"
    label: str  # "fields[3] Status"
    target: Path
    sources: tuple[Path, ...]  # none for const; several for join
    source_text: str  # "status", "[customer.firstName, customer.lastName]"
    convert: Converter | None  # None for `each`
    takes_missing: bool
    required: bool
    default: Any  # MISSING when the rule has none
    invalid: Invalid
    when: When = When.ALWAYS
    # Why an absent value stops the change (a lookup into a table with unknown: skip),
    # once neither `default` nor `required` has spoken; None: an absent value is left out.
    absent_skips: str | None = None
    each: tuple[FieldRule, ...] | None = None
    item_filters: tuple[Condition, ...] = ()
    each_has_lists: bool = False  # an `each` target uses [n]: finish_lists per item
    gathers: bool = False  # join with a [*] path: every value it yields is a part
    fan_at: int | None = None  # `each` from a [*] path: the position of its first [*]

    def read(self, document: Any) -> Any:
        """The source value (Parts for several paths), or MISSING.

        A ``[*]`` path gives its first value, except to join (every value is a part) and to
        ``each`` (the list or object its first ``[*]`` steps into; see :meth:`_items`).
        """
        if self.fan_at is not None:
            return read_path(document, self.sources[0][: self.fan_at])
        if self.gathers:
            return self._gather(document)
        if len(self.sources) == 1:
            return read_path(document, self.sources[0])
        if not self.sources:
            return MISSING
        return Parts(read_path(document, p) for p in self.sources)

    def _gather(self, document: Any) -> Any:
        parts: list[Any] = []
        for path in self.sources:
            if fans_out(path):
                parts.extend(value for _, value in read_every(document, path))
            else:
                parts.append(read_path(document, path))
        return Parts(parts) if parts else MISSING

    def fail(self, prefix: str, reason: str) -> MappingFailed:
        """The error for this rule, naming the source path (with item indexes)."""
        where = f"{prefix}{self.source_text}: " if self.source_text else ""
        return MappingFailed(self.location, self.label, where + reason)

    def value_of(self, document: Any, prefix: str) -> Any:
        """What this rule writes for ``document``, or MISSING to leave the target out."""
        raw = self.read(document)
        value = raw
        problem: ValueProblem | None = None
        if raw is not MISSING or self.takes_missing:
            try:
                value = self.convert_value(raw, prefix)
            except UnknownValue as exc:
                raise self.fail(prefix, str(exc)) from None
            except ValueProblem as exc:
                if self.invalid is Invalid.ERROR:
                    raise self.fail(prefix, str(exc)) from None
                problem = exc
                value = json_copy(raw) if self.invalid is Invalid.KEEP else MISSING
            except SkipChange as exc:
                if self.each is not None:  # a rule inside already named itself
                    raise
                where = f"{prefix}{self.source_text}: " if self.source_text else ""
                raise SkipChange(f"{self.label}: {where}{exc}") from None
        if value is MISSING:
            if self.default is not MISSING:
                return json_copy(self.default)
            if self.required:
                reason = str(problem) if problem else "required, but the source has no value"
                raise self.fail(prefix, reason)
            if self.absent_skips is not None:
                where = f"{prefix}{self.source_text}: " if self.source_text else ""
                raise SkipChange(f"{self.label}: {where}{self.absent_skips}")
        return value

    def convert_value(self, raw: Any, prefix: str) -> Any:
        """Apply the transform, or map every item for ``each``."""
        if self.each is None:
            assert self.convert is not None
            return self.convert(raw)
        items = []
        for name, where, item in self._items(raw):
            if not isinstance(item, dict | Mapping):
                raise ValueProblem(f"{name} is {describe(item)}, not an object")
            if any(c.refusal(item) for c in self.item_filters):
                continue
            out = build(self.each, item, f"{prefix}{where}.")
            items.append(finish_lists(out) if self.each_has_lists else out)
        return items

    def _items(self, raw: Any) -> Iterator[tuple[str, str, Any]]:
        """The items ``each`` maps: (name in messages, source path of the item, item).

        Without ``[*]`` the source must be a list. With it, ``raw`` is the list or object
        the first ``[*]`` steps into, and the items are every value the rest of the path
        yields from there, in document order (``payments[*]`` of ``{"17": {…}}`` or ``[]``).
        """
        if self.fan_at is None:
            if isinstance(raw, dict | Mapping):
                hint = f"write {self.source_text}[*] to map its values"
                raise ValueProblem(f"an object, not a list ({hint})")
            if not isinstance(raw, list | tuple):
                raise ValueProblem(f"{describe(raw)}, not a list")
            for index, item in enumerate(raw):
                yield f"[{index}]", f"{self.source_text}[{index}]", item
            return
        if not isinstance(raw, list | tuple | dict | Mapping):
            raise ValueProblem(f"{describe(raw)}, not a list or an object")
        source = self.sources[0]
        base = source[: self.fan_at]
        for found, item in read_every(raw, source[self.fan_at :]):
            where = format_path(base + found)
            yield where, where, item


def build(rules: tuple[FieldRule, ...], document: Any, prefix: str = "") -> dict[Any, Any]:
    """The target object ``rules`` make of ``document`` (before list targets are finished)."""
    out: dict[Any, Any] = {}
    for rule in rules:
        value = rule.value_of(document, prefix)
        if value is not MISSING:
            write_path(out, rule.target, value)
    return out


@dataclass(frozen=True, slots=True)
class MapResult:
    """A mapped document, or why the change does not flow (``skipped``)."""

    document: dict[str, Any] | None
    skipped: str | None = None


@dataclass(frozen=True)
class FlowMapping:
    """A loaded mapping file: ``source``'s ``entity`` in ``target``'s shape."""

    path: FilePath
    version: int
    source: str
    entity: str
    target: str
    description: str | None
    filters: tuple[Condition, ...]
    rules: tuple[FieldRule, ...]
    has_lists: bool = False  # a top-level target uses [n]

    def apply(self, document: Mapping[str, Any], *, creating: bool = True) -> MapResult:
        """Map one source document; raises :class:`MappingFailed` naming rule and value.

        ``creating`` False: the target already holds the entity, so the rules marked
        ``when: create`` are left out (not read, not written; filters still apply)."""
        if not isinstance(document, dict | Mapping):
            raise MappingFailed(str(self.path), "(document)", "the source must be an object")
        for condition in self.filters:
            reason = condition.refusal(document)
            if reason is not None:
                return MapResult(None, reason)
        try:
            out = build(self.rules_for(creating=creating), document)
        except SkipChange as exc:
            return MapResult(None, str(exc))
        except RecursionError:  # copying a source nested hundreds deep
            raise MappingFailed(str(self.path), "(document)", "nested too deeply") from None
        return MapResult(finish_lists(out) if self.has_lists else out)

    def rules_for(self, *, creating: bool) -> tuple[FieldRule, ...]:
        """The top-level rules of a write that creates the entity, or of one that edits it."""
        if creating:
            return self.rules
        return tuple(rule for rule in self.rules if rule.when is When.ALWAYS)
