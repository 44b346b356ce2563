"""Read ``config.yaml`` into :class:`Settings`, reporting every problem with file and line.

Steps: compose the YAML (keeping each node's line), substitute ``${VAR}`` and
``${VAR:-default}`` from the environment, apply ``BRIDGE__SECTION__KEY`` overrides, validate
with pydantic, then run the checks that span sections. Every step adds to one list of
problems, so an integrator sees all mistakes in one run of ``bridge check``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bridge.errors import SettingsError
from bridge.settings import Settings

ENV_PREFIX = "BRIDGE__"
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

KeyPath = tuple[str | int, ...]


@dataclass
class Finding:
    """One finding: where it is and what is wrong."""

    file: str
    line: int | None
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = format_path(self.path) or "(top level)"
        return f"{where}: {key}: {self.message}"


@dataclass
class Document:
    """A loaded YAML document: plain data plus the line of every key path."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    origins: dict[KeyPath, str] = field(default_factory=dict)

    def problem(self, path: KeyPath, message: str) -> Finding:
        """Build a problem at ``path``, pointing at the closest line we know."""
        origin = self.origins.get(path)
        if origin:
            return Finding(f"environment {origin}", None, path, message)
        probe = path
        while probe and probe not in self.lines:
            probe = probe[:-1]
        return Finding(self.file, self.lines.get(probe), path, message)


def format_path(path: KeyPath) -> str:
    """Render ``("systems", "onec", "type")`` as ``systems.onec.type`` and ints as ``[0]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load_document(path: Path) -> tuple[Document, list[Finding]]:
    """Parse a YAML file keeping lines; syntax errors and duplicate keys become problems."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return Document(name, None), [Finding(name, None, (), f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError:
        return Document(name, None), [Finding(name, None, (), "is not UTF-8 text")]
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark else None
        return Document(name, None), [Finding(name, line, (), f"YAML syntax: {exc.problem}")]
    doc = Document(name, None)
    problems: list[Finding] = []
    doc.data = _construct(node, (), doc, problems) if node is not None else {}
    return doc, problems


def _construct(node: yaml.Node, path: KeyPath, doc: Document, problems: list[Finding]) -> Any:
    doc.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
            child = (*path, key)
            if key in out:
                doc.lines[child] = key_node.start_mark.line + 1
                problems.append(doc.problem(child, "duplicate key"))
            out[key] = _construct(value_node, child, doc, problems)
            doc.lines[child] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), doc, problems) for i, item in enumerate(node.value)]
    # A scalar: the safe constructor resolves ints, bools and nulls as YAML 1.1 does.
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError as exc:  # e.g. an unknown tag such as !env
        problem = getattr(exc, "problem", None) or str(exc)
        problems.append(doc.problem(path, f"YAML: {problem}"))
        return None


def interpolate(doc: Document, env: Mapping[str, str]) -> list[Finding]:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    problems: list[Finding] = []

    def substitute(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: substitute(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [substitute(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value:
            return value

        def one(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env and env[name] != "":
                return env[name]
            if default is not None:
                return default
            problems.append(doc.problem(path, f"environment variable {name} is not set"))
            return ""

        return _VAR.sub(one, value)

    doc.data = substitute(doc.data, ())
    return problems


def apply_env_overrides(doc: Document, env: Mapping[str, str]) -> list[Finding]:
    """Apply ``BRIDGE__HTTP__PORT=9000`` style overrides; values are parsed as YAML scalars."""
    problems: list[Finding] = []
    if not isinstance(doc.data, dict):
        return problems
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(parts):
            problems.append(Finding(f"environment {name}", None, (), "empty key segment"))
            continue
        try:
            value = yaml.safe_load(env[name]) if env[name] else ""
        except yaml.YAMLError:
            value = env[name]
        node: Any = doc.data
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[parts[-1]] = value
        doc.origins[tuple(parts)] = name
    return problems


def validation_problems(doc: Document, error: ValidationError) -> list[Finding]:
    """Turn pydantic's errors into problems that name the key path and its line."""
    problems = []
    for item in error.errors(include_url=False):
        loc: KeyPath = tuple(item["loc"])
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        problems.append(doc.problem(loc, message))
    return problems


def cross_checks(doc: Document) -> list[Finding]:
    """Checks that span sections (routes must name configured systems), on the raw data.

    They run even when pydantic found problems elsewhere, so one run reports everything.
    """
    problems: list[Finding] = []
    data = _as_dict(doc.data)
    systems = _as_dict(data.get("systems"))
    routes = _as_dict(data.get("mirror")).get("routes")
    if not isinstance(routes, list):
        routes = []
    master = _as_dict(data.get("bonus")).get("master")
    if isinstance(master, str) and master not in systems:
        problems.append(doc.problem(("bonus", "master"), f"unknown system {master!r}"))
    statuses = _as_dict(_as_dict(data.get("bonus")).get("order_statuses"))
    problems.extend(
        doc.problem(("bonus", "order_statuses", system), f"unknown system {system!r}")
        for system in statuses
        if system not in systems
    )
    problems.extend(_registration_sources(doc, data, systems))
    sms = _as_dict(_as_dict(data.get("bonus")).get("sms"))
    gateway = _as_dict(sms.get("gateway")).get("type", "sandbox")
    sandbox = _as_dict(data.get("sandbox")).get("enabled") is True
    if master and sms.get("sender", "bridge") == "bridge" and gateway == "sandbox" and not sandbox:
        # The sandbox gateway only keeps texts in the store: in production no code would
        # ever reach a customer.
        where: KeyPath = ("bonus", "sms", "gateway") if "gateway" in sms else ("bonus", "master")
        problems.append(
            doc.problem(
                where,
                "the sandbox SMS gateway needs sandbox.enabled; configure bonus.sms.gateway"
                " (smsru, smsc or http) or bonus.sms.sender: master",
            )
        )
    for i, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        base: KeyPath = ("mirror", "routes", i)
        source = route.get("source")
        if isinstance(source, str) and source not in systems:
            problems.append(doc.problem((*base, "source"), f"unknown system {source!r}"))
        targets = route.get("targets")
        if not isinstance(targets, list):
            targets = []
        for j, target in enumerate(targets):
            if not isinstance(target, str):
                continue
            if target not in systems:
                problems.append(doc.problem((*base, "targets", j), f"unknown system {target!r}"))
            elif target == source:
                message = "a route cannot target its own source"
                problems.append(doc.problem((*base, "targets", j), message))
    return problems


def _registration_sources(doc: Document, data: Any, systems: Any) -> list[Finding]:
    """``customers.registration.sources`` must name configured systems."""
    sources = _as_dict(_as_dict(data.get("customers")).get("registration")).get("sources")
    found = []
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        system = _as_dict(source).get("system")
        if isinstance(system, str) and system not in systems:
            where: KeyPath = ("customers", "registration", "sources", index, "system")
            found.append(doc.problem(where, f"unknown system {system!r}"))
    return found


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass
class LoadedSettings:
    """Settings plus the document they came from (for line numbers in later checks)."""

    settings: Settings
    document: Document


def prepare_document(
    path: Path, env: Mapping[str, str] | None = None
) -> tuple[Document, list[Finding]]:
    """The file read, its ``${VAR}`` filled in and ``BRIDGE__…`` overrides applied, before
    validation; raise :class:`SettingsError` when it is not a mapping at all."""
    env = os.environ if env is None else env
    doc, problems = load_document(path)
    if doc.data is None and problems:
        raise SettingsError([str(p) for p in problems])
    if not isinstance(doc.data, dict):
        raise SettingsError([str(doc.problem((), "the file must hold a mapping of sections"))])
    problems += interpolate(doc, env) + apply_env_overrides(doc, env)
    return doc, problems


def read_settings(path: Path, env: Mapping[str, str] | None = None) -> LoadedSettings:
    """Load, interpolate, override and validate; raise :class:`SettingsError` with all problems."""
    doc, problems = prepare_document(path, env)
    settings: Settings | None = None
    try:
        settings = Settings.model_validate(doc.data)
    except ValidationError as exc:
        # A value left empty by an unset variable or a bad tag fails validation too (the
        # key or its section); only the cause is reported there.
        causes = [p.path for p in problems]
        problems += [
            p
            for p in validation_problems(doc, exc)
            if not any(c[: len(p.path)] == p.path for c in causes)
        ]
    problems += cross_checks(doc)
    if problems or settings is None:
        problems.sort(key=lambda p: (p.file, p.line or 0))
        raise SettingsError([str(p) for p in problems])
    for system in settings.systems.values():
        system.read_from(path.parent)
    return LoadedSettings(settings, doc)
