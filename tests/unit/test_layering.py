"""The layering rules of STYLE.md, checked on the source files themselves."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_modules(path: Path) -> set[str]:
    """Top-level package names a Python file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def offenders(files: list[Path], forbidden: str) -> list[str]:
    return [str(f.relative_to(ROOT)) for f in files if forbidden in imported_modules(f)]


def test_core_never_imports_connectors() -> None:
    assert offenders(sorted((ROOT / "bridge").rglob("*.py")), "connectors") == []


def test_wire_clients_never_import_the_core() -> None:
    assert offenders(sorted((ROOT / "connectors").glob("*/client.py")), "bridge") == []


def test_production_code_never_imports_tests() -> None:
    files = sorted((ROOT / "bridge").rglob("*.py")) + sorted((ROOT / "connectors").rglob("*.py"))
    assert offenders(files, "tests") == []


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import connectors.onec\nfrom bridge.errors import BridgeError\n")
    assert imported_modules(probe) == {"connectors", "bridge"}
