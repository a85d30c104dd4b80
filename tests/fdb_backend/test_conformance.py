"""FoundationDB semantics, checked on every engine (see conftest.py for the list)."""

from __future__ import annotations

import struct
import threading
import uuid
from typing import Any

import fdb.tuple
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fdb_backend
from fdb_backend import FDBError, KeySelector, StreamingMode, clock
from tests.fdb_backend.conftest import commit, in_threads

ONE = struct.pack("<q", 1)


def codes(fn: Any) -> int:
    with pytest.raises(FDBError) as info:
        fn()
    return info.value.code


# --- tuple layer and ordering ---------------------------------------------------------

elements = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.uuids(),
    st.booleans(),
)


@given(st.lists(st.tuples(st.integers(-(2**70), 2**70), st.text(max_size=6)), max_size=30))
@settings(max_examples=60, deadline=None)
def test_tuple_order_equals_byte_order(items: list[tuple[int, str]]) -> None:
    by_tuple = sorted(set(items))
    by_bytes = sorted(set(items), key=lambda t: fdb.tuple.pack(t))
    assert by_tuple == by_bytes


def test_ranges_come_back_in_tuple_order(db: Any, ks: Any) -> None:
    items = [(n, s) for n in (-300, -1, 0, 1, 2, 255, 256, 70000) for s in ("", "a", "ab", "b")]

    @fdb_backend.transactional
    def write(tr: Any) -> None:
        for item in reversed(items):
            tr[ks.pack(item)] = b""

    write(db)
    got = [ks.unpack(kv.key) for kv in db.create_transaction().get_range(*_range(ks))]
    assert got == sorted(items)


def _range(ks: Any) -> tuple[bytes, bytes]:
    r = ks.range()
    return r.start, r.stop


@given(st.lists(elements, min_size=1, max_size=4))
@settings(max_examples=100, deadline=None)
def test_tuple_round_trip(items: list[Any]) -> None:
    assert fdb.tuple.unpack(fdb.tuple.pack(tuple(items))) == tuple(items)


# --- reads and writes -----------------------------------------------------------------


def test_read_your_writes(db: Any, ks: Any) -> None:
    a, b, c, d = (ks.pack((x,)) for x in "abcd")
    seed = db.create_transaction()
    seed[a] = b"1"
    seed[c] = b"3"
    seed[d] = b"4"
    commit(seed)

    tr = db.create_transaction()
    assert tr[a] == b"1"
    tr[b] = b"2"
    tr[a] = b"one"
    del tr[d]
    assert tr[b] == b"2"
    assert tr[a] == b"one"
    assert tr[d] is None
    assert [kv.value for kv in tr.get_range(*_range(ks))] == [b"one", b"2", b"3"]
    assert [kv.value for kv in tr.get_range(*_range(ks), reverse=True)] == [b"3", b"2", b"one"]
    tr.clear_range(b, d)
    assert [kv.key for kv in tr.get_range(*_range(ks))] == [a]
    tr[c] = b"again"
    assert [kv.value for kv in tr.get_range(*_range(ks))] == [b"one", b"again"]
    tr.add(ks.pack(("n",)), ONE)
    tr.add(ks.pack(("n",)), ONE)
    assert tr[ks.pack(("n",))] == struct.pack("<q", 2)
    commit(tr)

    after = db.create_transaction()
    assert [(kv.key, kv.value) for kv in after.get_range(*_range(ks))] == [
        (a, b"one"),
        (c, b"again"),
        (ks.pack(("n",)), struct.pack("<q", 2)),
    ]


def test_atomic_on_unread_base_is_applied_at_commit(db: Any, ks: Any) -> None:
    key = ks.pack(("counter",))
    for _ in range(3):
        # Not through the retry loop: a blind add is not idempotent under 1021.
        bump = db.create_transaction()
        bump.add(key, ONE)
        commit(bump)
    tr = db.create_transaction()
    tr.add(key, ONE)
    assert tr[key] == struct.pack("<q", 4)
    assert tr.snapshot[key] == struct.pack("<q", 4)


def test_get_range_limit_and_reverse_return_the_first_and_last_n(db: Any, ks: Any) -> None:
    @fdb_backend.transactional
    def fill(tr: Any) -> None:
        for i in range(20):
            tr[ks.pack((i,))] = bytes([i])

    fill(db)
    tr = db.create_transaction()
    assert [ks.unpack(kv.key)[0] for kv in tr.get_range(*_range(ks), limit=3)] == [0, 1, 2]
    rev = tr.get_range(*_range(ks), limit=3, reverse=True)
    assert [ks.unpack(kv.key)[0] for kv in rev] == [19, 18, 17]
    assert [ks.unpack(kv.key)[0] for kv in tr.get_range_startswith(ks.key(), limit=2)] == [0, 1]
    tr[ks.pack((5,))] = b"x"
    del tr[ks.pack((1,))]
    assert [ks.unpack(kv.key)[0] for kv in tr.get_range(*_range(ks), limit=3)] == [0, 2, 3]
    assert codes(lambda: tr.get_range(*_range(ks), streaming_mode=StreamingMode.exact)) == 2210
    assert len(tr.get_range(*_range(ks), limit=4, streaming_mode=StreamingMode.exact)) == 4


def test_key_selectors(db: Any, ks: Any) -> None:
    @fdb_backend.transactional
    def fill(tr: Any) -> None:
        for i in (10, 20, 30):
            tr[ks.pack((i,))] = b""

    fill(db)
    tr = db.create_transaction()
    k = ks.pack
    assert tr.get_key(KeySelector.first_greater_or_equal(k((20,)))) == k((20,))
    assert tr.get_key(KeySelector.first_greater_than(k((20,)))) == k((30,))
    assert tr.get_key(KeySelector.last_less_than(k((20,)))) == k((10,))
    assert tr.get_key(KeySelector.last_less_or_equal(k((20,)))) == k((20,))
    assert tr.get_key(KeySelector.first_greater_or_equal(k((11,))) + 1) == k((30,))
    got = tr.get_range(KeySelector.first_greater_than(k((10,))), k((31,)))
    assert [kv.key for kv in got] == [k((20,)), k((30,))]


def test_snapshot_reads_add_no_conflict(db: Any, ks: Any) -> None:
    key, other = ks.pack(("k",)), ks.pack(("other",))
    reader = db.create_transaction()
    assert reader.snapshot[key] is None
    assert reader.snapshot.get_range(*_range(ks)) == []
    reader[other] = b"mine"
    writer = db.create_transaction()
    writer[key] = b"theirs"
    commit(writer)
    commit(reader)  # would be 1020 had the reads been conflict-tracked


# --- conflicts ------------------------------------------------------------------------


def test_read_write_conflict_is_not_committed(db: Any, ks: Any) -> None:
    key = ks.pack(("k",))
    t1, t2 = db.create_transaction(), db.create_transaction()
    assert t1[key] is None
    assert t2[key] is None
    t1[key] = b"1"
    t2[key] = b"2"
    commit(t1)
    assert codes(lambda: t2.commit().wait()) == 1020
    assert db.create_transaction()[key] == b"1"


def test_disjoint_keys_never_conflict(db: Any, ks: Any) -> None:
    for i in range(20):
        a, b = ks.pack(("a", i)), ks.pack(("b", i))
        t1, t2 = db.create_transaction(), db.create_transaction()
        t1[a]
        t2[b]
        t1[a] = b"x"
        t2[b] = b"y"
        commit(t1)
        commit(t2)


def test_range_conflicts_are_key_precise(db: Any, ks: Any) -> None:
    @fdb_backend.transactional
    def fill(tr: Any) -> None:
        for i in range(10):
            tr[ks.pack((i,))] = b""

    fill(db)
    # A limited read conflicts only with the part it read: keys 0..2.
    reader = db.create_transaction()
    assert len(reader.get_range(*_range(ks), limit=3)) == 3
    reader[ks.pack(("out",))] = b""
    writer = db.create_transaction()
    writer[ks.pack((5,))] = b"changed"
    commit(writer)
    commit(reader)

    reader = db.create_transaction()
    assert len(reader.get_range(*_range(ks), limit=3)) == 3
    reader[ks.pack(("out",))] = b""
    writer = db.create_transaction()
    writer[ks.pack((0, "new"))] = b""  # inside what was read (("out",), 0, 1)
    commit(writer)
    assert codes(lambda: reader.commit().wait()) == 1020


def test_read_only_transaction_always_commits(db: Any, ks: Any) -> None:
    key = ks.pack(("k",))
    reader = db.create_transaction()
    reader[key]
    writer = db.create_transaction()
    writer[key] = b"x"
    commit(writer)
    reader.commit().wait()
    assert reader.get_committed_version() == -1
    assert codes(lambda: reader.get_versionstamp().wait()) == 2021


def test_explicit_conflict_ranges(db: Any, ks: Any) -> None:
    key = ks.pack(("k",))
    t1 = db.create_transaction()
    t1.add_read_conflict_key(key)
    t1[ks.pack(("mine",))] = b""
    t2 = db.create_transaction()
    t2.add_write_conflict_key(key)
    commit(t2)
    assert codes(lambda: t1.commit().wait()) == 1020


# --- concurrency ----------------------------------------------------------------------


def test_counter_hammered_by_threads_is_exact(db: Any, ks: Any) -> None:
    from tests.fdb_backend.workers import _counter_increment

    counter, markers = ks.pack(("counter",)), ks.pack(("markers",))
    threads, each = 4, 25
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(each):
                _counter_increment(db, counter, markers)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert errors == []
    assert struct.unpack("<q", db.create_transaction()[counter])[0] == threads * each


@pytest.mark.slow
def test_counter_hammered_by_two_processes_is_exact(
    engine: str, db: Any, ks: Any, tmp_path: Any
) -> None:
    import multiprocessing

    from tests.fdb_backend.workers import hammer_counter

    if engine == "memory":
        pytest.skip("a memory store is private to its process by definition")
    url = _url_of(db)
    faults = db.fault_rate
    counter, markers = ks.pack(("counter",)), ks.pack(("markers",))
    ctx = multiprocessing.get_context("spawn")
    each = 60
    procs = [
        ctx.Process(target=hammer_counter, args=(url, counter, markers, each, faults))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert struct.unpack("<q", db.create_transaction()[counter])[0] == 2 * each


def _url_of(db: Any) -> str:
    if hasattr(db, "path"):
        return f"embedded://{db.path}"
    return f"fdb://{db.cluster_file}"


# --- limits ---------------------------------------------------------------------------


def test_every_limit_raises_its_code(db: Any, ks: Any) -> None:
    tr = db.create_transaction()
    big_key = ks.pack(("k",)) + b"x" * 10_001
    assert codes(lambda: tr.set(big_key, b"")) == 2102
    assert codes(lambda: tr.get(big_key)) == 2102
    assert codes(lambda: tr.set(ks.pack(("v",)), b"x" * 100_001)) == 2103
    tr.set(ks.pack(("v",)), b"x" * 100_000)  # exactly the limit is fine
    assert codes(lambda: tr.set(b"\xff\x01", b"")) == 2004
    assert codes(lambda: tr.get_range(ks.pack((2,)), ks.pack((1,)))) == 2005
    assert codes(lambda: tr.clear_range(ks.pack((2,)), ks.pack((1,)))) == 2005
    assert codes(lambda: tr.on_error(0).wait()) == 2000
    assert codes(lambda: tr.on_error(FDBError(2004)).wait()) == 2004


def test_transaction_too_large(db: Any, ks: Any) -> None:
    tr = db.create_transaction()
    value = b"x" * 100_000
    for i in range(101):
        tr[ks.pack((i,))] = value
    assert codes(lambda: tr.commit().wait()) == 2101


def test_transaction_too_old_after_five_seconds(
    db: Any, ks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    tr = db.create_transaction()
    tr[ks.pack(("k",))]
    now[0] += 4.9
    tr[ks.pack(("k",))]
    now[0] += 0.2
    assert codes(lambda: tr[ks.pack(("k",))]) == 1007
    tr2 = db.create_transaction()
    tr2[ks.pack(("k",))]
    tr2[ks.pack(("k",))] = b"x"
    now[0] += 5.1
    assert codes(lambda: tr2.commit().wait()) == 1007
    # 1007 is retryable: the retry loop resets and succeeds.
    tr2.on_error(FDBError(1007)).wait()
    tr2[ks.pack(("k",))] = b"x"
    commit(tr2)


def test_timeout_option(db: Any, ks: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [50.0]
    monkeypatch.setattr(clock, "monotonic", lambda: now[0])
    tr = db.create_transaction()
    tr.options.set_timeout(1000)
    now[0] += 1.5
    assert codes(lambda: tr[ks.pack(("k",))]) == 1031


def test_retry_limit(db: Any) -> None:
    tr = db.create_transaction()
    tr.options.set_retry_limit(1)
    tr.on_error(FDBError(1020)).wait()
    assert codes(lambda: tr.on_error(FDBError(1020)).wait()) == 1020


# --- atomic operations ----------------------------------------------------------------

ATOMIC_CASES = [
    # op, existing (None: absent), operand, expected (None: cleared)
    ("add", None, b"\x01\x00", b"\x01\x00"),
    ("add", b"\xff", b"\x01\x00", b"\x00\x01"),  # existing padded to the operand's length
    ("add", b"\xff\xff\x01", b"\x01\x00", b"\x00\x00"),  # truncated, carry dropped
    ("add", b"\x05", b"", b""),
    ("add", struct.pack("<q", -5), struct.pack("<q", 3), struct.pack("<q", -2)),
    ("bit_and", None, b"\x0f", b"\x0f"),
    ("bit_and", b"\xf3\xff", b"\x3f", b"\x33"),
    ("bit_and", b"\x01", b"\xff\xff", b"\x01\x00"),
    ("bit_or", b"\x01", b"\x02\x04", b"\x03\x04"),
    ("bit_xor", b"\x03\x03", b"\x01", b"\x02"),
    ("max", None, b"\x02", b"\x02"),
    ("max", b"\x05\x00", b"\x03\x00", b"\x05\x00"),
    ("max", b"\x05\x01", b"\x03", b"\x05"),  # existing truncated before comparing
    ("max", b"\x05", b"\x03\x00", b"\x05\x00"),  # existing padded
    ("min", None, b"\x09", b"\x09"),
    ("min", b"\x05\x00", b"\x03\x00", b"\x03\x00"),
    ("min", b"", b"\x03\x00", b"\x00\x00"),  # empty existing is zero
    ("min", b"\x01\x01", b"\x03", b"\x01"),
    ("byte_max", None, b"b", b"b"),
    ("byte_max", b"b", b"ab", b"b"),
    ("byte_min", b"b", b"ab", b"ab"),
    ("byte_min", None, b"z", b"z"),
    ("append_if_fits", b"ab", b"cd", b"abcd"),
    ("append_if_fits", b"a" * 99_999, b"cd", b"a" * 99_999),
    ("compare_and_clear", b"x", b"x", None),
    ("compare_and_clear", b"x", b"y", b"x"),
    ("compare_and_clear", None, b"y", None),
]


@pytest.mark.parametrize(("op", "existing", "operand", "expected"), ATOMIC_CASES)
def test_atomic_ops_byte_for_byte(
    db: Any, ks: Any, op: str, existing: bytes | None, operand: bytes, expected: bytes | None
) -> None:
    key = ks.pack((op,))
    if existing is not None:
        seed = db.create_transaction()
        seed[key] = existing
        commit(seed)
    tr = db.create_transaction()
    getattr(tr, op)(key, operand)
    commit(tr)
    assert db.create_transaction()[key] == expected
    # The same result when the base is known inside the transaction (read-your-writes).
    tr = db.create_transaction()
    if existing is None:
        tr.clear(key)
    else:
        tr[key] = existing
    getattr(tr, op)(key, operand)
    assert tr[key] == expected


# --- versionstamps --------------------------------------------------------------------


def test_versionstamps_strictly_increase(db: Any, ks: Any) -> None:
    stamps = []
    for i in range(10):
        tr = db.create_transaction()
        key = ks.pack_with_versionstamp(("log", fdb.tuple.Versionstamp()))
        tr.set_versionstamped_key(key, struct.pack(">I", i))
        tr.set_versionstamped_value(ks.pack(("last",)), b"\x00" * 10 + struct.pack("<I", 0))
        future = tr.get_versionstamp()
        commit(tr)
        stamps.append(future.wait())
    assert stamps == sorted(stamps)
    assert len(set(stamps)) == len(stamps)
    assert all(len(s) == 10 for s in stamps)
    tr = db.create_transaction()
    log = tr.get_range_startswith(ks.pack(("log",)))
    assert [struct.unpack(">I", kv.value)[0] for kv in log] == list(range(10))
    assert [ks.unpack(kv.key)[1].tr_version for kv in log] == stamps
    assert tr[ks.pack(("last",))] == stamps[-1]


def test_versionstamped_value_is_unreadable_in_its_transaction(db: Any, ks: Any) -> None:
    tr = db.create_transaction()
    key = ks.pack(("v",))
    tr.set_versionstamped_value(key, b"\x00" * 10 + struct.pack("<I", 0))
    assert codes(lambda: tr[key]) == 1036


def test_versionstamp_offset_is_checked(db: Any, ks: Any) -> None:
    tr = db.create_transaction()
    bad = ks.pack(("x",)) + struct.pack("<I", 500)
    assert codes(lambda: tr.set_versionstamped_key(bad, b"")) == 2000


# --- the retry loop -------------------------------------------------------------------


def test_transactional_joins_a_transaction_and_commits_a_database(db: Any, ks: Any) -> None:
    key = ks.pack(("k",))

    @fdb_backend.transactional
    def put(tr: Any, value: bytes) -> bytes | None:
        before = tr[key]
        tr[key] = value
        return before

    assert put(db, b"1") is None
    tr = db.create_transaction()
    assert put(tr, b"2") == b"1"
    assert put(tr=tr, value=b"3") == b"2"
    assert db.create_transaction()[key] == b"1"  # joined, not committed yet
    commit(tr)
    assert db.create_transaction()[key] == b"3"


def test_transactional_retries_conflicts(db: Any, ks: Any) -> None:
    key = ks.pack(("k",))
    runs = []

    @fdb_backend.transactional
    def rmw(tr: Any) -> None:
        runs.append(1)
        tr[key]
        if len(runs) == 1:
            other = db.create_transaction()
            other[key] = b"interloper"
            commit(other)
        tr[key] = b"mine"

    rmw(db)
    assert len(runs) >= 2
    assert db.create_transaction()[key] == b"mine"


def test_non_retryable_errors_propagate(db: Any, ks: Any) -> None:
    @fdb_backend.transactional
    def bad(tr: Any) -> None:
        tr[ks.pack(("k",)) + b"x" * 10_001] = b""

    with pytest.raises(FDBError) as info:
        bad(db)
    assert info.value.code == 2102


@fdb_backend.transactional
def put(tr: Any, key: bytes, value: bytes) -> None:
    tr[key] = value
    assert tr[key] == value


def test_threads_with_their_own_transactions(db: Any, ks: Any) -> None:
    def work(n: int) -> None:
        for i in range(20):
            put(db, ks.pack((n, i)), uuid.uuid4().bytes)

    errors = in_threads(work, 4)
    assert errors == []
    assert len(db.create_transaction().get_range(*_range(ks))) == 80


# --- get_ranges: several range reads at once --------------------------------------------


def _bounds(ks: Any, *prefix: Any) -> tuple[bytes, bytes]:
    r = ks.range(prefix)
    return r.start, r.stop


def _fill_groups(db: Any, ks: Any) -> None:
    @fdb_backend.transactional
    def fill(tr: Any) -> None:
        for group in range(5):
            for i in range(group * 3):
                tr[ks.pack((group, i))] = b"v%d.%d" % (group, i)

    fill(db)


@pytest.mark.parametrize("limit", [0, 1, 4])
def test_get_ranges_reads_what_separate_reads_read(db: Any, ks: Any, limit: int) -> None:
    _fill_groups(db, ks)
    # Out of order, one empty, one twice.
    bounds = [_bounds(ks, g) for g in (4, 0, 2, 3, 4)]
    bounds.append((ks.pack((2, 1)), ks.pack((3, 2))))  # overlapping two groups
    tr = db.create_transaction()
    separate = [tr.get_range(b, e, limit) for b, e in bounds]
    assert tr.get_ranges(bounds, limit) == separate
    assert tr.snapshot.get_ranges(bounds, limit) == separate
    assert [len(r) for r in separate][:3] == ([12, 0, 6] if not limit else [limit, 0, limit])


@pytest.mark.parametrize(
    "bad",
    [
        (b"\xff\x01", b"\xff\x02"),  # system keys
        (b"b", b"a"),  # inverted
        (b"k" * 10_001, b"z"),  # key too large
        ("text", b"z"),  # not bytes
    ],
)
def test_get_ranges_refuses_what_get_range_refuses(db: Any, ks: Any, bad: Any) -> None:
    good = _bounds(ks, 1)

    def error_of(call: Any) -> Any:
        try:
            call()
        except Exception as error:  # compared below, not handled
            return type(error), getattr(error, "code", None)
        return None

    tr = db.create_transaction()
    single = error_of(lambda: tr.get_range(*bad))
    assert single is not None
    assert error_of(lambda: db.create_transaction().get_ranges([good, bad])) == single
    assert error_of(lambda: db.create_transaction().snapshot.get_ranges([bad, good])) == single


def test_get_ranges_sees_the_transactions_own_writes(db: Any, ks: Any) -> None:
    _fill_groups(db, ks)
    tr = db.create_transaction()
    tr[ks.pack((0, "new"))] = b"mine"
    tr.clear(ks.pack((2, 0)))
    got = tr.get_ranges([_bounds(ks, 0), _bounds(ks, 2)])
    assert [kv.value for kv in got[0]] == [b"mine"]
    assert ks.pack((2, 0)) not in [kv.key for kv in got[1]]


def test_a_range_read_again_is_the_snapshots_with_the_transactions_writes(db: Any, ks: Any) -> None:
    # The embedded engine keeps the stored rows of ranges it read for the transaction's
    # snapshot: a read again (whole, limited, reversed, batched) must still see that
    # snapshot, not a commit made since, with this transaction's own writes laid over it.
    def pairs(kvs: Any) -> list[tuple[bytes, bytes]]:
        return [(kv.key, kv.value) for kv in kvs]

    _fill_groups(db, ks)
    g1, g2 = _bounds(ks, 1), _bounds(ks, 2)
    tr = db.create_transaction()
    first = pairs(tr.get_range(*g2))
    group1 = [b"v1.0", b"v1.1", b"v1.2"]
    assert [kv.value for kv in tr.get_ranges([g1, g2])[0]] == group1
    other = db.create_transaction()
    other[ks.pack((2, 0))] = b"changed"
    other[ks.pack((1, 9))] = b"added"
    commit(other)
    assert pairs(tr.get_range(*g2)) == first
    assert [kv.value for kv in tr.get_ranges([g1, g2])[0]] == group1
    assert pairs(tr.get_range(*g2, limit=2)) == first[:2]
    assert pairs(tr.get_range(*g2, reverse=True, limit=2)) == first[::-1][:2]
    tr[ks.pack((2, 1))] = b"mine"
    tr.clear(ks.pack((2, 0)))
    assert [kv.value for kv in tr.get_range(*g2)] == [b"mine"] + [v for _, v in first[2:]]
    assert [kv.value for kv in tr.get_range(*g2, reverse=True, limit=1)] == [first[-1][1]]
    # The commit since: this transaction read its keys.
    assert codes(lambda: tr.commit().wait()) == 1020


def test_get_ranges_conflicts_like_separate_reads(db: Any, ks: Any) -> None:
    _fill_groups(db, ks)
    reader = db.create_transaction()
    reader.get_ranges([_bounds(ks, 1), _bounds(ks, 3)])
    reader[ks.pack(("out",))] = b"x"
    writer = db.create_transaction()
    writer[ks.pack((3, "late"))] = b"y"
    commit(writer)
    assert codes(lambda: reader.commit().wait()) == 1020


def test_get_ranges_in_a_snapshot_adds_no_conflict(db: Any, ks: Any) -> None:
    _fill_groups(db, ks)
    reader = db.create_transaction()
    reader.snapshot.get_ranges([_bounds(ks, 1), _bounds(ks, 3)])
    reader[ks.pack(("out",))] = b"x"
    writer = db.create_transaction()
    writer[ks.pack((3, "late"))] = b"y"
    commit(writer)
    commit(reader)
