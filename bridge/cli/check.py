"""``bridge check``: validate config.yaml (and, with connectors, their options), every
mapping file its routes name, and the bonus rules file it names."""

from __future__ import annotations

import argparse
import asyncio
import errno
from pathlib import Path

from bridge.cli.common import Commands, add_command
from bridge.cli.output import FAILURE, OK, err, out, print_json
from bridge.connector import Emulator, Features, Lifecycle, Probe
from bridge.errors import BridgeError, SettingsError
from bridge.files.checks import files_problems
from bridge.mapping import check_route_mappings
from bridge.registry import Connectors, build_connectors, option_problems
from bridge.rules.loader import config_rules_problems
from bridge.settings import Settings
from bridge.settings_loader import prepare_document, read_settings


def register(commands: Commands) -> None:
    """Add ``check``."""
    parser = add_command(
        commands,
        "check",
        "validate the config and its mapping files; report every problem with file and line",
        "bridge --config /etc/bridge/config.yaml check",
        run,
    )
    parser.add_argument("--json", action="store_true", help="print the findings as JSON")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="also reach each system with the configured credentials (starts the sandbox"
        " emulators first when sandbox.enabled)",
    )


def run(args: argparse.Namespace) -> int:
    """Exit 0 when clean, 1 with every problem listed."""
    problems: list[str] = []
    reached: list[str] = []
    enabled: dict[str, list[str]] = {}
    summary = ""
    config = Path(args.config)
    try:
        loaded = read_settings(config)
    except SettingsError as exc:
        # The connectors' options and the mapping files are checked all the same: one run
        # names every mistake.
        problems = exc.problems + _other_problems(config)
    else:
        connectors, found = build_connectors(loaded.settings)
        problems = [str(loaded.document.problem(p.path, p.message)) for p in found]
        enabled = {
            name: connector.features()
            for name, connector in connectors.by_system.items()
            if isinstance(connector, Features)
        }
        problems += check_route_mappings(config, loaded.document)
        problems += config_rules_problems(config, loaded.document)
        problems += [
            str(loaded.document.problem(path, message))
            for path, message in files_problems(loaded.settings, connectors.by_system)
        ]
        s = loaded.settings
        summary = (
            f"{len(s.systems)} systems, {len(s.mirror.routes)} routes, {len(s.clients)} clients"
        )
        if args.probe and not problems:
            results = asyncio.run(probe_all(loaded.settings, connectors))
            for name, (ok, text) in results.items():
                line = str(loaded.document.problem(("systems", name), text))
                if ok:
                    reached.append(f"{name}: {text}")
                else:
                    problems.append(line)
    if args.json:
        print_json(
            {
                "ok": not problems,
                "problems": problems,
                "probed": reached,
                "features": enabled,
                "summary": summary or None,
            }
        )
    elif problems:
        for problem in problems:
            err.print(problem, markup=False, highlight=False)
        err.print(f"{len(problems)} problem(s) in {args.config}", markup=False)
    else:
        for name, lines in enabled.items():
            for line in lines:
                out.print(f"{name}: {line}", markup=False)
        for line in reached:
            out.print(line, markup=False)
        out.print(f"{args.config}: OK ({summary})", markup=False)
    return FAILURE if problems else OK


def _other_problems(config: Path) -> list[str]:
    """What a config that failed validation hides: its connectors' options and mappings."""
    try:
        document, _ = prepare_document(config)
    except SettingsError:
        return []  # not a mapping of sections: nothing more to read
    data = document.data if isinstance(document.data, dict) else {}
    found = [document.problem(p.path, p.message) for p in option_problems(data.get("systems"))]
    return (
        sorted({str(p) for p in found})
        + check_route_mappings(config, document)
        + config_rules_problems(config, document)
    )


IN_USE = (
    " (its sandbox port was taken: probed what listens there, such as a running bridge's emulator)"
)


async def probe_all(settings: Settings, connectors: Connectors) -> dict[str, tuple[bool, str]]:
    """Reach every system whose connector can probe; (ok, what answered or what failed)."""
    emulators = connectors.emulators(settings) if settings.sandbox.enabled else {}
    results: dict[str, tuple[bool, str]] = {}
    started: list[Emulator] = []
    in_use: set[str] = set()
    try:
        for name, emulator in emulators.items():
            refused = await _start_emulator(name, emulator)
            if refused is None:
                started.append(emulator)
            elif refused == "in use":
                in_use.add(name)
            else:
                results[name] = (False, refused)
        for name, connector in connectors.by_system.items():
            if name not in results:
                timeout = settings.systems[name].delivery.timeout_seconds
                ok, text = await _probe_one(connector, timeout)
                results[name] = (ok, text + (IN_USE if name in in_use else ""))
    finally:
        for emulator in started:
            await emulator.stop()
    return results


async def _start_emulator(name: str, emulator: Emulator) -> str | None:
    """Start a sandbox emulator: None when it listens, "in use" when its port is taken,
    else why it cannot listen."""
    try:
        await emulator.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            # Most often `make run` is up and its emulator holds the port: probe what
            # listens there rather than fail beside a working sandbox.
            return "in use"
        where = emulator.url or f"systems.{name}.options"
        return f"the sandbox emulator cannot listen at {where}: {exc.strerror or exc}"
    return None


async def _probe_one(connector: object, seconds: float) -> tuple[bool, str]:
    """One system's probe within its delivery timeout: (ok, what answered or failed)."""
    if not isinstance(connector, Probe):
        return True, "not probed (its connector cannot probe yet)"
    try:
        if isinstance(connector, Lifecycle):
            await connector.start()
        try:
            answer = await asyncio.wait_for(connector.probe(), seconds)
        finally:
            if isinstance(connector, Lifecycle):
                await connector.close()
    except TimeoutError:
        return False, f"probe failed: no answer within {seconds:g} s"
    except BridgeError as exc:
        kind = getattr(exc, "error_class", "error")
        return False, f"probe failed ({kind}): {exc}"
    except Exception as exc:  # a connector bug: name it instead of a traceback
        return False, f"probe failed (unexpected): {type(exc).__name__}: {exc}"
    return True, f"reached: {answer}"
