"""Crash safety of the embedded engine: SIGKILL at random moments, then check the store."""

from __future__ import annotations

import multiprocessing
import random
import sqlite3
import struct
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import fdb_backend
from tests.fdb_backend.workers import commit_batches, commit_batches_in_threads

KEYS_PER_BATCH = 1500
PREFIX = b"crash/"
ROUNDS = 8


def _wait_for_lines(path: Path, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.01)
    raise AssertionError("worker reported no commit in time")


def _kill_and_check(tmp_path: Path, seed: int, rounds: int, threads: int, keys: int) -> None:
    """Start a committing worker process ``rounds`` times and SIGKILL it at a random moment
    after its ``threads`` threads have each reported a commit; then every batch in the store is
    whole, every reported one is there, and the store passes SQLite's integrity check."""
    store = tmp_path / "store.sqlite3"
    url = f"embedded://{store}"
    report = tmp_path / "committed.txt"
    ctx = multiprocessing.get_context("spawn")
    rng = random.Random(seed)
    for round_ in range(rounds):
        process = ctx.Process(
            target=commit_batches_in_threads, args=(url, PREFIX, str(report), keys, threads)
        )
        process.start()
        _wait_for_lines(report, (round_ + 1) * threads, timeout=60)
        time.sleep(rng.uniform(0.0, 0.25))
        process.kill()  # SIGKILL: no cleanup, no atexit, possibly mid-commit
        process.join()
        assert process.exitcode == -9

    reported = {tuple(map(int, line.split())) for line in report.read_text().splitlines()}
    db = fdb_backend.open_database(url)
    rows = db.create_transaction().get_range(PREFIX, PREFIX + b"\xff")
    batches = Counter(
        (struct.unpack(">Q", kv.key[6:14])[0], struct.unpack(">I", kv.key[14:18])[0]) for kv in rows
    )
    # Every batch is all of its keys or none of them ...
    assert set(batches.values()) == {keys}
    # ... and every commit that returned before the kill is there, whole.
    assert reported <= set(batches)
    # At most the commits in flight at each kill (one per thread) lack a report line.
    assert len(set(batches) - reported) <= rounds * threads
    db.close()
    check = sqlite3.connect(store)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


@pytest.mark.slow
def test_sigkill_leaves_whole_commits_or_nothing(tmp_path: Path) -> None:
    _kill_and_check(tmp_path, 20261125, ROUNDS, threads=1, keys=KEYS_PER_BATCH)


@pytest.mark.slow
def test_sigkill_during_group_commits_leaves_whole_commits_or_nothing(tmp_path: Path) -> None:
    """Four threads of one process committing at once: the engine commits what queued
    together in one SQLite transaction (group commit). A kill at any moment leaves each
    transaction whole or absent, and none that returned is lost."""
    _kill_and_check(tmp_path, 20261207, 6, threads=4, keys=300)


@pytest.mark.slow
def test_a_killed_committer_does_not_block_others(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}/store.sqlite3"
    report = tmp_path / "committed.txt"
    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=commit_batches, args=(url, PREFIX, str(report), 3000))
    worker.start()
    _wait_for_lines(report, 1, timeout=60)
    worker.kill()
    worker.join()
    db = fdb_backend.open_database(url)
    db.options.set_transaction_timeout(10_000)

    @fdb_backend.transactional
    def put(tr: Any) -> None:
        tr[b"after"] = b"ok"

    put(db)
    assert db.create_transaction()[b"after"] == b"ok"
    db.close()
