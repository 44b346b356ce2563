"""An existing 1C service described by declaration (``connectors/onec/DECLARATION.md``):
which operation serves each of the bridge's capabilities, how its arguments are filled and
its answer read, how it refuses. The reference contract is one such declaration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.onec.declared.compiler import (
    DeclarationError,
    declaration_from,
    load_declaration,
)
from connectors.onec.declared.model import Declaration
from connectors.onec.declared.reference import reference_declaration
from connectors.onec.naming import Naming


def declaration_for(
    service: str | dict[str, Any] | None,
    naming: Naming,
    transport: str,
    config_dir: Path,
) -> Declaration:
    """The declaration a 1C system's options give: a file, inline, or the reference
    contract under ``naming``; DeclarationError listing every problem."""
    if service is None:
        return reference_declaration(None if naming == Naming() else naming, transport)
    if isinstance(service, dict):
        declared = declaration_from(service, "options.service", ("service",))
    else:
        path = Path(service)
        declared = load_declaration(path if path.is_absolute() else config_dir / path)
    if declared.transport != transport:
        raise DeclarationError(
            [
                f"{declared.source}: transport: the service is {declared.transport}, but the"
                f" options say transport {transport!r}"
            ]
        )
    return declared


__all__ = ["Declaration", "DeclarationError", "declaration_for"]
