"""The reference contract (``CONTRACT.md``) as a declaration: the default when a 1C system
names no ``service``, over SOAP or the HTTP service, under an installation's ``operations``
names (``Naming``). ``examples/onec/reference/declaration.yaml`` is this, written out.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from connectors.onec.contract import OPERATIONS, ErrorCode, Record
from connectors.onec.declared.compiler import declaration_from
from connectors.onec.declared.model import Declaration
from connectors.onec.naming import NamedOperation, Naming


def reference_document(naming: Naming | None = None, transport: str = "soap") -> dict[str, Any]:
    """The reference contract's declaration as plain data (what a YAML file would hold)."""
    naming = naming or Naming()
    capabilities: dict[str, Any] = {}
    for named in naming.resolve_all():
        op = named.contract
        if transport == "soap":
            capabilities[op.name] = {
                "operation": named.name,
                "args": [{"to": named.params[p.name], "from": p.name} for p in op.params],
                # 1C wraps the result in `return` (onec.md §1.5).
                "answer": _answer(op.result, named, "return."),
            }
        else:
            capabilities[op.name] = {
                "method": "POST",
                "path": op.http_path,
                "args": [{"to": f"body.{p.name}", "from": p.name} for p in op.params],
                "answer": _answer(op.result, None, ""),
            }
    document: dict[str, Any] = {
        "version": 1,
        "description": "The bridge's reference 1C contract (connectors/onec/CONTRACT.md)",
        "transport": transport,
    }
    if transport == "soap":
        document["soap"] = {"service": naming.service, "namespace": naming.namespace}
        # A business error is a SOAP fault whose text starts with its code (CONTRACT.md).
        document["refusal"] = {"codes": _codes()}
    else:
        # {"error": {"code": "...", "message": "..."}} with a 4xx status (CONTRACT.md).
        document["refusal"] = {
            # Only the contract's codes: another 404 is the platform's (no such template).
            "when": [{"path": "error.code", "in": [code.value for code in ErrorCode]}],
            "code_at": "error.code",
            "message": "error.message",
        }
    document["capabilities"] = capabilities
    return document


def reference_declaration(naming: Naming | None = None, transport: str = "soap") -> Declaration:
    """The reference contract, compiled."""
    where = "the reference contract" + ("" if naming is None else " (renamed by operations)")
    declared = declaration_from(reference_document(naming, transport), where)
    optional = frozenset(name for name, op in OPERATIONS.items() if op.optional)
    return replace(declared, optional=optional)


def _answer(record: Record, named: NamedOperation | None, prefix: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for field in record.fields:
        element = named.fields[field.name] if named is not None else field.name
        source = f"{prefix}{element}"
        if isinstance(field.type, Record):
            each = _answer(field.type, named, "")
            rules.append({"to": field.name, "from": f"{source}[*]", "each": each})
        else:
            rules.append({"to": field.name, "from": source})
    return rules


def _codes() -> list[dict[str, str]]:
    return [{"match": f"{code.value}:", "code": code.value} for code in ErrorCode]


REFERENCE_FILE = Path(__file__).parents[3] / "examples" / "onec" / "reference" / "declaration.yaml"
_HEADER = """\
# The bridge's reference 1C contract (connectors/onec/CONTRACT.md) as a declaration: what
# the bridge uses when a 1C system names no `service`. Written out from the code by
#   python -c "from connectors.onec.declared.reference import write_reference; write_reference()"
# (a test keeps the two the same). A service that follows the contract under other names
# can start from a copy of this file.
"""


def reference_yaml(transport: str = "soap") -> str:
    """The reference declaration as YAML text (each rule on one line)."""
    body = yaml.safe_dump(
        reference_document(None, transport),
        allow_unicode=True,
        sort_keys=False,
        default_flow_style=None,
        width=100,
    )
    return _HEADER + body


def write_reference(path: Path = REFERENCE_FILE) -> None:
    """Write the reference declaration to ``path`` (examples/onec/reference/)."""
    path.write_text(reference_yaml(), encoding="utf-8")
