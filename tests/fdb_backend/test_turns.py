"""Storage turns (fdb_backend/turns.py): a commit waiting for the disk or for other
committers gives its thread's turn back, so the process's next request computes meanwhile."""

from __future__ import annotations

import fcntl
import os
import threading
import time
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


def test_a_commit_under_a_lock_of_its_caller_does_not_deadlock(store: tuple[Any, Path]) -> None:
    """The rate limiter holds a bucket's lock around its lease's commit. Had the committer
    waited to take a turn again after the commit, while the thread that took its turn waits
    for that lock, neither would go on (seen as 504s from the per-core deployment)."""
    db, path = store
    turns = Turns(1)
    bucket = threading.Lock()
    other = os.open(str(path) + "-lock", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)  # the commit below waits: the second thread gets the turn
    committing = threading.Event()
    done: list[str] = []

    def lease() -> None:
        with turns.turn(), bucket:
            tr = db.create_transaction()
            tr[b"lease"] = b"1"
            committing.set()
            tr.commit().wait()
            done.append("lease")

    def spend() -> None:
        assert committing.wait(10)
        with turns.turn(), bucket:
            done.append("spend")

    threads = [threading.Thread(target=lease), threading.Thread(target=spend)]
    for thread in threads:
        thread.start()
    assert committing.wait(10)
    time.sleep(0.1)  # the second thread takes the turn and waits for the bucket
    fcntl.flock(other, fcntl.LOCK_UN)
    os.close(other)
    for thread in threads:
        thread.join(10)
    assert done == ["lease", "spend"]


def test_a_turn_given_back_by_a_commit_is_not_given_back_again(store: tuple[Any, Path]) -> None:
    db, _ = store
    turns = Turns(1)
    with turns.turn():
        db[b"key"] = b"value"  # a commit: the turn is given back here
        assert turns.acquire(blocking=False)  # free for another thread already
        turns.release()
    # The block's end released nothing more (a Lock released twice raises).
    assert turns.acquire(blocking=False)
    turns.release()


def test_waiting_without_a_turn_changes_nothing() -> None:
    waiting()
    turns = Turns(2)
    with turns.turn():
        waiting()
        # Both turns free after it.
        assert turns.acquire(blocking=False)
        assert turns.acquire(blocking=False)
        turns.release()
        turns.release()


def _batches() -> tuple[float, float]:
    """(batches of two or more, transactions in them) of the engine's group commit."""
    from prometheus_client import REGISTRY

    total = REGISTRY.get_sample_value("coditect_storage_commit_batch_count") or 0.0
    summed = REGISTRY.get_sample_value("coditect_storage_commit_batch_sum") or 0.0
    return total, summed


def test_commits_queued_behind_the_store_lock_commit_together_and_still_conflict(
    store: tuple[Any, Path],
) -> None:
    """Group commit: transactions that queued while another committer held the store lock
    are applied in one batch with one fsync, each with its own version, and a batch still
    refuses the second of two transactions that read and wrote one key (1020)."""
    db, path = store
    db[b"shared"] = b"0"
    other = os.open(str(path) + "-lock", os.O_RDWR)
    fcntl.flock(other, fcntl.LOCK_EX)
    before_total, before_summed = _batches()
    results: dict[str, Any] = {}

    def commit(name: str, key: bytes, read_shared: bool) -> None:
        tr = db.create_transaction()
        if read_shared:
            tr.get(b"shared")
        tr[key] = name.encode()
        try:
            tr.commit().wait()
            results[name] = tr.get_committed_version()
        except fdb_backend.FDBError as error:
            results[name] = error.code

    first = threading.Thread(target=commit, args=("first", b"first", False))
    started = [first]
    try:
        started += _queue_behind_the_lock(db, first, commit, results)
    finally:
        fcntl.flock(other, fcntl.LOCK_UN)
        os.close(other)
        for thread in started:
            thread.join(10)
    total, summed = _batches()
    # One batch: the first committer takes the queue once the store lock is its own, so the
    # transactions queued while it waited join it. Nine in the batch, one refused.
    assert total - before_total == 1
    assert summed - before_summed == 8
    versions = [results[f"t{i}"] for i in range(6)] + [results["first"]]
    assert len(set(versions)) == 7 and all(v > 0 for v in versions)
    refused = [name for name in ("a", "b") if results[name] == 1020]
    assert len(refused) == 1  # exactly one refused, the other committed
    winner = "b" if refused == ["a"] else "a"
    assert results[winner] > results["first"]
    assert db[b"shared"] == winner.encode()
    for i in range(6):
        assert db[f"key{i}".encode()] == f"t{i}".encode()


def _queue_behind_the_lock(
    db: Any, first: threading.Thread, commit: Any, results: dict[str, Any]
) -> list[threading.Thread]:
    first.start()
    time.sleep(0.2)  # the first committer holds the commit lock, waiting for the store lock
    threads = [
        threading.Thread(target=commit, args=(f"t{i}", f"key{i}".encode(), False)) for i in range(6)
    ]
    # Both read b"shared" at one read version before either commits: one must be refused.
    racers = []
    for name in ("a", "b"):
        tr = db.create_transaction()
        tr.get(b"shared")
        tr[b"shared"] = name.encode()
        racers.append((name, tr))

    def commit_racer(name: str, tr: Any) -> None:
        try:
            tr.commit().wait()
            results[name] = tr.get_committed_version()
        except fdb_backend.FDBError as error:
            results[name] = error.code

    threads += [threading.Thread(target=commit_racer, args=racer) for racer in racers]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # all queued behind the first
    return threads


def test_turns_are_handed_out_first_come_first_served() -> None:
    turns = Turns(1)
    order: list[int] = []

    def wait_for_a_turn(n: int) -> None:
        turns.acquire()
        order.append(n)
        turns.release()

    turns.acquire()
    waiters = []
    for n in range(5):
        thread = threading.Thread(target=wait_for_a_turn, args=(n,))
        thread.start()
        waiters.append(thread)
        time.sleep(0.05)  # each one waiting before the next arrives
    turns.release()
    for thread in waiters:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4]
