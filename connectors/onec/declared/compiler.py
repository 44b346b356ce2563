"""From a declaration's YAML to a :class:`Declaration`, or to every problem in it, each as
``file:line: key.path: message`` (the mapping files' loader and rule compiler, reused).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bridge.mapping.compiler import table_map
from bridge.mapping.engine import FieldRule
from bridge.mapping.findings import Findings
from bridge.mapping.paths import EVERY, PathError, parse_path
from bridge.mapping.rules import RuleCompiler
from bridge.mapping.transforms import BuildContext
from bridge.settings_loader import Document, Finding, KeyPath, load_document
from connectors.onec.declared.model import Declaration, Declared, Refusal, When
from connectors.onec.declared.spec import (
    PLACEHOLDER,
    CapabilitySpec,
    DeclarationSpec,
    RefusalSpec,
    unknown_top_key,
)
from connectors.onec.declared.vocabulary import CAPABILITIES, DONE_BY_1C, known_capabilities
from connectors.onec.naming import valid_name

_HTTP_PLACES = ("path", "query", "body")


class DeclarationError(Exception):
    """A declaration with problems; ``problems`` lists each as ``file:line: key: message``.
    ``located``: for one given inline in the options, each as (key path under the options,
    message), so ``bridge check`` names its line in config.yaml."""

    def __init__(
        self, problems: list[str], located: list[tuple[KeyPath, str]] | None = None
    ) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
        self.located = located or []
        self.findings: list[Finding] = []


def load_declaration(path: Path) -> Declaration:
    """The declaration in ``path``; raises :class:`DeclarationError` listing every problem."""
    document, problems = load_document(path)
    return _compiled(document, problems, str(path))


def declaration_from(data: Any, where: str, at: KeyPath = ()) -> Declaration:
    """A declaration given inline (in config.yaml); ``where`` names its place there, ``at``
    is its key path under the options (for problems located in config.yaml)."""
    try:
        return _compiled(Document(where, data), [], where)
    except DeclarationError as exc:
        if at:
            exc.located = [(at + p.path, p.message) for p in exc.findings]
        raise


def _compiled(document: Document, problems: list[Finding], source: str) -> Declaration:
    if document.data is None and problems:
        raise DeclarationError([str(p) for p in problems])
    findings = Findings(document)
    findings.problems.extend(problems)
    declared = _compile(document.data, findings, source)
    if findings.problems or declared is None:
        ordered = sorted(findings.problems, key=lambda p: p.line or 0)
        error = DeclarationError([str(p) for p in ordered])
        error.findings = ordered
        raise error
    return declared


def _compile(data: Any, findings: Findings, source: str) -> Declaration | None:
    if not isinstance(data, dict):
        findings.add((), "a declaration is a mapping: version, transport, capabilities")
        return None
    spec = findings.validate(DeclarationSpec, data, (), unknown_top_key)
    raw_tables = data.get("tables") if isinstance(data.get("tables"), dict) else {}
    assert isinstance(raw_tables, dict)
    tables = table_map(raw_tables, findings)
    compiler = RuleCompiler(findings, BuildContext(tables, frozenset(raw_tables)))
    transport = "http" if data.get("transport") == "http" else "soap"
    default = _refusal(data.get("refusal"), findings, ("refusal",), compiler)
    capabilities: dict[str, Declared] = {}
    raw = data.get("capabilities")
    for name, body in (raw if isinstance(raw, dict) else {}).items():
        at: KeyPath = ("capabilities", name)
        one = _capability(str(name), body, at, transport, findings, compiler)
        if one is not None:
            capabilities[one.name] = one
    if spec is None:
        return None
    if spec.customer is not None and "find_customer" in capabilities:
        message = "`customer` keys a service without find_customer; this one declares it"
        findings.add(("customer",), message)
    return Declaration(
        source=source,
        transport=spec.transport,
        service=spec.soap.service if spec.soap else None,
        namespace=spec.soap.namespace if spec.soap else None,
        timezone=zoneinfo.ZoneInfo(spec.timezone),
        customer=spec.customer,
        refusal=default,
        capabilities=capabilities,
    )


def _capability(
    name: str,
    body: Any,
    at: KeyPath,
    transport: str,
    findings: Findings,
    compiler: RuleCompiler,
) -> Declared | None:
    known = CAPABILITIES.get(name)
    if known is None:
        findings.add(at, f"unknown capability {name!r} (one of {known_capabilities()})")
        return None
    spec = findings.validate(CapabilitySpec, body, at)
    if spec is None:
        return None
    if spec.done_by_1c is not None:
        return _done_by_1c(name, spec, at, findings)
    _where(spec, at, transport, findings)
    args, _ = compiler.rules(spec.args, (*at, "args"))
    answer, _ = compiler.rules(spec.answer, (*at, "answer"))
    if isinstance(body, dict):
        _check_args(body.get("args"), known.request, spec, at, transport, findings)
        _check_answer(body.get("answer"), known.answer, at, findings)
        _check_needs(body.get("answer"), known.needs, at, findings)
    refusal = _refusal(body.get("refusal"), findings, (*at, "refusal"), compiler)
    return Declared(
        name=name,
        operation=spec.operation,
        method=spec.method,
        path=spec.path,
        args=args,
        answer=answer,
        refusal=refusal,
        reads=frozenset(_first_segments(spec.args, "from")),
    )


def _done_by_1c(name: str, spec: CapabilitySpec, at: KeyPath, findings: Findings) -> Declared:
    allowed = DONE_BY_1C.get(name, ())
    if spec.done_by_1c not in allowed:
        what = f"one of {', '.join(allowed)}" if allowed else "not possible for this capability"
        findings.add((*at, "done_by_1c"), f"{spec.done_by_1c!r}: {what}")
    others = spec.model_fields_set - {"done_by_1c"}
    if others:
        dropped = ", ".join(sorted(others))
        findings.add(at, f"done_by_1c: 1C does it itself; drop {dropped} (nothing is called)")
    return Declared(name=name, done_by_1c=spec.done_by_1c)


def _where(spec: CapabilitySpec, at: KeyPath, transport: str, findings: Findings) -> None:
    if transport == "soap":
        if spec.operation is None:
            findings.add(at, "a SOAP capability needs `operation` (its name in the WSDL)")
        elif not valid_name(spec.operation):
            findings.add((*at, "operation"), f"{spec.operation!r} is not a valid XML name")
        for key in ("method", "path"):
            if key in spec.model_fields_set:
                findings.add((*at, key), f"`{key}` is for the HTTP service; this one is SOAP")
        return
    if spec.operation is not None:
        findings.add((*at, "operation"), "`operation` is for SOAP; an HTTP one has method, path")
    if spec.method is None or spec.path is None:
        findings.add(at, "an HTTP capability needs `method` and `path` (under the service root)")
    elif not spec.path.startswith("/"):
        findings.add((*at, "path"), "starts with / (under the service's root URL)")


def _check_args(
    raw: Any,
    request: tuple[str, ...],
    spec: CapabilitySpec,
    at: KeyPath,
    transport: str,
    findings: Findings,
) -> None:
    if not isinstance(raw, list):
        return
    filled: set[str] = set()
    for index, rule in enumerate(raw):
        if not isinstance(rule, dict):
            continue
        for source in _paths(rule.get("from")):
            if source not in request:
                message = f"{source!r} is not in {at[-1]}'s request (it has {', '.join(request)})"
                findings.add((*at, "args", index, "from"), message)
        target = _path(rule.get("to"))
        if transport == "http" and target:
            place = target[0]
            if place not in _HTTP_PLACES or (place in ("path", "query") and len(target) != 2):
                message = "an HTTP argument goes to path.<name>, query.<name> or body[.<path>]"
                findings.add((*at, "args", index, "to"), message)
            elif place == "path":
                filled.add(str(target[1]))
    if transport == "http" and spec.path is not None:
        wanted = set(PLACEHOLDER.findall(spec.path))
        for name in sorted(wanted - filled):
            findings.add((*at, "path"), f"{{{name}}} is filled by no argument (to: path.{name})")
        for name in sorted(filled - wanted):
            findings.add((*at, "args"), f"path.{name}: the path has no {{{name}}}")


def _check_answer(raw: Any, fields: tuple[str, ...], at: KeyPath, findings: Findings) -> None:
    for index, rule in enumerate(raw if isinstance(raw, list) else []):
        target = _path(rule.get("to")) if isinstance(rule, dict) else None
        if target and target[0] not in fields:
            message = f"{target[0]!r} is not in {at[-1]}'s answer (it has {', '.join(fields)})"
            findings.add((*at, "answer", index, "to"), message)


def _check_needs(raw: Any, needs: tuple[str, ...], at: KeyPath, findings: Findings) -> None:
    """An answer must give what the bridge cannot do without (find_customer: the id)."""
    given = {
        target[0]
        for rule in (raw if isinstance(raw, list) else [])
        if isinstance(rule, dict) and (target := _path(rule.get("to")))
    }
    for need in needs:  # "balance|available": one of them will do
        choices = need.split("|")
        if not given.intersection(choices):
            wanted = " or ".join(choices)
            findings.add(
                (*at, "answer"), f"{at[-1]} must give {wanted} (a rule `to: {choices[0]}`)"
            )


def _refusal(raw: Any, findings: Findings, at: KeyPath, compiler: RuleCompiler) -> Refusal | None:
    if raw is None:
        return None
    spec = findings.validate(RefusalSpec, raw, at)
    if spec is None:
        return None
    whens = []
    for index, when in enumerate(spec.when):
        path = _checked_path(when.path, (*at, "when", index, "path"), findings)
        among = tuple(when.in_ or ())
        whens.append(When(path, when.equals, when.exists, frozenset(when.status or ()), among))
    return Refusal(
        when=tuple(whens),
        message=_checked_path(spec.message, (*at, "message"), findings),
        code_at=_checked_path(spec.code_at, (*at, "code_at"), findings),
        codes=tuple((m.match.casefold(), m.code) for m in spec.codes),
        code=spec.code,
    )


def _checked_path(text: str | None, at: KeyPath, findings: Findings) -> tuple[Any, ...] | None:
    if text is None:
        return None
    try:
        path = parse_path(text)
    except PathError as exc:
        findings.add(at, str(exc))
        return None
    if EVERY in path:
        findings.add(at, "[*] reads every item; name one place, such as [0]")
    return path


def _path(text: Any) -> tuple[Any, ...] | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_path(text)
    except PathError:
        return None  # the rule compiler reports it


def _paths(raw: Any) -> Iterable[str]:
    for text in raw if isinstance(raw, list) else [raw]:
        path = _path(text)
        if path and isinstance(path[0], str):
            yield path[0]


def _first_segments(rules: list[Any], key: str) -> Iterable[str]:
    for rule in rules:
        if isinstance(rule, dict):
            yield from _paths(rule.get(key))


__all__ = ["DeclarationError", "FieldRule", "declaration_from", "load_declaration"]
