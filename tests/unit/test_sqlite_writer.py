"""The SQLite writer's group commit: jobs queued while one commits go in the next transaction
together; a failing job rolls back alone; a caller that gave up is not written."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bridge.store.sqlite.writer import Writer


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[tuple[Writer, list[str]]]:
    """A writer on a fresh file with one table, and the statements it ran (traced)."""
    statements: list[str] = []

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
        conn.set_trace_callback(statements.append)
        return conn

    w = Writer(connect)
    w.start()
    yield w, statements
    w.stop()


def insert(key: str) -> Callable[[sqlite3.Connection], str]:
    def job(conn: sqlite3.Connection) -> str:
        conn.execute("INSERT INTO t VALUES (?)", (key,))
        return key

    return job


def rows(w: Writer) -> list[str]:
    return sorted(r[0] for r in w.run_sync(lambda c: c.execute("SELECT k FROM t").fetchall()))


def hold(w: Writer) -> threading.Event:
    """Keep the writer busy in a job until the event is set: what is queued meanwhile goes
    into the next transaction, together."""
    release, busy = threading.Event(), threading.Event()

    def job(_conn: sqlite3.Connection) -> None:
        busy.set()
        release.wait(5)

    threading.Thread(target=w.run_sync, args=(job,), daemon=True).start()
    assert busy.wait(5)
    return release


async def test_jobs_queued_during_a_commit_share_the_next_one(
    writer: tuple[Writer, list[str]],
) -> None:
    w, statements = writer
    release = hold(w)
    tasks = [asyncio.ensure_future(w.run(insert(f"k{i}"))) for i in range(20)]
    await asyncio.sleep(0.05)
    statements.clear()
    release.set()
    assert await asyncio.gather(*tasks) == [f"k{i}" for i in range(20)]
    assert statements.count("COMMIT") == 2  # the holding job's own, then the twenty's
    assert not any(s.startswith("SAVEPOINT") for s in statements)  # none failed: none needed
    assert rows(w) == sorted(f"k{i}" for i in range(20))


async def test_a_failing_job_rolls_back_alone(writer: tuple[Writer, list[str]]) -> None:
    w, _statements = writer

    def half_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES ('half')")
        raise ValueError("refused after a write")

    release = hold(w)
    good = [asyncio.ensure_future(w.run(insert(f"g{i}"))) for i in range(3)]
    bad = asyncio.ensure_future(w.run(half_then_fail))
    dup = asyncio.ensure_future(w.run(insert("g0")))
    await asyncio.sleep(0.05)
    release.set()
    assert await asyncio.gather(*good) == ["g0", "g1", "g2"]
    with pytest.raises(ValueError, match="refused after a write"):
        await bad
    with pytest.raises(sqlite3.IntegrityError):
        await dup
    assert rows(w) == ["g0", "g1", "g2"]  # neither 'half' nor a second g0


async def test_a_caller_that_gave_up_before_its_turn_is_not_written(
    writer: tuple[Writer, list[str]],
) -> None:
    w, _statements = writer
    release = hold(w)
    gone = asyncio.ensure_future(w.run(insert("gone")))
    kept = asyncio.ensure_future(w.run(insert("kept")))
    await asyncio.sleep(0.05)
    gone.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await kept == "kept"
    assert rows(w) == ["kept"]
