"""Compiling ``fields:`` and ``filters:`` into :class:`FieldRule` and :class:`Condition`.

Every problem is recorded with its key path (so its line) and compiling goes on, so one
run of ``bridge check`` names them all. A rule with any problem is not built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, field_validator

from bridge.mapping.conditions import Condition, FilterSpec
from bridge.mapping.engine import FieldRule, Invalid, When
from bridge.mapping.errors import ValueProblem
from bridge.mapping.findings import Findings
from bridge.mapping.paths import (
    EVERY,
    MISSING,
    Path,
    PathError,
    fans_out,
    format_path,
    parse_path,
)
from bridge.mapping.transforms import (
    TRANSFORMS,
    BuildContext,
    BuildProblem,
    Sources,
    Transform,
    absent_refusal,
    known_transforms,
)
from bridge.mapping.values import key_text, yaml_value
from bridge.settings_base import Strict
from bridge.settings_loader import KeyPath
from bridge.settings_loader import format_path as format_key

RULE_KEYS = (
    "to",
    "from",
    "transform",
    "required",
    "default",
    "invalid",
    "when",
    "each",
    "filters",
)


class RuleKeys(Strict):
    """The keys every rule may have; the rest are its transform's parameters."""

    to: str
    from_: str | list[str] | None = Field(default=None, alias="from")
    transform: str | None = None
    required: bool = False
    default: Any = None
    invalid: Invalid = Invalid.ERROR
    when: When = When.ALWAYS
    each: list[Any] | None = None
    filters: list[Any] | None = None

    @field_validator("default")
    @classmethod
    def _json(cls, value: Any) -> Any:
        return yaml_value(value)


@dataclass
class _Targets:
    """Target paths of one scope; two rules must never write the same place."""

    findings: Findings
    whole: dict[Path, str] = field(default_factory=dict)  # path → rule writing it
    inner: dict[Path, str] = field(default_factory=dict)  # prefix → a rule writing inside
    kinds: dict[Path, tuple[str, str]] = field(default_factory=dict)  # prefix → list/object

    def claim(self, target: Path, at: KeyPath, label: str) -> None:
        """Record ``target``; a clash with an earlier rule is a problem at ``to``."""
        clash = self._clash(target)
        if clash:
            self.findings.add((*at, "to"), clash)
            return
        self.whole[target] = label
        for n in range(1, len(target)):
            self.inner.setdefault(target[:n], label)
            self.kinds.setdefault(target[:n], (_kind(target[n]), label))

    def _clash(self, target: Path) -> str | None:
        text = format_path(target)
        if target in self.whole:
            return f"duplicate target {text!r} (also {self.whole[target]})"
        if target in self.inner:
            return f"{text!r} is written whole here and key by key by {self.inner[target]}"
        for n in range(1, len(target)):
            prefix = target[:n]
            if prefix in self.whole:
                owner = self.whole[prefix]
                return f"{text!r} is inside {format_path(prefix)!r}, which {owner} writes whole"
            seen = self.kinds.get(prefix)
            if seen and seen[0] != _kind(target[n]):
                where = format_path(prefix)
                return f"{where!r} is used as {_kind(target[n])} here but as {seen[0]} by {seen[1]}"
        return None


def _kind(segment: object) -> str:
    return "a list" if isinstance(segment, int) else "an object"


@dataclass
class RuleCompiler:
    """Compiles the rules and filters of one file against its tables."""

    findings: Findings
    context: BuildContext

    def rules(
        self, raw: list[Any], base: KeyPath, *, in_each: bool = False
    ) -> tuple[tuple[FieldRule, ...], bool]:
        """The compiled rules of one scope, and whether any target has a list index."""
        targets = _Targets(self.findings)
        compiled: list[FieldRule] = []
        has_lists = False
        for index, item in enumerate(raw):
            at = (*base, index)
            if in_each and isinstance(item, dict) and "when" in item:
                # An item goes to the target inside its list, and the list is written whole:
                # a key left out of an item is not kept from what the target had.
                message = "`when` applies to a whole target: put it on the rule with `each`"
                self.findings.add((*at, "when"), message)
            rule, target, label = self._rule(item, at)
            if target is not None:
                targets.claim(target, at, label)
                has_lists = has_lists or any(isinstance(s, int) for s in target)
            if rule is not None:
                compiled.append(rule)
        return tuple(compiled), has_lists

    def conditions(self, raw: list[Any], base: KeyPath) -> tuple[Condition, ...]:
        """Compiled filters; ``in``/``not_in`` values must be plain values."""
        compiled = []
        for index, item in enumerate(raw):
            at = (*base, index)
            spec = self.findings.validate(FilterSpec, item, at)
            if spec is None:
                continue
            path = self._path(spec.path, (*at, "path"))
            within = self._value_set(spec.in_, (*at, "in"))
            outside = self._value_set(spec.not_in, (*at, "not_in"))
            if path is not None:
                label = format_key(at)
                compiled.append(Condition(label, path, spec.path, within, outside, spec.exists))
        return tuple(compiled)

    def _value_set(self, values: list[Any] | None, at: KeyPath) -> frozenset[str] | None:
        if values is None:
            return None
        keys = set()
        for index, value in enumerate(values):
            try:
                keys.add(key_text(value))
            except ValueProblem as exc:
                self.findings.add((*at, index), str(exc))
        return frozenset(keys)

    def _path(self, text: str, at: KeyPath) -> Path | None:
        try:
            return parse_path(text)
        except PathError as exc:
            self.findings.add(at, str(exc))
            return None

    def _target(self, text: str, at: KeyPath) -> Path | None:
        """A parsed ``to``: one place, so no ``[*]``."""
        path = self._path(text, (*at, "to"))
        if path is not None and fans_out(path):
            message = "[*] reads every item or value; a target names one place, such as [0]"
            self.findings.add((*at, "to"), message)
            return None
        return path

    def _rule(self, raw: Any, at: KeyPath) -> tuple[FieldRule | None, Path | None, str]:
        if not isinstance(raw, dict):
            self.findings.add(at, "a rule is a mapping such as {to: Number, from: number}")
            return None, None, format_key(at)
        before = len(self.findings.problems)
        keys = self.findings.validate(RuleKeys, {k: raw[k] for k in raw if k in RULE_KEYS}, at)
        params = {k: v for k, v in raw.items() if k not in RULE_KEYS}
        to = raw.get("to")
        label = f"{format_key(at)} {to}" if isinstance(to, str) else format_key(at)
        target = self._target(to, at) if isinstance(to, str) else None
        if "each" in raw:
            rule = self._each(raw, at, keys, params, label, target)
        else:
            rule = self._field(raw, at, keys, params, label, target)
        if len(self.findings.problems) > before:
            return None, target, label
        return rule, target, label

    def _field(
        self,
        raw: dict[str, Any],
        at: KeyPath,
        keys: RuleKeys | None,
        params: dict[str, Any],
        label: str,
        target: Path | None,
    ) -> FieldRule | None:
        name = raw.get("transform", "copy")
        spec = TRANSFORMS.get(name) if isinstance(name, str) else None
        if isinstance(name, str) and spec is None:
            message = f"unknown transform {name!r} (known: {known_transforms()})"
            self.findings.add((*at, "transform"), message)
        sources = self._sources(raw.get("from"), at, spec)
        if "filters" in raw:
            self.findings.add((*at, "filters"), "filters on a rule select items of `each`")
        if spec is None:
            return None
        convert = None
        absent: str | None = None
        model = self.findings.validate(spec.params, params, at, _unknown_key(spec), spec.name)
        if model is not None:
            try:
                convert = spec.build(model, self.context)
            except BuildProblem as exc:
                self.findings.add((*at, exc.key), str(exc))
            absent = absent_refusal(spec.name, model, self.context)
        if spec.sources is Sources.NONE and ("required" in raw or "default" in raw):
            self.findings.add(at, f"{spec.name} always has a value: drop required/default")
        if keys is None or target is None or sources is None or convert is None:
            return None
        return FieldRule(
            location=self.findings.location(at),
            label=label,
            target=target,
            sources=sources,
            source_text=_source_text(raw.get("from")),
            convert=convert,
            takes_missing=spec.takes_missing,
            required=keys.required,
            default=keys.default if "default" in raw else MISSING,
            invalid=keys.invalid,
            when=keys.when,
            absent_skips=absent,
            # join takes every value of a [*] path; the other transforms read one value,
            # the first such a path yields (paths.read_path).
            gathers=spec.sources is Sources.MANY and any(fans_out(p) for p in sources),
        )

    def _sources(self, raw: Any, at: KeyPath, spec: Transform | None) -> tuple[Path, ...] | None:
        """Parsed ``from``: none for const, one path, or several for join."""
        where = (*at, "from")
        if spec is not None and spec.sources is Sources.NONE:
            if raw is not None:
                self.findings.add(where, f"{spec.name} takes no `from`")
            return ()
        if raw is None:
            self.findings.add(at, "`from` is missing: the source path to read")
            return None
        if isinstance(raw, list):
            if spec is not None and spec.sources is Sources.ONE:
                self.findings.add(where, f"{spec.name} reads one path (only join takes several)")
            if not raw:
                self.findings.add(where, "`from` lists no paths")
            paths = [self._path(p, (*where, i)) for i, p in enumerate(raw) if isinstance(p, str)]
            parsed = tuple(p for p in paths if p is not None)
            return parsed if len(parsed) == len(raw) and raw else None
        path = self._path(raw, where) if isinstance(raw, str) else None
        return None if path is None else (path,)

    def _each(
        self,
        raw: dict[str, Any],
        at: KeyPath,
        keys: RuleKeys | None,
        params: dict[str, Any],
        label: str,
        target: Path | None,
    ) -> FieldRule | None:
        if "transform" in raw:
            message = "`each` maps items by its own rules: no transform"
            self.findings.add((*at, "transform"), message)
        for name in params:
            message = f"unknown key {name!r} (a rule with `each` takes {', '.join(RULE_KEYS)})"
            self.findings.add((*at, name), message)
        source = raw.get("from")
        path = None
        if source is None:
            self.findings.add(at, "`from` is missing: the path of the source list")
        elif isinstance(source, list):
            self.findings.add((*at, "from"), "`each` reads one list: give one path")
        elif isinstance(source, str):
            path = self._path(source, (*at, "from"))
        each, filters = raw.get("each"), raw.get("filters")
        sub_rules: tuple[FieldRule, ...] = ()
        has_lists = False
        if isinstance(each, list):
            if not each:
                self.findings.add((*at, "each"), "`each` lists no rules")
            sub_rules, has_lists = self.rules(each, (*at, "each"), in_each=True)
        conditions = self.conditions(filters, (*at, "filters")) if isinstance(filters, list) else ()
        if keys is None or target is None or path is None:
            return None
        return FieldRule(
            location=self.findings.location(at),
            label=label,
            target=target,
            sources=(path,),
            source_text=source if isinstance(source, str) else "",
            convert=None,
            takes_missing=False,
            required=keys.required,
            default=keys.default if "default" in raw else MISSING,
            invalid=keys.invalid,
            when=keys.when,
            each=sub_rules,
            item_filters=conditions,
            each_has_lists=has_lists,
            fan_at=path.index(EVERY) if fans_out(path) else None,
        )


def _unknown_key(spec: Transform) -> Callable[[str], str]:
    names = ", ".join(spec.params.model_fields)
    own = f"{spec.name} takes {names}" if names else f"{spec.name} takes no parameters"

    def message(name: str) -> str:
        return f"unknown key {name!r} (a rule takes {', '.join(RULE_KEYS)}; {own})"

    return message


def _source_text(raw: Any) -> str:
    if isinstance(raw, list):
        return "[" + ", ".join(str(p) for p in raw) + "]"
    return raw if isinstance(raw, str) else ""
