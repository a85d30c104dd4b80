"""The MVCC window of the embedded and memory engines (issue 20.1).

A transaction whose read version is up to 5 s old reads the database as of that version
(point reads, ranges, selectors, snapshot reads), its read conflicts are checked against
every commit after it, and older versions answer 1007. Time is driven through
``fdb_backend.clock`` (``monotonic`` ages a transaction, ``wall`` stamps commits).
"""

from __future__ import annotations

import random
import sqlite3
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fdb.tuple
import pytest

import fdb_backend
from fdb_backend import FDBError, KeySelector, clock
from fdb_backend.engines import embedded
from tests.fdb_backend.conftest import open_engine

ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """Both engine clocks, moved together by the test."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def time_(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(clock, "monotonic", fake.monotonic)
    monkeypatch.setattr(clock, "wall", fake.wall)
    return fake


@pytest.fixture(params=["memory", "embedded"])
def db(request: pytest.FixtureRequest, tmp_path: Path, time_: Clock) -> Iterator[Any]:
    database = open_engine(str(request.param), tmp_path)
    yield database
    database.close()


def codes(fn: Any) -> int:
    with pytest.raises(FDBError) as info:
        fn()
    return info.value.code


def read_version(db: Any) -> int:
    return int(db.create_transaction().get_read_version().wait())


def at(db: Any, version: int) -> Any:
    tr = db.create_transaction()
    tr.set_read_version(version)
    return tr


def history_rows(db: Any) -> list[tuple[bytes, int, bytes | None]]:
    """(key, version, value before) for every before-image the store keeps."""
    conn = sqlite3.connect(f"file:{db.path}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT version, images FROM write_log WHERE images IS NOT NULL ORDER BY version"
        ).fetchall()
    finally:
        conn.close()
    return [(k, version, v) for version, blob in rows for k, v in embedded._decode_images(blob)]


def pairs(kvs: list[Any]) -> list[tuple[bytes, bytes]]:
    return [(kv.key, kv.value) for kv in kvs]


def seed(db: Any) -> int:
    """a=1 b=1 d=1 e=1 at the returned version, then b=2, a cleared, c and f created,
    [d, e\\xff) range-cleared, g added atomically: every kind of change after it."""
    for key in (b"a", b"b", b"d", b"e"):
        db[key] = b"1"
    old = read_version(db)
    db[b"b"] = b"2"
    del db[b"a"]
    db[b"c"] = b"3"
    db.clear_range(b"d", b"e\xff")
    db[b"f"] = b"6"

    @fdb_backend.transactional
    def add(tr: Any) -> None:
        tr.add(b"g", struct.pack("<q", 5))

    add(db)
    return old


PAST = [(b"a", b"1"), (b"b", b"1"), (b"d", b"1"), (b"e", b"1")]


def test_point_and_snapshot_reads_see_the_old_version(db: Any) -> None:
    old = seed(db)
    tr = at(db, old)
    assert [tr[k] for k in (b"a", b"b", b"c", b"d", b"e", b"f", b"g")] == [
        b"1", b"1", None, b"1", b"1", None, None,
    ]  # fmt: skip
    assert tr.get_read_version().wait() == old
    assert [tr.snapshot[k] for k in (b"a", b"b", b"c")] == [b"1", b"1", None]
    # The present is unchanged for a transaction at the newest version.
    now = db.create_transaction()
    assert [now[k] for k in (b"a", b"b", b"c", b"d")] == [None, b"2", b"3", None]


def test_range_reads_at_the_old_version(db: Any) -> None:
    old = seed(db)
    tr = at(db, old)
    assert pairs(tr.get_range(b"", b"\xff")) == PAST
    assert pairs(tr.get_range(b"", b"\xff", reverse=True)) == PAST[::-1]
    assert pairs(tr.get_range(b"", b"\xff", limit=2)) == PAST[:2]
    assert pairs(tr.get_range(b"", b"\xff", limit=3, reverse=True)) == PAST[::-1][:3]
    assert pairs(tr.get_range(b"b", b"e")) == PAST[1:3]
    assert pairs(tr.snapshot.get_range(b"c", b"\xff", limit=1)) == [(b"d", b"1")]
    assert pairs(tr.get_range_startswith(b"e")) == [(b"e", b"1")]
    got = tr.get_ranges([(b"a", b"c"), (b"c", b"f")])
    assert [pairs(r) for r in got] == [PAST[:2], PAST[2:]]


def test_key_selectors_at_the_old_version(db: Any) -> None:
    old = seed(db)
    tr = at(db, old)
    assert tr.get_key(KeySelector.first_greater_than(b"b")) == b"d"  # c did not exist yet
    assert tr.get_key(KeySelector.first_greater_or_equal(b"a")) == b"a"  # cleared since
    assert tr.get_key(KeySelector.last_less_than(b"z")) == b"e"  # f, g created since
    assert tr.get_key(KeySelector.last_less_or_equal(b"c")) == b"b"
    assert tr.get_key(KeySelector.first_greater_than(b"b") + 1) == b"e"
    got = tr.get_range(KeySelector.first_greater_than(b"a"), KeySelector.first_greater_than(b"d"))
    assert pairs(got) == [(b"b", b"1"), (b"d", b"1")]


def test_own_writes_overlay_the_old_version(db: Any) -> None:
    old = seed(db)
    tr = at(db, old)
    tr[b"c"] = b"mine"
    tr.clear(b"d")
    tr.add(b"b", b"\x01")  # applied to the value as of the read version
    assert tr[b"b"] == b"2"
    assert pairs(tr.get_range(b"", b"\xff")) == [
        (b"a", b"1"), (b"b", b"2"), (b"c", b"mine"), (b"e", b"1"),
    ]  # fmt: skip
    tr.clear_range(b"a", b"b")
    assert pairs(tr.get_range(b"", b"c", reverse=True)) == [(b"b", b"2")]


def test_commit_after_reading_a_changed_key_conflicts(db: Any) -> None:
    old = seed(db)
    tr = at(db, old)
    assert tr[b"b"] == b"1"
    tr[b"x"] = b"written"
    assert codes(lambda: tr.commit().wait()) == 1020
    assert db[b"x"] is None
    # A range read whose range a later commit wrote conflicts too, even over a key that
    # did not exist at the read version.
    tr = at(db, old)
    assert pairs(tr.get_range(b"c", b"d")) == []
    tr[b"x"] = b"written"
    assert codes(lambda: tr.commit().wait()) == 1020


def test_reads_of_unchanged_keys_and_snapshot_reads_commit(db: Any) -> None:
    db[b"z"] = b"26"
    old = seed(db)
    tr = at(db, old)
    assert tr[b"z"] == b"26"  # no commit after `old` wrote z
    assert tr.snapshot[b"b"] == b"1"  # changed, but a snapshot read adds no conflict
    tr[b"x"] = b"written"
    tr.commit().wait()
    assert tr.get_committed_version() > old
    assert db[b"x"] == b"written"


def test_read_versions_older_than_the_window_are_too_old(db: Any, time_: Clock) -> None:
    db[b"k"] = b"old"
    old = read_version(db)
    time_.advance(1.0)
    db[b"k"] = b"new"  # `old` stops being the newest version now
    time_.advance(4.9)
    tr = at(db, old)
    assert tr[b"k"] == b"old"
    # Its age counts from when the version was superseded: 0.1 s of life remain.
    time_.advance(0.2)
    assert codes(lambda: tr[b"k"]) == 1007
    assert codes(lambda: at(db, old)[b"k"]) == 1007
    assert codes(lambda: at(db, old).get_range(b"", b"\xff")) == 1007
    # A read version that is still the newest is as old as its transaction, as before.
    assert at(db, read_version(db))[b"k"] == b"new"
    assert codes(lambda: at(db, read_version(db) + 1)[b"k"]) == 1009


def test_commit_of_a_transaction_that_outlived_its_version_is_too_old(
    db: Any, time_: Clock
) -> None:
    db[b"k"] = b"old"
    old = read_version(db)
    db[b"k"] = b"new"
    time_.advance(3.0)
    tr = at(db, old)
    assert tr[b"j"] is None
    tr[b"j"] = b"1"
    time_.advance(2.1)
    assert codes(lambda: tr.commit().wait()) == 1007
    tr.on_error(FDBError(1007)).wait()  # retryable: the retry reads the newest version
    assert tr[b"k"] == b"new"


def test_history_is_pruned_once_out_of_the_window(db: Any, time_: Clock) -> None:
    db[b"k"] = b"0"
    old = read_version(db)
    for i in range(1, 11):
        db[b"k"] = str(i).encode()
        time_.advance(0.1)
    rows = history_rows(db)
    # One row per commit that wrote k, its creation (at `old`) included.
    assert sorted(v for k, v, _ in rows if k == b"k") == list(range(old, old + 11))
    assert at(db, old)[b"k"] == b"0"
    # Past the retention (window + slack), the next commit forgets the old versions.
    time_.advance(embedded.WRITE_LOG_RETENTION_S + 0.1)
    db[b"other"] = b"x"
    assert history_rows(db) == [(b"other", old + 11, None)]
    assert codes(lambda: at(db, old)[b"k"]) == 1007
    # Steady traffic keeps only the window's worth of history.
    for i in range(200):
        db[b"k%d" % (i % 7)] = b"v"
        time_.advance(0.1)
    assert 0 < len(history_rows(db)) <= 7 / 0.1 + embedded.TRIM_EVERY_COMMITS


def test_a_wall_clock_stepped_back_does_not_prune_history_still_in_the_window(
    db: Any, time_: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry stamped before the retention behind a younger one (the wall clock stepped
    back between them) does not take the younger one's history with it."""
    db[b"k"] = b"0"
    old = read_version(db)
    time_.advance(1.0)
    db[b"k"] = b"1"  # old's successor, stamped 1 s after it
    monkeypatch.setattr(clock, "wall", lambda: time_.now - 10.0)
    db[b"other"] = b"x"  # stamped 9 s before old's own commit
    monkeypatch.setattr(clock, "wall", time_.wall)
    # old's successor is half a second inside the window; the stepped-back entry is past
    # the retention, and the next commit trims.
    time_.advance(embedded.MVCC_WINDOW_S - 0.5)
    db[b"y"] = b"1"
    assert at(db, old)[b"k"] == b"0"


def test_model_every_version_in_the_window(db: Any, time_: Clock) -> None:
    """Random commits; every version kept reads exactly its state, any range, any limit."""
    rng = random.Random(20)
    keys = [fdb.tuple.pack((i,)) for i in range(12)]
    states: dict[int, dict[bytes, bytes]] = {read_version(db): {}}
    for step in range(40):
        tr = db.create_transaction()
        for _ in range(rng.randint(1, 3)):
            key = rng.choice(keys)
            roll = rng.random()
            if roll < 0.5:
                tr[key] = b"%d" % step if roll < 0.4 else b""  # empty: present, not absent
            elif roll < 0.7:
                tr.clear(key)
            elif roll < 0.85:
                lo, hi = sorted((key, rng.choice(keys)))
                tr.clear_range(lo, hi + b"\x00")
            else:
                tr.add(key, struct.pack("<q", 1))
        tr.commit().wait()
        time_.advance(0.05)
        states[tr.get_committed_version()] = {
            kv.key: kv.value for kv in db.create_transaction().get_range(b"", b"\xff")
        }
    for version, state in states.items():
        expected = sorted(state.items())
        for _ in range(5):
            lo, hi = sorted(rng.sample([*keys, b"", b"\xff"], 2))
            limit = rng.choice([0, 1, 3])
            reverse = rng.random() < 0.5
            want = [kv for kv in expected if lo <= kv[0] < hi]
            want = want[::-1] if reverse else want
            want = want[:limit] if limit else want
            got = at(db, version).get_range(lo, hi, limit=limit, reverse=reverse)
            assert pairs(got) == want, (version, lo, hi, limit, reverse)
        tr = at(db, version)
        assert [tr[k] for k in keys] == [state.get(k) for k in keys]


def test_versionstamped_keys_are_absent_before_their_commit(db: Any) -> None:
    old = read_version(db)
    tr = db.create_transaction()
    tr.set_versionstamped_key(b"s" + b"\x00" * 10 + struct.pack("<I", 1), b"v")
    tr.commit().wait()
    assert len(db.get_range(b"s", b"t")) == 1
    assert at(db, old).get_range(b"s", b"t") == []


def test_each_kind_of_commit_keeps_the_values_before(db: Any) -> None:
    """One key written alone (its image read by the commit's write_log row), beside images
    a range clear or an atomic op found, and many keys at once."""
    db[b"a"] = b"1"
    db[b"b"] = b""
    db[b"c"] = b"3"
    old = read_version(db)
    db[b"a"] = b"2"  # one key, present before
    db[b"new"] = b"x"  # one key, absent before
    del db[b"b"]  # one key cleared, empty before
    tr = db.create_transaction()
    tr.clear_range(b"c", b"d")
    tr[b"a"] = b"3"  # read after the clear, in the row
    tr.commit().wait()
    tr = db.create_transaction()
    tr.add(b"n", struct.pack("<q", 1))
    tr.set_versionstamped_key(b"s" + b"\x00" * 10 + struct.pack("<I", 1), b"v")
    tr.commit().wait()
    tr = db.create_transaction()
    for i in range(250):  # more keys than one statement reads
        tr[b"m%03d" % i] = b"v"
    tr[b"new"] = b"y"
    tr.commit().wait()
    past = at(db, old)
    assert pairs(past.get_range(b"", b"\xff")) == [(b"a", b"1"), (b"b", b""), (b"c", b"3")]
    assert [past[b"a"], past[b"b"], past[b"new"], past[b"n"]] == [b"1", b"", None, None]


_CHILD = """
import sys
import fdb_backend
from fdb_backend import clock
db = fdb_backend.open_database(sys.argv[1])
if len(sys.argv) > 4:  # the parent's time: a slow interpreter start must not age the version
    clock.wall = lambda: float(sys.argv[4])
if sys.argv[2] == "write":
    db[b"b"] = b"2"
    db.clear_range(b"c", b"d")
else:
    tr = db.create_transaction()
    tr.set_read_version(int(sys.argv[3]))
    print(tr[b"b"].decode(), [kv.key.decode() for kv in tr.get_range(b"", b"\\xff")])
db.close()
"""


def _child(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_processes_sharing_a_store_share_the_history(tmp_path: Path) -> None:
    """The writing process stamps its commit with its own wall clock; the reading one is
    given the parent's time at the moment it is started."""
    url = f"embedded://{tmp_path}/shared.sqlite3"
    db = fdb_backend.open_database(url)
    db[b"b"] = b"1"
    db[b"c1"] = b"1"
    old = read_version(db)
    _child(url, "write")  # another process changes b and clears c... after `old`
    tr = at(db, old)
    assert tr[b"b"] == b"1"
    assert [kv.key for kv in tr.get_range(b"", b"\xff")] == [b"b", b"c1"]
    assert db[b"b"] == b"2"
    # And a third process reads the same past from the same file.
    assert _child(url, "read", str(old), repr(time.time())) == "1 ['b', 'c1']"
    db.close()


def test_a_format_1_store_is_upgraded_and_its_past_is_too_old(tmp_path: Path) -> None:
    path = tmp_path / "v1.sqlite3"
    db = fdb_backend.open_database(f"embedded://{path}")
    db[b"k"] = b"1"
    old = read_version(db)
    db[b"k"] = b"2"
    db.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE write_log DROP COLUMN images")
    conn.execute("UPDATE state SET format = 'coditect-embedded-fdb/1', horizon = 0")
    conn.commit()
    conn.close()
    db = fdb_backend.open_database(f"embedded://{path}")
    # The versions before the upgrade have no before-images: refused, never read wrong.
    assert codes(lambda: at(db, old)[b"k"]) == 1007
    current = read_version(db)
    db[b"k"] = b"3"
    assert at(db, current)[b"k"] == b"2"
    db.close()
    assert store_layout(path) == current_layout(tmp_path)


def store_layout(path: Path) -> tuple[str, list[tuple[str, str]]]:
    """The format marker and every table's schema."""
    conn = sqlite3.connect(path)
    try:
        (found,) = conn.execute("SELECT format FROM state").fetchone()
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
    finally:
        conn.close()
    return found, tables


def current_layout(tmp_path: Path) -> tuple[str, list[tuple[str, str]]]:
    path = tmp_path / "new.sqlite3"
    fdb_backend.open_database(f"embedded://{path}").close()
    return store_layout(path)


def test_a_format_2_store_is_upgraded_in_place_keeping_its_window(tmp_path: Path) -> None:
    """Format 2 kept the before-images in a `history` table, one row per commit: they move
    into the commit's write_log row, and the versions they serve stay readable."""
    path = tmp_path / "v2.sqlite3"
    db = fdb_backend.open_database(f"embedded://{path}")
    db[b"k"] = b"1"
    db[b"gone"] = b"1"
    old = read_version(db)
    db[b"k"] = b"2"
    del db[b"gone"]
    db[b"new"] = b"1"
    newest = read_version(db)
    db.close()
    # Format 2's layout, with the same before-images.
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE history (version INTEGER PRIMARY KEY, images BLOB NOT NULL)")
    conn.execute(
        "INSERT INTO history SELECT version, images FROM write_log WHERE images IS NOT NULL"
    )
    conn.execute("ALTER TABLE write_log DROP COLUMN images")
    conn.execute("UPDATE state SET format = 'coditect-embedded-fdb/2'")
    conn.commit()
    conn.close()
    db = fdb_backend.open_database(f"embedded://{path}")
    try:
        tr = at(db, old)
        assert [tr[b"k"], tr[b"gone"], tr[b"new"]] == [b"1", b"1", None]
        assert pairs(tr.get_range(b"", b"\xff")) == [(b"gone", b"1"), (b"k", b"1")]
        assert read_version(db) == newest
        db[b"k"] = b"3"
        assert at(db, newest)[b"k"] == b"2"
    finally:
        db.close()
    assert store_layout(path) == current_layout(tmp_path)


@pytest.fixture(params=["memory", "embedded", "cluster"])
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Every engine, the real cluster too when FDB_CLUSTER_FILE names one (no driven clock:
    a cluster keeps its own time; versions a few commits old are well inside the window)."""
    database = open_engine(str(request.param), tmp_path)
    yield database
    database.close()


def test_old_read_version_reads_and_conflicts_as_on_a_cluster(any_db: Any) -> None:
    space = fdb.tuple.pack(("mvcc", str(uuid.uuid4())))
    a, b, c, x = (space + name for name in (b"a", b"b", b"c", b"x"))
    try:
        any_db[a] = b"1"
        any_db[b] = b"1"
        old = read_version(any_db)
        any_db[b] = b"2"
        del any_db[a]
        any_db[c] = b"3"
        tr = at(any_db, old)
        assert [tr[a], tr[b], tr[c]] == [b"1", b"1", None]
        assert pairs(tr.get_range(space, space + b"\xff")) == [(a, b"1"), (b, b"1")]
        tr[x] = b"written"
        assert codes(lambda: tr.commit().wait()) == 1020
    finally:
        any_db.clear_range(space, space + b"\xff")


def test_atomic_adds_beside_a_clear_keep_values_and_images(db: Any) -> None:
    # The engine reads what atomic operations apply to together with the commit's other
    # before-images: a key in a range the same commit cleared starts from nothing, a key
    # there from its value, and an old read version still sees the values before.
    one = struct.pack("<q", 1)
    for key in (b"n", b"g1"):
        db[key] = struct.pack("<q", 5)
    before = read_version(db)
    tr = db.create_transaction()
    tr.clear_range(b"g", b"h")
    tr.add(b"g1", one)
    tr.add(b"n", one)
    tr.add(b"m", one)
    tr[b"s"] = b"x"
    tr.commit().wait()
    assert [db[k] for k in (b"g1", b"n", b"m", b"s")] == [
        one, struct.pack("<q", 6), one, b"x"
    ]  # fmt: skip
    old = at(db, before)
    assert [old[k] for k in (b"g1", b"n", b"m", b"s")] == [
        struct.pack("<q", 5), struct.pack("<q", 5), None, None
    ]  # fmt: skip
