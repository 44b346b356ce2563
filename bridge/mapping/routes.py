"""The mapping files that ``mirror.routes[*].mapping`` names, as ``bridge check`` sees them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.mapping.compiler import Compiled
from bridge.mapping.loader import inspect_mapping
from bridge.settings_loader import Document


def mapping_path(config_file: Path, name: str) -> Path:
    """Where a route's ``mapping:`` points: a relative name is read from the config's folder."""
    path = Path(name)
    return path if path.is_absolute() else config_file.parent / path


def check_route_mappings(config_file: Path, document: Document) -> list[str]:
    """Problems of every mapping file the routes name, and of routes their file disagrees with.

    Works on the config document's raw data, so it runs even when the config has problems
    of its own: one ``bridge check`` reports everything.
    """
    return inspect_route_mappings(config_file, document)[0]


def inspect_route_mappings(
    config_file: Path, document: Document
) -> tuple[list[str], dict[Path, Compiled]]:
    """The problems, and every file compiled once (by resolved path), for a caller that
    goes on to use the mappings (``bridge serve``)."""
    data = document.data if isinstance(document.data, dict) else {}
    mirror = data.get("mirror")
    routes = mirror.get("routes") if isinstance(mirror, dict) else None
    problems: list[str] = []
    seen: dict[Path, Compiled] = {}
    for index, route in enumerate(routes if isinstance(routes, list) else []):
        if not isinstance(route, dict) or not isinstance(route.get("mapping"), str):
            continue
        at = ("mirror", "routes", index, "mapping")
        name = route["mapping"]
        path = mapping_path(config_file, name)
        if not path.is_file():
            problems.append(str(document.problem(at, f"no such file ({path})")))
            continue
        key = path.resolve()
        if key not in seen:  # two routes may share a file: its problems are listed once
            seen[key] = inspect_mapping(path)
            problems += [str(p) for p in seen[key].problems]
        problems += [str(document.problem(at, m)) for m in disagreements(route, seen[key], name)]
    return problems, seen


def disagreements(route: dict[str, Any], mapping: Compiled, name: str) -> list[str]:
    """How a route and the mapping file it names disagree on source, entity or target."""
    found = []
    for key in ("source", "entity"):
        mine, theirs = getattr(mapping, key), route.get(key)
        if mine and isinstance(theirs, str) and mine != theirs:
            found.append(f"{name} has {key} {mine!r}, but the route's {key} is {theirs!r}")
    listed = route.get("targets")
    targets = [t for t in listed if isinstance(t, str)] if isinstance(listed, list) else []
    if mapping.target and targets:
        if mapping.target not in targets:
            names = ", ".join(repr(t) for t in targets)
            message = f"{name} maps to {mapping.target!r}, not to the route's targets ({names})"
            found.append(message)
        elif len(targets) > 1:
            # The file writes in one target's shape; the other targets would get that shape.
            others = ", ".join(repr(t) for t in targets if t != mapping.target)
            found.append(
                f"{name} maps to {mapping.target!r} only, but the route also targets {others}:"
                " give each target its own route and mapping"
            )
    return found
