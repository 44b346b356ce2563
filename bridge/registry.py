"""Finding connectors through the ``bridge.connectors`` entry-point group."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from bridge.connector import (
    BodyTokenAuth,
    ConnectorType,
    Emulator,
    EntityLister,
    EntityReader,
    SandboxProvider,
    Sink,
    Source,
    WebhookParser,
)
from bridge.ledger import Ledger
from bridge.settings import Settings, SystemSettings, WebhookAuth

GROUP = "bridge.connectors"


class BrokenConnector:
    """Stands in for an installed connector whose entry point failed to load."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def installed_types() -> dict[str, ConnectorType | BrokenConnector]:
    """Every connector type installed in this environment, by its ``type:`` name."""
    found: dict[str, ConnectorType | BrokenConnector] = {}
    for ep in entry_points(group=GROUP):
        if ep.name in found:
            continue
        try:
            found[ep.name] = ep.load()
        except Exception as exc:  # a broken plugin must not hide the other problems
            found[ep.name] = BrokenConnector(exc)
    return found


@dataclass
class Connectors:
    """The connector built for each configured, enabled system."""

    by_system: dict[str, object] = field(default_factory=dict)
    types: dict[str, ConnectorType] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # isinstance() against a runtime-checkable Protocol is slow; intake asks per request.
    _parsers: dict[str, WebhookParser | None] = field(default_factory=dict)

    def sink(self, system: str) -> Sink | None:
        """The system's sink, if its connector writes."""
        obj = self.by_system.get(system)
        return obj if isinstance(obj, Sink) else None

    def sources(self) -> dict[str, Source]:
        """Every system the bridge polls (a source with ``poll_interval`` 0 is not polled)."""
        return {
            n: c for n, c in self.by_system.items() if isinstance(c, Source) and c.poll_interval > 0
        }

    def readers(self) -> dict[str, EntityReader]:
        """Every source whose entities can be re-read before delivery."""
        return {n: c for n, c in self.by_system.items() if isinstance(c, EntityReader)}

    def listers(self) -> dict[str, EntityLister]:
        """Every source whose entities can be listed for a backfill."""
        return {n: c for n, c in self.by_system.items() if isinstance(c, EntityLister)}

    def emulators(self, settings: Settings) -> dict[str, Emulator]:
        """Sandbox emulators of every system whose connector type ships one."""
        found: dict[str, Emulator] = {}
        for name, ctype in self.types.items():
            if isinstance(ctype, SandboxProvider):
                found[name] = ctype.create_emulator(
                    name, settings.systems[name], self.options[name]
                )
        return found

    def parser(self, system: str) -> WebhookParser | None:
        """The system's webhook parser, if its connector takes webhooks."""
        if system not in self._parsers:
            obj = self.by_system.get(system)
            self._parsers[system] = obj if isinstance(obj, WebhookParser) else None
        return self._parsers[system]


@dataclass
class ConnectorProblem:
    """A problem found while building connectors, with the config key it concerns."""

    path: tuple[str | int, ...]
    message: str


def build_connectors(
    settings: Settings, types: dict[str, ConnectorType | BrokenConnector] | None = None
) -> tuple[Connectors, list[ConnectorProblem]]:
    """Build every enabled system's connector and check that routes can use them."""
    types = installed_types() if types is None else types
    built = Connectors()
    problems: list[ConnectorProblem] = []
    for name, system in settings.systems.items():
        if not system.enabled:
            continue
        ctype = types.get(system.type)
        if ctype is None:
            known = ", ".join(sorted(types)) or "none"
            message = f"no connector of type {system.type!r} is installed (installed: {known})"
            problems.append(ConnectorProblem(("systems", name, "type"), message))
            continue
        if isinstance(ctype, BrokenConnector):
            message = f"the {system.type!r} connector failed to load: {ctype.error!r}"
            problems.append(ConnectorProblem(("systems", name, "type"), message))
            continue
        try:
            options: Any = ctype.options_model.model_validate(system.options)
        except ValidationError as exc:
            problems += _options_problems(name, exc)
            continue
        try:
            connector = ctype.create(name, system, options)
        except Exception as exc:  # a connector refusing its settings names the reason
            problems += _refusal_problems(name, system.type, exc)
            continue
        built.by_system[name] = connector
        built.types[name] = ctype
        built.options[name] = options
        if (
            system.webhook is not None
            and system.webhook.auth is WebhookAuth.CONNECTOR
            and not (isinstance(connector, BodyTokenAuth) and connector.authenticates_body)
        ):
            message = (
                f"the {system.type} connector does not check a token in the body;"
                " use bearer, query or hmac"
            )
            problems.append(ConnectorProblem(("systems", name, "webhook", "auth"), message))
    problems += _route_problems(settings, built)
    master = settings.bonus.master
    if (
        master is not None
        and master in built.by_system
        and not isinstance(built.by_system[master], Ledger)
    ):
        message = f"the {settings.systems[master].type} connector cannot be the bonus master"
        problems.append(ConnectorProblem(("bonus", "master"), message))
    return built, problems


def _refusal_problems(name: str, kind: str, exc: Exception) -> list[ConnectorProblem]:
    """Why a connector refused its settings: at places under its options when it names them
    (``located``), else each of its ``problems`` (a file the options name, at its own
    file:line), else its message."""
    located = getattr(exc, "located", None)
    if located:
        return [ConnectorProblem(("systems", name, "options", *at), text) for at, text in located]
    found = getattr(exc, "problems", None) or [str(exc)]
    return [ConnectorProblem(("systems", name), f"{kind}: {problem}") for problem in found]


def option_problems(
    systems: Any, types: dict[str, ConnectorType | BrokenConnector] | None = None
) -> list[ConnectorProblem]:
    """Each connector's options checked on their own, for a config whose other sections
    failed validation, so that one ``bridge check`` names every mistake at once."""
    if not isinstance(systems, dict):
        return []
    types = installed_types() if types is None else types
    problems: list[ConnectorProblem] = []
    for name, raw in systems.items():
        try:
            system = SystemSettings.model_validate(raw)
        except ValidationError:
            continue  # the validation of the whole file reports this system's own problems
        ctype = types.get(system.type)
        if not system.enabled or ctype is None or isinstance(ctype, BrokenConnector):
            continue
        try:
            ctype.options_model.model_validate(system.options)
        except ValidationError as exc:
            problems += _options_problems(name, exc)
    return problems


def _options_problems(name: str, exc: ValidationError) -> list[ConnectorProblem]:
    return [
        ConnectorProblem(
            ("systems", name, "options", *err["loc"]),
            "unknown key" if err["type"] == "extra_forbidden" else err["msg"],
        )
        for err in exc.errors(include_url=False)
    ]


def _route_problems(settings: Settings, built: Connectors) -> list[ConnectorProblem]:
    problems = []
    for i, route in enumerate(settings.mirror.routes):
        for j, target in enumerate(route.targets):
            system = settings.systems.get(target)
            if system is None or target not in built.by_system:
                if system is not None and not system.enabled:
                    problems.append(
                        ConnectorProblem(
                            ("mirror", "routes", i, "targets", j), f"system {target!r} is disabled"
                        )
                    )
                continue
            if built.sink(target) is None:
                problems.append(
                    ConnectorProblem(
                        ("mirror", "routes", i, "targets", j),
                        f"the {system.type} connector cannot write,"
                        f" so {target!r} cannot be a target",
                    )
                )
    return problems
