"""Storage turns (fdb_backend/turns.py): a commit waiting for the disk or for other
committers gives its thread's turn back, so the process's next request computes meanwhile."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fdb_backend
from fdb_backend.turns import Turns, waiting


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    path = tmp_path / "store"
    database = fdb_backend.open_database(f"embedded://{path}")
    yield database, path
    database.close()


def test_a_commit_waiting_for_the_store_lock_gives_its_turn_to_another_thread(
    store: tuple[Any, Path],
) -> None:
    db, path = store
    turns = Turns(1)
    # Another committer (as another process would) holds the store's commit lock.
    other = os.open(str(path) + "-lock", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    committing = threading.Event()
    committed = threading.Event()

    def commit_in_a_turn() -> None:
        with turns.turn():
            tr = db.create_transaction()
            tr[b"key"] = b"value"
            committing.set()
            tr.commit().wait()  # blocks on the lock held above
        committed.set()

    thread = threading.Thread(target=commit_in_a_turn)
    thread.start()
    try:
        assert committing.wait(10)
        got_a_turn = threading.Event()

        def compute() -> None:
            with turns.turn():
                got_a_turn.set()

        threading.Thread(target=compute).start()
        # The waiting commit holds no turn: this thread computes while the commit waits.
        assert got_a_turn.wait(10)
        assert not committed.is_set()
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
    thread.join(10)
    assert committed.is_set()
    assert db[b"key"] == b"value"


def test_the_turn_is_taken_again_after_the_wait_even_when_the_commit_fails(
    store: tuple[Any, Path],
) -> None:
    db, _ = store
    turns = Turns(1)
    with turns.turn():
        stale = db.create_transaction()
        stale.get(b"key")
        db[b"key"] = b"newer"  # a commit after stale's read version: stale conflicts
        stale[b"key"] = b"stale"
        with pytest.raises(fdb_backend.FDBError) as raised:
            stale.commit().wait()
        assert raised.value.code == 1020
        # Still this thread's turn: another thread cannot take it until the block ends.
        assert not turns._lock.acquire(blocking=False)
    assert turns._lock.acquire(blocking=False)
    turns._lock.release()


def test_waiting_without_a_turn_changes_nothing() -> None:
    with waiting():
        pass
    turns = Turns(2)
    with turns.turn(), waiting():
        # Both turns free during the wait.
        assert turns._lock.acquire(blocking=False)
        assert turns._lock.acquire(blocking=False)
        turns._lock.release()
        turns._lock.release()
