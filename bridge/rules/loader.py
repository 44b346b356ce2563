"""Read a rules file into a :class:`RuleBook`, every problem with file and line.

The same machinery as ``config.yaml`` (``bridge.settings_loader``): the YAML composed with
each key's line, validated by pydantic, then the checks across sections (a rule's group
and its customer multipliers must be defined; the ``default`` group must have a rule
always in force), so one ``bridge check`` names every mistake.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bridge.rules.book import RuleBook
from bridge.rules.model import DEFAULT_GROUP, RulesFile
from bridge.settings_loader import Document, Finding, load_document, validation_problems

RULES_KEY = ("bonus", "rules", "file")


def rules_path(config_file: Path, name: str) -> Path:
    """Where ``bonus.rules.file`` points: a relative name is read from the config's folder."""
    path = Path(name)
    return path if path.is_absolute() else config_file.parent / path


def load_rules(path: Path) -> tuple[RuleBook | None, list[Finding]]:
    """The rules of ``path``, or None with every problem found."""
    doc, problems = load_document(path)
    if doc.data is None and problems:
        return None, problems
    if not isinstance(doc.data, dict):
        return None, [doc.problem((), "the file must hold a mapping (rules:, product_groups:…)")]
    rules: RulesFile | None = None
    try:
        rules = RulesFile.model_validate(doc.data)
    except ValidationError as exc:
        problems += validation_problems(doc, exc)
    problems += cross_checks(doc)
    if problems or rules is None:
        problems.sort(key=lambda p: p.line or 0)
        return None, problems
    return RuleBook(rules, path.name), []


def cross_checks(doc: Document) -> list[Finding]:
    """Names a rule uses must be defined; the default group must always have a rule."""
    data: dict[str, Any] = doc.data
    products = _names(data.get("product_groups")) | {DEFAULT_GROUP}
    customers = _names(data.get("customer_groups"))
    rules = data.get("rules")
    problems: list[Finding] = []
    always = False
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        group = rule.get("group")
        if isinstance(group, str) and group not in products:
            problems.append(doc.problem(("rules", index, "group"), f"unknown group {group!r}"))
        multipliers = rule.get("customer_multipliers")
        for name in multipliers if isinstance(multipliers, dict) else {}:
            if name not in customers:
                where = ("rules", index, "customer_multipliers", name)
                problems.append(doc.problem(where, f"unknown customer group {name!r}"))
        undated = rule.get("valid_from") is None and rule.get("valid_until") is None
        always = always or (group == DEFAULT_GROUP and undated)
    if isinstance(rules, list) and rules and not always:
        message = "needs a rule for group default with no dates (lines that match no group)"
        problems.append(doc.problem(("rules",), message))
    return problems + _skus_listed_twice(doc, _as_dict(data.get("product_groups")))


def _skus_listed_twice(doc: Document, groups: dict[str, Any]) -> list[Finding]:
    """A SKU in two groups' ``skus`` would be in whichever the bridge read last."""
    seen: dict[str, str] = {}
    problems: list[Finding] = []
    for name, group in groups.items():
        skus = _as_dict(group).get("skus")
        for index, sku in enumerate(skus if isinstance(skus, list) else []):
            first = seen.setdefault(str(sku), name)
            if first != name:
                where = ("product_groups", name, "skus", index)
                problems.append(doc.problem(where, f"SKU {sku!r} is listed in group {first!r} too"))
    return problems


def _names(section: Any) -> set[str]:
    return set(section) if isinstance(section, dict) else set()


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def config_rules_problems(config_file: Path, document: Document) -> list[str]:
    """Problems of the rules file the config names (on the config's raw data, so they show
    beside the config's own), the config's line when the file cannot be found."""
    section = _as_dict(_as_dict(_as_dict(document.data).get("bonus")).get("rules"))
    name = section.get("file")
    if not isinstance(name, str) or not name.strip():
        return []
    path = rules_path(config_file, name)
    if not path.is_file():
        return [str(document.problem(RULES_KEY, f"no such rules file: {path}"))]
    return [str(problem) for problem in load_rules(path)[1]]
