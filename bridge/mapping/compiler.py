"""From a YAML document to a :class:`FlowMapping`, or to every problem in the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from bridge.mapping.conditions import Condition
from bridge.mapping.engine import FieldRule, FlowMapping
from bridge.mapping.findings import Findings
from bridge.mapping.rules import RuleCompiler
from bridge.mapping.tables import Table, TableSpec, table_problems
from bridge.mapping.transforms import BuildContext
from bridge.settings import SYSTEM_NAME
from bridge.settings_base import Strict
from bridge.settings_loader import Document, Finding

SUPPORTED_VERSION = 1
TOP_KEYS = ("version", "source", "entity", "target", "description", "tables", "filters", "fields")


class FileSpec(Strict):
    """The top level of a mapping file; tables, filters and fields are checked one by one."""

    version: int
    source: str
    # RetailCRM keeps corporate (B2B) customers apart from people (customers-corporate).
    entity: Literal["order", "customer", "corporate_customer"]
    target: str
    description: str | None = None
    tables: dict[str, Any] = Field(default_factory=dict)
    filters: list[Any] = Field(default_factory=list)
    fields: list[Any] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _supported(cls, value: int) -> int:
        if value != SUPPORTED_VERSION:
            raise ValueError(
                f"unsupported version {value} (this bridge reads version {SUPPORTED_VERSION})"
            )
        return value

    @field_validator("source", "target")
    @classmethod
    def _system(cls, value: str) -> str:
        if not SYSTEM_NAME.match(value):
            raise ValueError("must be a system name as in config.yaml, such as retailcrm")
        return value


@dataclass(frozen=True)
class Compiled:
    """The outcome of reading one file: the mapping when there were no problems.

    ``source``, ``entity`` and ``target`` are what the file says even when it has problems
    elsewhere, so ``bridge check`` can still compare them with the route naming the file.
    """

    mapping: FlowMapping | None
    source: str | None
    entity: str | None
    target: str | None
    problems: list[Finding]


def compile_document(document: Document, path: Path) -> Compiled:
    """Validate and compile a loaded document; every problem is reported, none raised."""
    findings = Findings(document)
    data = document.data
    if not isinstance(data, dict):
        findings.add((), "the file must hold a mapping: version, source, entity, target, fields")
        return Compiled(None, None, None, None, findings.problems)
    spec = findings.validate(FileSpec, data, (), _unknown_top_key)
    raw_tables = data.get("tables") if isinstance(data.get("tables"), dict) else {}
    assert isinstance(raw_tables, dict)
    tables = table_map(raw_tables, findings)
    compiler = RuleCompiler(findings, BuildContext(tables, frozenset(raw_tables)))
    filters: tuple[Condition, ...] = ()
    if isinstance(data.get("filters"), list):
        filters = compiler.conditions(data["filters"], ("filters",))
    rules: tuple[FieldRule, ...] = ()
    has_lists = False
    if isinstance(data.get("fields"), list):
        rules, has_lists = compiler.rules(data["fields"], ("fields",))
    if spec is not None:
        _check_names(spec, path, findings)
    source, entity, target = (_text(data.get(k)) for k in ("source", "entity", "target"))
    if findings.problems or spec is None:
        return Compiled(None, source, entity, target, findings.problems)
    mapping = FlowMapping(
        path=path,
        version=spec.version,
        source=spec.source,
        entity=spec.entity,
        target=spec.target,
        description=spec.description,
        filters=filters,
        rules=rules,
        has_lists=has_lists,
    )
    return Compiled(mapping, source, entity, target, [])


def table_map(raw: dict[str, Any], findings: Findings) -> dict[str, Table]:
    """The valid tables of ``tables:``; each problem of the others is added to ``findings``."""
    tables = {}
    for name, body in raw.items():
        spec = findings.validate(TableSpec, body, ("tables", name))
        if spec is None:
            continue
        problems = table_problems(spec)
        for key, message in problems:
            findings.add(("tables", name, key), message)
        if not problems:
            tables[name] = Table.from_spec(name, spec)
    return tables


def _check_names(spec: FileSpec, path: Path, findings: Findings) -> None:
    """PRODUCT 4.4: one file per flow, named ``<source>_<entity>_to_<target>.yaml``."""
    if spec.source == spec.target:
        findings.add(("target",), "a mapping cannot target its own source")
    expected = f"{spec.source}_{spec.entity}_to_{spec.target}"
    if path.stem != expected or path.suffix not in (".yaml", ".yml"):
        findings.add(
            ("source",),
            f"the file is named {path.name!r}, but its source, entity and target make it"
            f" {expected}.yaml (<source>_<entity>_to_<target>.yaml)",
        )


def _unknown_top_key(name: str) -> str:
    return f"unknown key {name!r} (a mapping file has {', '.join(TOP_KEYS)})"


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
