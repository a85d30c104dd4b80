"""Opening stores: URLs, foreign files, durability across reopen, process-wide database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fdb_backend


def test_unknown_scheme_names_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="accepted: embedded:///abs/path, memory:, fdb:"):
        fdb_backend.open_database("redis://localhost/0")


@pytest.mark.parametrize("url", ["", "embedded://relative/path", "embedded:relative"])
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        fdb_backend.open_database(url)


@pytest.mark.parametrize("faults", ["x", "2", "-1"])
def test_bad_fault_rate_is_refused(faults: str) -> None:
    with pytest.raises(ValueError, match="faults"):
        fdb_backend.open_database(f"memory:?faults={faults}")


def test_fault_rate_from_url() -> None:
    db = fdb_backend.open_database("memory:?faults=0.25")
    assert db.fault_rate == 0.25
    db.close()


def test_a_file_that_is_not_a_store_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my precious notes\n" * 100)
    with pytest.raises(ValueError, match="not a coditect store"):
        fdb_backend.open_database(f"embedded://{path}")
    assert path.read_bytes() == b"my precious notes\n" * 100


def test_another_sqlite_database_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.execute("INSERT INTO people VALUES ('ada')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    with pytest.raises(ValueError, match="not a coditect store"):
        fdb_backend.open_database(f"embedded://{path}")
    assert path.read_bytes() == before


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="directory"):
        fdb_backend.open_database(f"embedded://{tmp_path}")


def test_commits_survive_reopen(tmp_path: Path) -> None:
    url = f"embedded://{tmp_path}/deep/er/store.sqlite3"
    db = fdb_backend.open_database(url)
    tr = db.create_transaction()
    tr[b"k"] = b"v"
    tr.commit().wait()
    version = tr.get_committed_version()
    db.close()
    again = fdb_backend.open_database(url)
    tr = again.create_transaction()
    assert tr[b"k"] == b"v"
    assert tr.get_read_version().wait() == version
    again.close()


def test_memory_store_is_gone_on_close() -> None:
    db = fdb_backend.open_database("memory:")
    path = Path(db.path)
    assert path.exists()
    db.close()
    assert not path.exists()


def test_closed_database_refuses_work() -> None:
    db = fdb_backend.open_database("memory:")
    db.close()
    with pytest.raises(fdb_backend.FDBError):
        db.create_transaction()


def test_set_read_version_reads_the_past(tmp_path: Path) -> None:
    db = fdb_backend.open_database(f"embedded://{tmp_path}/s.sqlite3")
    db[b"a"] = b"1"
    db[b"b"] = b"1"
    old = db.create_transaction().get_read_version().wait()
    db[b"b"] = b"2"
    tr = db.create_transaction()
    tr.set_read_version(old)
    assert tr[b"a"] == b"1"  # unchanged since `old`: the past and the present agree
    assert tr[b"b"] == b"1"  # changed since `old`: the value as of `old` (MVCC window)
    future = db.create_transaction()
    future.set_read_version(old + 100)
    with pytest.raises(fdb_backend.FDBError) as info:
        future[b"a"]
    assert info.value.code == 1009
    db.close()


def test_batched_reads_at_an_old_version_read_the_past(tmp_path: Path) -> None:
    db = fdb_backend.open_database(f"embedded://{tmp_path}/s.sqlite3")
    for key in (b"a1", b"a2", b"b1"):
        db[key] = b"1"
    old = db.create_transaction().get_read_version().wait()
    db[b"b2"] = b"2"
    tr = db.create_transaction()
    tr.set_read_version(old)
    got = tr.get_ranges([(b"a", b"b"), (b"c", b"d")])  # unchanged since `old`
    assert [[kv.key for kv in kvs] for kvs in got] == [[b"a1", b"a2"], []]
    tr = db.create_transaction()
    tr.set_read_version(old)  # the first read of the transaction is the batched one
    got = tr.snapshot.get_ranges([(b"a", b"b"), (b"b", b"c")])
    assert [[kv.key for kv in kvs] for kvs in got] == [[b"a1", b"a2"], [b"b1"]]
    db.close()


def test_get_database_follows_settings(settings_url: str) -> None:
    db = fdb_backend.get_database()
    assert db is fdb_backend.get_database()
    fdb_backend.reset_database()
    assert fdb_backend.get_database() is not db


@pytest.fixture
def settings_url(settings: Any, tmp_path: Path) -> Iterator[str]:
    url = f"embedded://{tmp_path}/settings.sqlite3"
    settings.CODITECT_STORAGE_URL = url
    yield url
    fdb_backend.reset_database()


def test_the_wal_is_checkpointed_off_the_commit_path_and_the_thread_ends_on_close(
    tmp_path: Path,
) -> None:
    import threading
    import time

    from fdb_backend.engines.embedded import CHECKPOINT_AFTER_COMMITS

    def checkpointers() -> int:
        return sum(t.name == "embedded-checkpoint" and t.is_alive() for t in threading.enumerate())

    already = checkpointers()
    path = tmp_path / "store.sqlite3"
    db = fdb_backend.open_database(f"embedded://{path}")
    assert checkpointers() == already + 1
    before = path.stat().st_mtime_ns

    @fdb_backend.transactional
    def write(tr: Any, i: int) -> None:
        tr[b"k%05d" % i] = b"v" * 100

    # Commits go to the WAL; only a checkpoint writes the store file itself.
    for i in range(CHECKPOINT_AFTER_COMMITS + 5):
        write(db, i)
    deadline = time.monotonic() + 5
    while path.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert path.stat().st_mtime_ns != before, "no checkpoint reached the store file"
    db.close()
    # Ours ends; stores other tests left open in this process keep theirs.
    assert checkpointers() == already
    reopened = fdb_backend.open_database(f"embedded://{path}")
    assert reopened.create_transaction()[b"k00000"] == b"v" * 100
    reopened.close()


def _open_and_write(url: str, name: bytes, start: Any) -> None:
    start.wait(30)
    db = fdb_backend.open_database(url)
    try:
        db.create_transaction()  # the open itself is what races
        tr = db.create_transaction()
        tr[name] = b"here"
        tr.commit().wait()
    finally:
        db.close()


def test_servers_started_together_open_one_new_store(tmp_path: Path) -> None:
    """Several processes opening a store that does not exist yet, at the same moment (two
    daphnes and a WSGI worker started together): each switches it to WAL or finds it done,
    none fails with "database is locked"."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    for round_ in range(3):
        url = f"embedded://{tmp_path}/store-{round_}.sqlite3"
        start = context.Event()
        names = [b"p%d" % n for n in range(6)]
        workers = [
            context.Process(target=_open_and_write, args=(url, name, start)) for name in names
        ]
        for worker in workers:
            worker.start()
        start.set()
        for worker in workers:
            worker.join(60)
        assert [worker.exitcode for worker in workers] == [0] * len(workers)
        db = fdb_backend.open_database(url)
        assert [db.create_transaction()[name] for name in names] == [b"here"] * len(names)
        db.close()
