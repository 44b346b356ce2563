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


def dotted_imports(path: Path) -> set[str]:
    """Full module names a Python file imports (absolute imports only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


# What an emulator may share with its connector: the contract the real system publishes
# (1C's reference contract, an installation's names for it, the WSDL), never the code the
# emulator is there to test.
SHARED_WITH_EMULATOR = {"contract", "naming", "wsdl"}


def emulator_files() -> list[Path]:
    """Every emulator module: each connector's emulator/ package and the shared _emulator/."""
    folders = [*sorted((ROOT / "connectors").glob("*/emulator")), ROOT / "connectors/_emulator"]
    return [f for folder in folders for f in sorted(folder.rglob("*.py"))]


def test_every_connector_keeps_its_emulator_in_one_package() -> None:
    loose = sorted((ROOT / "connectors").glob("*/emulator*.py"))
    assert [str(f.relative_to(ROOT)) for f in loose] == []
    assert len(emulator_files()) > 3


def test_emulators_are_not_built_from_the_connector_they_test() -> None:
    wrong = []
    for path in emulator_files():
        system = path.relative_to(ROOT / "connectors").parts[0]
        for module in dotted_imports(path):
            parts = module.split(".")
            if parts[0] == "bridge":
                wrong.append(f"{path.relative_to(ROOT)}: {module}")
            elif parts[0] == "connectors" and len(parts) > 2 and parts[1] != "_emulator":
                own_emulator = parts[1] == system and parts[2] == "emulator"
                if not own_emulator and parts[2] not in SHARED_WITH_EMULATOR:
                    wrong.append(f"{path.relative_to(ROOT)}: {module}")
    assert wrong == []


def test_production_code_never_imports_tests() -> None:
    files = sorted((ROOT / "bridge").rglob("*.py")) + sorted((ROOT / "connectors").rglob("*.py"))
    assert offenders(files, "tests") == []


def test_the_checker_sees_imports(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import connectors.onec\nfrom bridge.errors import BridgeError\n")
    assert imported_modules(probe) == {"connectors", "bridge"}
