"""Loaded rules as a look-up: a line's product group, a customer's group, the rule in force."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from bridge.rules.model import DEFAULT_GROUP, Rule, RulesFile


@dataclass(frozen=True)
class LineKeys:
    """What of a cart line the product groups match on."""

    sku: str
    category: str | None = None
    group: str | None = None


class RuleBook:
    """A rules file, checked, ready to answer per line and per customer."""

    def __init__(self, rules: RulesFile, name: str) -> None:
        self.file = rules
        self.version = rules.version or name
        self._by_group: dict[str, list[Rule]] = {}
        for rule in rules.rules:
            self._by_group.setdefault(rule.group, []).append(rule)
        self._skus = {
            sku: group for group, match in rules.product_groups.items() for sku in match.skus
        }
        self._levels = {
            level: group
            for group, match in reversed(rules.customer_groups.items())
            for level in match.levels
        }

    def product_group(self, line: LineKeys) -> str:
        """The first product group (in file order) the line matches, else ``default``."""
        if line.sku in self._skus:
            # SKU lists are the most specific match: a SKU listed anywhere wins.
            return self._skus[line.sku]
        for name, match in self.file.product_groups.items():
            if line.group is not None and (line.group == name or line.group in match.line_groups):
                return name
            if line.category is not None and line.category in match.categories:
                return name
            if any(line.sku.startswith(prefix) for prefix in match.sku_prefixes):
                return name
        return DEFAULT_GROUP

    def customer_group(self, level: str | None) -> str | None:
        """The customer group of the master's ``level`` (the first listing it), if any."""
        return None if level is None else self._levels.get(level)

    def rule(self, group: str, day: date) -> Rule:
        """The group's rule in force on ``day`` (the latest ``valid_from`` wins); the
        ``default`` group's when the group has none in force."""
        for name in (group, DEFAULT_GROUP):
            found = [r for r in self._by_group.get(name, []) if r.in_force(day)]
            if found:
                return max(found, key=lambda r: r.valid_from or date.min)
        # The loader refuses a file whose default group is not always in force.
        raise LookupError(f"no rule in force for {group!r} on {day}")
