"""A compiled declaration: which 1C operation serves each capability, how its arguments are
filled from the bridge's request, how its answer maps back, and how a refusal looks.

Pure: no I/O. ``calls.py`` runs a capability over the wire with these pieces.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from bridge.mapping.engine import FieldRule, build
from bridge.mapping.errors import MappingFailed, SkipChange
from bridge.mapping.paths import MISSING, Path, read_path, write_path
from bridge.mapping.values import json_copy
from connectors.onec.values import OnecBadValue, read_bool, read_decimal


@dataclass(frozen=True, slots=True)
class When:
    """One condition that makes an answer a refusal."""

    path: Path | None
    equals: Any
    exists: bool | None
    status: frozenset[int]
    among: tuple[Any, ...] = ()  # `in`: any of these

    def holds(self, document: Any, status: int) -> bool:
        """Whether the answer (its document and HTTP status) meets this condition."""
        if self.status:
            return status in self.status
        if self.path is None:
            return False
        value = read_path(document, self.path)
        if self.exists is not None:
            return (value is not MISSING) is self.exists
        if value is MISSING:
            return False
        if self.among:
            return any(_same(value, one) for one in self.among)
        return _same(value, self.equals)


def _same(value: Any, expected: Any) -> bool:
    """``value`` as 1C wrote it against the declared ``expected``: a flag in any of 1C's
    spellings (``Ложь``, ``false``, ``0``), a number in any of its number spellings."""
    try:
        if isinstance(expected, bool):
            return read_bool(value, "") is expected
        if isinstance(expected, int | float | Decimal):
            return read_decimal(value, "") == Decimal(str(expected))
    except OnecBadValue:
        return False
    return str(value).strip() == str(expected)


@dataclass(frozen=True)
class Refusal:
    """How a service says "no" inside an ordinary answer, and which refusal each "no" is."""

    when: tuple[When, ...]
    message: Path | None
    code_at: Path | None
    codes: tuple[tuple[str, str], ...]  # (casefolded fragment, refusal code)
    code: str

    def of_answer(
        self, document: Any, status: int, known: frozenset[str]
    ) -> tuple[str, str] | None:
        """(code, message) when this answer is a refusal, else None."""
        if not any(when.holds(document, status) for when in self.when):
            return None
        text = _text(read_path(document, self.message)) if self.message else ""
        given = _text(read_path(document, self.code_at)) if self.code_at else ""
        if given in known:
            return given, text or given
        code = self.matching(f"{given} {text}") or self.code
        return code, text or given or "refused"

    def matching(self, text: str) -> str | None:
        """The refusal code the first fragment found in ``text`` names, if any."""
        folded = text.casefold()
        return next((code for fragment, code in self.codes if fragment in folded), None)


def _text(value: Any) -> str:
    return "" if value is MISSING or value is None else str(value).strip()


@dataclass(frozen=True)
class Declared:
    """One declared capability: an operation (SOAP) or a route (HTTP), or done by 1C."""

    name: str
    operation: str | None = None
    method: str | None = None
    path: str | None = None
    args: tuple[FieldRule, ...] = ()
    answer: tuple[FieldRule, ...] = ()
    refusal: Refusal | None = None
    done_by_1c: str | None = None
    reads: frozenset[str] = frozenset()  # request fields its arguments read

    @property
    def label(self) -> str:
        """How messages name what serves it: the operation, or ``GET /path``."""
        if self.done_by_1c is not None:
            return f"done by 1C ({self.done_by_1c})"
        return self.operation or f"{self.method} {self.path}"

    def arguments(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The call's arguments from the bridge's request; ValueError naming the rule."""
        if self._args_copied is not None:
            return _copy(self._args_copied, request)
        try:
            return build(self.args, request)
        except (MappingFailed, SkipChange) as exc:
            raise ValueError(f"{self.label}: an argument cannot be filled: {exc}") from None

    def record(self, document: Any) -> dict[str, Any]:
        """The answer's logical record; OnecBadValue naming the rule that failed."""
        if self._answer_copied is not None:
            return _copy(self._answer_copied, document)
        try:
            return build(self.answer, document)
        except (MappingFailed, SkipChange) as exc:
            raise OnecBadValue("answer", str(exc), self.label) from None

    @cached_property
    def _args_copied(self) -> tuple[tuple[Path, Path], ...] | None:
        return _plain_copies(self.args)

    @cached_property
    def _answer_copied(self) -> tuple[tuple[Path, Path], ...] | None:
        return _plain_copies(self.answer)


_ATOMS = frozenset({str, int, float, bool, Decimal, datetime, date})


def _plain_copies(rules: tuple[FieldRule, ...]) -> tuple[tuple[Path, Path], ...] | None:
    """(source, target) of each rule when every one is a plain copy, else None.

    A plain copy (one source path, no transform, no default, not required, nothing that
    skips) can neither fail nor skip: ``FieldRule.value_of`` writes ``json_copy`` of the
    value read, or nothing when it is absent. The reference contract is all plain copies,
    and ``build`` spends most of a balance call's mapping time on the checks around them
    (bench/onec_calls.py).
    """
    pairs = []
    for rule in rules:
        plain = (
            rule.each is None
            and rule.convert is json_copy
            and len(rule.sources) == 1
            and rule.fan_at is None
            and not rule.gathers
            and not rule.takes_missing
            and rule.default is MISSING
            and not rule.required
            and rule.absent_skips is None
        )
        if not plain:
            return None
        pairs.append((rule.sources[0], rule.target))
    return tuple(pairs)


def _copy(pairs: tuple[tuple[Path, Path], ...], document: Any) -> dict[str, Any]:
    """What ``build`` makes of ``document`` with plain copies only (``_plain_copies``)."""
    out: dict[str, Any] = {}
    for source, target in pairs:
        value = read_path(document, source)
        if value is not MISSING:
            # json_copy returns these as they are; asking their type is cheaper than its
            # isinstance(value, Mapping), an ABC check.
            write_path(out, target, value if type(value) in _ATOMS else json_copy(value))
    return out


@dataclass(frozen=True)
class Declaration:
    """A service as declared: transport, names, time zone, and its capabilities."""

    source: str  # the file, or where in config.yaml
    transport: str
    service: str | None
    namespace: str | None
    timezone: ZoneInfo
    customer: str | None  # phone | card keys a service without find_customer
    refusal: Refusal | None
    capabilities: Mapping[str, Declared] = field(default_factory=dict)
    # Declared but allowed to be missing from the service: the reference contract's
    # mirroring and listing operations, which a 1C published before them lacks.
    optional: frozenset[str] = frozenset()

    def calls(self, capability: str) -> Declared | None:
        """The operation serving ``capability``, if one is declared (not done by 1C)."""
        found = self.capabilities.get(capability)
        return found if found is not None and found.done_by_1c is None else None

    def done_by_1c(self, capability: str) -> str | None:
        """How 1C does ``capability`` itself (``at_sale``), if so declared."""
        found = self.capabilities.get(capability)
        return None if found is None else found.done_by_1c

    def refusal_of(self, declared: Declared) -> Refusal | None:
        """A capability's own refusal rule, else the service's."""
        return declared.refusal or self.refusal
