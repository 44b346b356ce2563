"""Routes from config: which targets an event of (source, entity) goes to."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.settings import BONUS_TARGET, REGISTRATION_TARGET, Settings
from bridge.store.records import InboundEvent, NewEvent


class Router:
    """A lookup table built once from ``mirror.routes``; enabled targets only."""

    def __init__(self, settings: Settings) -> None:
        table: dict[tuple[str, str], list[str]] = {}
        for route in settings.mirror.routes:
            targets = table.setdefault((route.source, route.entity), [])
            for target in route.targets:
                system = settings.systems.get(target)
                if system is not None and system.enabled and target not in targets:
                    targets.append(target)
        if settings.bonus.master is not None:
            # Order changes of these systems also go to the bonus service, which commits or
            # releases the reservation of the order when its status says so.
            for source in settings.bonus.order_statuses:
                table.setdefault((source, "order"), []).append(BONUS_TARGET)
            # Orders that register their first-time customer there (issue 17).
            for registration in settings.customers.registration.sources:
                targets = table.setdefault((registration.system, "order"), [])
                if REGISTRATION_TARGET not in targets:
                    targets.append(REGISTRATION_TARGET)
        self._table = {key: tuple(value) for key, value in table.items()}

    def targets(self, source: str, entity: str) -> tuple[str, ...]:
        """Targets of an event; empty when no route matches."""
        return self._table.get((source, entity), ())

    def all_targets(self) -> set[str]:
        """Every system some route delivers to."""
        return {t for targets in self._table.values() for t in targets}

    def route(self, source: str, events: Iterable[InboundEvent]) -> list[NewEvent]:
        """Attach each event's targets."""
        return [NewEvent(source, e, self.targets(source, e.entity)) for e in events]
