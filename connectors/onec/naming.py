"""An installation's names for the reference contract (config ``systems.<name>.operations``).

An existing, hand-written 1C web service names its operations, parameters and result
fields its own way, often in Cyrillic (``ПолучитьБаланс``); ``Naming`` maps the contract's
logical names (``contract.py``) to them, and ``NamedOperation`` is one operation under those
names, what a client sends and an emulator serves. Every problem of a configured naming is
reported at once, with its place in the config.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from connectors.onec.contract import OPERATIONS, Operation, Record

# XML 1.0 (5th ed.) NameStartChar / NameChar without ':' — Cyrillic (U+0400..U+04FF) is in
# U+037F..U+1FFF, so 1C's Cyrillic identifiers are valid element and operation names.
_START = (
    r"A-Z_a-z\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u02FF\u0370-\u037D\u037F-\u1FFF\u200C-\u200D"
    r"\u2070-\u218F\u2C00-\u2FEF\u3001-\uD7FF\uF900-\uFDCF\uFDF0-\uFFFD\U00010000-\U000EFFFF"
)
_NCNAME = re.compile(rf"[{_START}][{_START}\-.0-9\u00B7\u0300-\u036F\u203F-\u2040]*")
_BAD_NAME = "is not a valid XML name (letters, digits, '_', '-', '.'; no spaces or ':')"
Problem = tuple[tuple[str, ...], str]  # (location in the config, message)


class OperationNaming(BaseModel):
    """One operation's names in an installation; whatever is left out keeps the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: str | None = None
    params: dict[str, str] = Field(default_factory=dict)  # logical parameter → element
    result: dict[str, str] = Field(default_factory=dict)  # logical field → element


@dataclass(frozen=True)
class NamedOperation:
    """One operation under an installation's names: what a client sends, an emulator serves."""

    contract: Operation
    name: str
    soap_action: str
    params: Mapping[str, str]  # logical → element, in contract order
    fields: Mapping[str, str]  # logical → element, for the result record and nested records

    def params_to_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Logical parameter values keyed by element name; unknown logical names are errors."""
        _reject_unknown(self.contract.name, "parameter", values, self.params)
        return {self.params[key]: value for key, value in values.items()}

    def params_from_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Element-named parameter values keyed by logical name; other elements are dropped."""
        return {key: values[e] for key, e in self.params.items() if e in values}

    def result_to_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """A logical result (nested items too) keyed by element names."""
        return self._rename(self.contract.result, values, outbound=True)

    def result_from_elements(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """An element-named result keyed by logical names; elements not in the contract dropped."""
        # Lenient on purpose: a hand-written 1C record may carry more than the contract needs.
        return self._rename(self.contract.result, values, outbound=False)

    def _rename(self, record: Record, values: Mapping[str, Any], outbound: bool) -> dict[str, Any]:
        if outbound:
            _reject_unknown(self.contract.name, f"{record.name} field", values, record.names)
        renamed: dict[str, Any] = {}
        for field in record.fields:
            pair = (field.name, self.fields[field.name])
            source, target = pair if outbound else pair[::-1]
            if source in values:
                value = values[source]
                if isinstance(field.type, Record) and value is not None:
                    items = value if field.repeated else [value]
                    value = [self._rename(field.type, item, outbound) for item in items]
                    value = value if field.repeated else value[0]
                renamed[target] = value
        return renamed


def valid_name(name: str) -> bool:
    """Whether ``name`` may be an XML element or operation name (Cyrillic is fine)."""
    return _NCNAME.fullmatch(name) is not None


def _reject_unknown(operation: str, what: str, values: Iterable[str], known: Iterable[str]) -> None:
    if unknown := sorted(set(values) - set(known)):
        raise ValueError(f"{operation}: unknown {what} {', '.join(unknown)}")


class Naming(BaseModel):
    """An installation's names for the contract; ``Naming()`` is the reference contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str = "BridgeLoyalty"
    # 1C takes any string as the service's "Пространство имен URI" (onec.md §1.2).
    namespace: str = "urn:bridge-loyalty:v1"
    operations: dict[str, OperationNaming] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Naming:
        # Every problem at once, each at its own location (a nested ValidationError keeps both).
        problems = list(_config_problems(self))
        if not problems:
            problems = _clashes(self.resolve_all())
        if problems:
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("naming", "{message}", {"message": message}),
                        loc=loc,
                        input=None,
                    )
                    for loc, message in problems
                ],
            )
        return self

    def resolve(self, logical: str) -> NamedOperation:
        """The logical operation ``logical`` (e.g. ``balance``) under these names."""
        contract = OPERATIONS[logical]
        own = self.operations.get(logical) or OperationNaming()
        name = own.operation or contract.soap
        params = {p.name: own.params.get(p.name, p.element) for p in contract.params}
        fields = {
            f.name: own.result.get(f.name, f.element)
            for record in contract.result.walk()
            for f in record.fields
        }
        # SOAPAction as 1C generates it: <namespace>#<Service>:<Operation> (onec.md §1.2).
        action = f"{self.namespace}#{self.service}:{name}"
        return NamedOperation(
            contract, name, action, MappingProxyType(params), MappingProxyType(fields)
        )

    def resolve_all(self) -> tuple[NamedOperation, ...]:
        """Every operation under these names, in contract order."""
        return tuple(self.resolve(logical) for logical in OPERATIONS)

    def logical_for(self, operation_name: str) -> str | None:
        """The logical operation an installation's operation name stands for, if any."""
        for named in self.resolve_all():
            if named.name == operation_name:
                return named.contract.name
        return None


def _config_problems(naming: Naming) -> Iterator[Problem]:
    if not _NCNAME.fullmatch(naming.service):
        yield ("service",), f"{naming.service!r} {_BAD_NAME}"
    if not naming.namespace or any(char.isspace() for char in naming.namespace):
        yield ("namespace",), "must be a non-empty URI without spaces"
    for logical, own in naming.operations.items():
        at = ("operations", logical)
        if (contract := OPERATIONS.get(logical)) is None:
            yield at, f"unknown operation {logical!r} (one of {', '.join(OPERATIONS)})"
            continue
        if own.operation is not None and not _NCNAME.fullmatch(own.operation):
            yield (*at, "operation"), f"{own.operation!r} {_BAD_NAME}"
        fields = [name for record in contract.result.walk() for name in record.names]
        for section, what, names, known in (
            ("params", "parameter", own.params, [p.name for p in contract.params]),
            ("result", "result field", own.result, fields),
        ):
            for key, value in names.items():
                if key not in known:
                    message = f"unknown {what} {key!r} of {logical} (one of {', '.join(known)})"
                    yield (*at, section, key), message
                elif not _NCNAME.fullmatch(value):
                    yield (*at, section, key), f"{value!r} {_BAD_NAME}"


def _clashes(named: tuple[NamedOperation, ...]) -> list[Problem]:
    problems: list[Problem] = []
    # Each operation has the wrapper elements Op and OpResponse in one schema (onec.md §1.2).
    wrappers = Counter([n.name for n in named] + [f"{n.name}Response" for n in named])
    for op in named:
        where = ("operations", op.contract.name)
        if wrappers[op.name] > 1:
            problems.append(((*where, "operation"), f"{op.name!r} clashes with another operation"))
        problems += [((*where, "params"), m) for m in _twice(op.params, op.params)]
        for record in op.contract.result.walk():
            problems += [((*where, "result"), m) for m in _twice(op.fields, record.names)]
    return problems


def _twice(names: Mapping[str, str], keys: Iterable[str]) -> Iterator[str]:
    by_element: dict[str, list[str]] = {}
    for key in keys:
        by_element.setdefault(names[key], []).append(key)
    for element, owners in by_element.items():
        if len(owners) > 1:
            yield f"{element!r} is the name of both {' and '.join(owners)}"
