"""The README cannot drift: every command block of it runs here against the sandbox, as a
new user would paste it, and every quoted promise of its comments must come true.

The daemon is what `make run` starts (the committed config.yaml, sandbox emulators and all),
in a scratch folder and on free ports; the walkthrough runs twice, with a restart between, and
gives the same both times (issue 12.1: sandbox re-runs). The support runbook's commands are
parsed by the real CLI, so a flag or verb the table names must exist.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bridge.cli.main import build_parser
from tests.support.daemon import ROOT, free_port
from tests.support.readme import Command, sh_blocks

README = ROOT / "README.md"
SANDBOX_PORTS = {"8080": "http", "8091": "onec", "8092": "retailcrm", "8093": "bitrix"}
WAIT = 30.0  # seconds a promise of a read may take to come true (polls run every 5 s)


class Shell:
    """One bash for the whole walkthrough, so ``ID=$(…)`` is there for the next command."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=cwd,
            env=env,
            text=True,
        )
        self.count = 0

    def run(self, script: str, timeout: float = 60) -> tuple[int, str]:
        """Run ``script`` in this shell: (exit code, stdout and stderr)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.count += 1
        file, out = self.cwd / f".cmd{self.count}.sh", self.cwd / f".out{self.count}"
        file.write_text(script + "\n", encoding="utf-8")
        self.proc.stdin.write(f'source {file} > {out} 2>&1; echo "__rc=$?"\n')
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"no end within {timeout} s: {script}"
        line = self.proc.stdout.readline()
        match = re.match(r"__rc=(\d+)", line)
        assert match, line
        return int(match.group(1)), out.read_text(encoding="utf-8", errors="replace")

    def close(self) -> None:
        """End the shell."""
        self.proc.kill()
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


def scratch(folder: Path) -> Path:
    """A copy of what `make run` reads (config.yaml, mappings/, rules/, examples/, .venv)."""
    folder.mkdir()
    (folder / "config.yaml").write_text(
        (ROOT / "config.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    for name in ("mappings", "rules", "examples", ".venv"):
        (folder / name).symlink_to(ROOT / name)
    return folder


def sandbox_env(ports: dict[str, int]) -> dict[str, str]:
    """The committed config on other ports, through its own variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE")}
    env |= {
        "BRIDGE__HTTP__PORT": str(ports["http"]),
        "BRIDGE_ONEC_ADDRESS": f"http://127.0.0.1:{ports['onec']}/base/ws/BridgeLoyalty.1cws",
        "BRIDGE_RETAILCRM_URL": f"http://127.0.0.1:{ports['retailcrm']}",
        "BRIDGE_BITRIX_URL": f"http://127.0.0.1:{ports['bitrix']}/rest/",
        "BRIDGE_BITRIX_TOKEN_URL": f"http://127.0.0.1:{ports['bitrix']}/oauth/token/",
    }
    return env


def on_ports(text: str, ports: dict[str, int], *, back: bool = False) -> str:
    """The README's text with the sandbox's ports replaced by this run's (``back``: an
    answer with this run's ports put back to the README's, to compare with it)."""
    for readme_port, name in SANDBOX_PORTS.items():
        pair = (f"127.0.0.1:{readme_port}", f"127.0.0.1:{ports[name]}")
        text = text.replace(*(reversed(pair) if back else pair))
    return text


def start_daemon(folder: Path, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    """``make run``'s command, waited for until ``/health`` answers."""
    with (folder / "daemon.log").open("ab") as log:  # the child keeps its own copy
        proc = subprocess.Popen(
            [".venv/bin/bridge", "serve", "--config", "config.yaml"],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            assert proc.poll() is None, (folder / "daemon.log").read_text(encoding="utf-8")
            assert time.monotonic() < deadline, "the daemon did not answer /health"
            time.sleep(0.2)


def run_command(shell: Shell, command: Command, ports: dict[str, int]) -> None:
    """Run one README command until its promises hold (a read may wait for a poll; a write
    runs once)."""
    script = on_ports(command.text, ports)
    deadline = time.monotonic() + WAIT
    while True:
        code, output = shell.run(script)
        unmet = command.unmet(on_ports(output, ports, back=True))
        if code == 0 and not unmet:
            return
        if command.changes_something or time.monotonic() > deadline:
            pytest.fail(
                f"README line {command.line}: {command.text!r} exited {code};"
                f" promises not kept: {unmet}\n--- output ---\n{output[-3000:]}"
            )
        time.sleep(0.5)


def test_the_set_up_block_is_the_two_make_commands() -> None:
    first = sh_blocks(README)[0]
    assert [c.text.strip() for c in first.commands] == ["make run", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "\t$(BIN)/bridge serve --config config.yaml\n" in makefile  # what the test starts


def test_every_runbook_command_parses() -> None:
    parser = build_parser()
    table = [
        line
        for line in README.read_text(encoding="utf-8").splitlines()
        if line.startswith("| `bridge ")
    ]
    assert len(table) > 10
    for line in table:
        for shown in re.findall(r"`(bridge [^`]+)`", line.split("|")[1]):
            words = [w for w in shlex.split(re.sub(r"\[[^\]]*\]", "", shown)) if w != "…"]
            words = [w.replace("rsv_…", "rsv_1") for w in words]
            try:
                args = parser.parse_args(words[1:])
            except SystemExit as exc:
                pytest.fail(f"README runbook: {shown!r} does not parse (exit {exc.code})")
            assert getattr(args, "run", None) is not None, shown


@pytest.mark.timeout(600)
def test_the_walkthrough_gives_what_the_readme_says_twice(tmp_path: Path) -> None:
    blocks = sh_blocks(README)[1:]
    assert sum(len(b.commands) for b in blocks) > 20
    folder = scratch(tmp_path / "clone")
    ports = {name: free_port() for name in SANDBOX_PORTS.values()}
    env = sandbox_env(ports)
    for _run in (1, 2):  # `make run`, the walkthrough, stop; and again
        daemon = start_daemon(folder, env, ports["http"])
        shell = Shell(folder, env)
        try:
            for block in blocks:
                for command in block.commands:
                    run_command(shell, command, ports)
        finally:
            shell.close()
            daemon.send_signal(signal.SIGINT)
            assert daemon.wait(30) == 0


SAMPLES = {
    "retailcrm_order": "retailcrm_order",
    "retailcrm_customer": "retailcrm_customer",
    "onec_order": "onec_order",
    "onec_customer": "onec_customer",
    "bitrix_order": "bitrix_deal",
    "bitrix_customer": "bitrix_contact",
    "retailcrm_corporate_customer": "retailcrm_corporate_customer",
}


@pytest.mark.parametrize("mapping", sorted((ROOT / "mappings").glob("*.yaml")), ids=str)
def test_every_shipped_mapping_maps_its_sources_example(mapping: Path) -> None:
    """`examples/` holds a sample for every flow, so `bridge map` can be tried on each."""
    source = mapping.stem.split("_to_")[0]
    sample = ROOT / "examples" / f"{SAMPLES[source]}.json"
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "map", str(mapping), str(sample), "--edit"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.lstrip().startswith("{"), done.stdout  # a write, not a skip
