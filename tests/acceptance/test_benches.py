"""Every bench in its smoke mode, as ``make bench`` runs it: a subprocess that starts the real
daemon and emulators on loopback, checks its own correctness and prints its figures.

A bench that rots (a config the schema no longer takes, a source it cannot reach, a wait
that never ends) fails here instead of on the day someone needs its numbers. Speed targets
are not judged (``--smoke`` prints "not judged"); the figures must be there and be numbers.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support.daemon import ROOT
from tests.support.postgres import SERVER

# Beyond each bench's own deadline (60-150 s in smoke mode): only a bench that ignores its
# own bounds meets this one.
LIMIT = 180
NUMBER = r"[+-]?\d+(?:\.\d+)?"
UNJUDGED = r"target .*not judged \(--smoke\)"  # a bench with a speed target says so

SMOKES = {
    "intake": (
        ["bench/intake.py"],
        [
            rf"bridge +#0 +{NUMBER} ev/s +p50 +{NUMBER} ms +p99 +{NUMBER} ms .* failures 0 +exit 0",
            rf"group-commit peer #0 +{NUMBER} ev/s .* failures 0 +exit 0",
            r"550 events, 550 delivery links for 550 acks: OK; server .* load",
            rf"floor commits +{NUMBER} commits/s",
            rf"ratio +bridge / peer = {NUMBER}",
            UNJUDGED,
        ],
    ),
    "intake postgresql": (
        ["bench/intake.py", "--store", "postgresql", "--postgres", SERVER],
        [
            *(
                rf"{label} +{NUMBER} events/s +p50 +{NUMBER} ms +p99 +{NUMBER} ms .* failures 0\n"
                for label in ("sqlite x1", "postgresql x1", "postgresql x2", "postgresql x3")
            ),
            r"stored once: 550 rows for 550 acks .*: OK; .* daemon exits \[0, 0, 0\]",
            r"durability +every ack stored exactly once in all 4: OK",
            *(
                rf"ratio +postgresql {pair} = {NUMBER}"
                for pair in ("x2 / x1", "x3 / x1", "x1 / sqlite x1")
            ),
            r"note +\d+ cores: ",
            UNJUDGED,
        ],
    ),
    "retention": (
        ["bench/retention.py"],
        [
            rf"big log +20000 done events built by SQL in {NUMBER} s",
            rf"round 1 empty +{NUMBER} events/s .* failures 0",
            rf"round 1 big +{NUMBER} events/s .* failures 0 +pruned meanwhile [1-9]\d*",
            rf"ratio +big / empty = {NUMBER} +\(judged\)",
            UNJUDGED,
        ],
    ),
    **{
        f"events_list {store}": (
            ["bench/events_list.py", "--store", store, "--postgres", SERVER],
            [
                rf"log +5,000 events built in {NUMBER} s, {NUMBER} MB",
                *(
                    rf"{query} +{page} +\d+ +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}"
                    for query in ("events list --status dead", "events list --target retailcrm")
                    for page in ("first", "deep")
                ),
                rf"status +5000 +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER} +{NUMBER}",
                rf"ratio 5,000/500 store p50: median {NUMBER}",
                UNJUDGED,
            ],
        )
        for store in ("sqlite", "postgresql")
    },
    "onec_calls soap": (
        ["bench/onec_calls.py", "--transport", "soap"],
        [
            rf"raw zeep async \(aiohttp\) +{NUMBER} +{NUMBER}",
            rf"connector\.balance\(\) +{NUMBER} +{NUMBER}",
            rf"overhead connector - raw: p50 {NUMBER} ms \(x{NUMBER}\)",
            rf"connector - raw client, both without the network, p50 {NUMBER} us",
        ],
    ),
    "onec_calls http": (
        ["bench/onec_calls.py", "--transport", "http"],
        [
            rf"raw aiohttp +{NUMBER} +{NUMBER}",
            rf"connector\.balance\(\) +{NUMBER} +{NUMBER}",
            rf"overhead connector - raw: p50 {NUMBER} ms \(x{NUMBER}\)",
        ],
    ),
    **{
        f"balance {master}": (
            ["bench/balance.py", "--master", master],
            [
                rf"master served {NUMBER} per bridge look-up: same",
                *(
                    rf"{stream} +{NUMBER}/s +p50 +{NUMBER} ms +p99 +{NUMBER} ms .* errors 0"
                    for stream in ("bridge", "direct", "floor")
                ),
                rf"overhead \(bridge - direct\) +p50 {NUMBER} ms +p99 {NUMBER} ms",
                r"exits \{'bridge': 0, 'emulator': 0\}",
                UNJUDGED,
            ],
        )
        for master in ("onec", "onec-soap", "retailcrm")
    },
    "retailcrm_mirror": (
        ["bench/retailcrm_mirror.py"],
        [
            rf"mirrored +200 orders in {NUMBER} s = {NUMBER} orders/s",
            rf"ceiling +500/s \(rate x 50\): ratio {NUMBER} \(judged\)",
            r"missing 0, duplicated 0",
            r"upload sizes \{",
            UNJUDGED,
        ],
    ),
    "mirror": (
        ["bench/mirror.py"],
        [
            rf"mirrored +50 of 50 orders in 1C in {NUMBER} s = {NUMBER} orders/s",
            rf"bridge \d+ calls \({NUMBER} per order\) = {NUMBER} req/s: {NUMBER}% of the 40/s",
            r"saves per order \{'1': 50\}",
            rf"RSS peak {NUMBER} MB",
            UNJUDGED,
        ],
    ),
    "bitrix_mirror": (
        ["bench/bitrix_mirror.py"],
        [
            rf"200 of 200 writes in {NUMBER} s: {NUMBER} writes/s against a ceiling of"
            rf" {NUMBER}/s over that time = {NUMBER}%",
            r"503s: 0 \(PASS\)",
            r"daemon exit 0",
            UNJUDGED,
        ],
    ),
}


def run_smoke(argv: list[str]) -> tuple[int, str, float]:
    """Run one bench with ``--smoke`` in a session of its own; kill that whole group if it
    outlives ``LIMIT`` (the bench's daemon and emulators with it)."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *argv, "--smoke"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{' '.join(argv)} --smoke still ran after {LIMIT} s:\n{out[-4000:]}")
    return proc.returncode, out, time.monotonic() - started


@pytest.mark.parametrize("name", list(SMOKES))
def test_bench_smoke_runs_and_prints_its_figures(name: str) -> None:
    argv, figures = SMOKES[name]
    code, out, seconds = run_smoke(argv)
    assert code == 0, f"{name}: exit {code} after {seconds:.1f} s\n{out[-4000:]}"
    missing = [f for f in figures if not re.search(f, out)]
    assert not missing, f"{name}: figures not printed: {missing}\n{out[-4000:]}"
    assert "STOPPED" not in out, out[-4000:]
