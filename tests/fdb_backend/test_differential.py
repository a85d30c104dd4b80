"""Random transaction programs run on several engines, every result and error compared.

In the spirit of FoundationDB's binding tester: hypothesis draws a program (sets, clears,
range clears, reads of every kind with limits, reverse and streaming modes, key selectors,
atomic ops, snapshot reads, explicit conflict ranges, versionstamped keys and values,
commits, resets, ``on_error``, and a second transaction open at the same time, so programs
conflict), over a small key space of tuple-packed keys plus keys and values at the size
limits and outside the legal range. The same program runs against

* ``memory``: the embedded engine on a private, non-durable file;
* ``embedded``: the embedded engine on a durable file, as production runs it;
* ``cluster-double``: the cluster engine's adapter over a double of the official binding
  (tests/fdb_backend/fake_fdb.py), itself over a memory store, which checks that the
  adapter's translation of futures, ranges, selectors and errors changes no result;

and each step's outcome (value, or ``FDBError`` code, or exception type) must be the same on
all of them, as must the store's contents at the end. Versions are compared too: every
engine starts at the same version and adds one per commit, so read versions, committed
versions and versionstamps must agree.

Bounded for ``make test``: 60 examples of a few dozen steps each (about 10 s);
``CODITECT_DIFFERENTIAL_EXAMPLES=2000`` searches deeper. Two divergences it found inside the
embedded engine (a failed ``get_ranges`` batch, fixed) are kept as tests at the end.
"""

from __future__ import annotations

import functools
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import fdb.tuple
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fdb_backend
from fdb_backend import FDBError, KeySelector, StreamingMode
from tests.fdb_backend import fake_fdb

SLOTS = 2  # transactions open at once in a program: enough to make conflicts
# Bounded for `make test` (about 10 s here); set higher for a deeper search.
EXAMPLES = int(os.environ.get("CODITECT_DIFFERENTIAL_EXAMPLES", "60"))

# --- the key space ----------------------------------------------------------------------

small_keys = st.builds(
    lambda n, s: bytes(fdb.tuple.pack(("d", n, s))),
    st.integers(0, 3),
    st.sampled_from(["", "a"]),
)
edge_keys = st.sampled_from(
    [
        b"",  # the first key
        bytes(fdb.tuple.pack(("d",))),  # a prefix of every small key
        bytes(fdb.tuple.pack(("e",))),  # past every small key
        b"d" * 10_000,  # the largest legal key
        b"d" * 10_001,  # too large: 2102
        b"\xff",  # the end of the legal range (2004 for a key, fine as a range end)
        b"\xff\x00",  # a system key: 2004
    ]
)
keys = st.one_of(*[small_keys] * 6, edge_keys)
small_values = st.one_of(
    st.builds(lambda v: bytes(fdb.tuple.pack((v,))), st.integers(-3, 3) | st.text(max_size=3)),
    st.binary(max_size=9),
)
values = st.one_of(
    *[small_values] * 6,
    st.sampled_from([b"v" * 100_000, b"v" * 100_001]),  # the largest legal value, and 2103
)
selectors = st.builds(KeySelector, keys, st.booleans(), st.integers(-2, 3))
bounds = st.one_of(keys, selectors)
limits = st.sampled_from([0, 0, 1, 2, 3])
modes = st.sampled_from(
    [
        StreamingMode.iterator,
        StreamingMode.want_all,
        StreamingMode.exact,  # without a limit: 2210
        StreamingMode.small,
        StreamingMode.serial,
    ]
)
ATOMICS = [
    "add",
    "bit_and",
    "bit_or",
    "bit_xor",
    "max",
    "min",
    "byte_max",
    "byte_min",
    "append_if_fits",
    "compare_and_clear",
]
operands = st.one_of(
    st.builds(lambda n: struct.pack("<q", n), st.integers(-(2**63), 2**63 - 1)),
    st.binary(max_size=4),
)
slot = st.integers(0, SLOTS - 1)


def _stamped(prefix: bytes, offset_shift: int) -> bytes:
    """``prefix`` + a 10-byte placeholder + its 4-byte little-endian offset (shifted to make
    an invalid offset sometimes)."""
    return prefix + b"\x00" * 10 + struct.pack("<I", len(prefix) + offset_shift)


writes = st.tuples(st.just("set"), slot, keys, values)
reads = st.one_of(
    st.tuples(st.just("get"), slot, keys, st.booleans()),
    st.tuples(
        st.just("get_range"), slot, bounds, bounds, limits, st.booleans(), modes, st.booleans()
    ),
)
ops = st.one_of(
    writes,
    writes,
    reads,
    reads,
    st.tuples(st.just("commit"), slot),
    st.tuples(st.just("clear"), slot, keys),
    st.tuples(st.just("clear_range"), slot, keys, keys),
    st.tuples(
        st.just("get_ranges"),
        slot,
        st.lists(st.tuples(keys, keys), max_size=3),
        limits,
        st.booleans(),
    ),
    st.tuples(st.just("get_key"), slot, selectors, st.booleans()),
    st.tuples(st.just("atomic"), slot, st.sampled_from(ATOMICS), keys, operands),
    st.tuples(st.just("stamped_key"), slot, small_keys, st.sampled_from([0, 0, 0, 30])),
    st.tuples(
        st.just("stamped_value"),
        slot,
        small_keys,
        st.binary(max_size=3),
        st.sampled_from([0, 0, 5]),
    ),
    st.tuples(st.just("read_conflict"), slot, keys, keys),
    st.tuples(st.just("write_conflict"), slot, keys, keys),
    st.tuples(st.just("read_version"), slot),
    # set_read_version(v) with an older v would go here; left out while the embedded
    # engine's answer to it (1007 where a cluster serves the old value) is being changed.
    st.tuples(st.just("commit"), slot),
    st.tuples(st.just("commit"), slot),
    st.tuples(st.just("on_error"), slot, st.sampled_from([1020, 1007, 1021, 2004])),
    st.tuples(st.just("reset"), slot),
    st.tuples(st.just("new"), slot),
)
# Two transactions racing on a key: the reader's commit conflicts unless its read was a
# snapshot read (random steps alone rarely line this up).
races = st.builds(
    lambda key, snap, value, other: [
        ("get", 0, key, snap),
        ("set", 1, key, value),
        ("commit", 1),
        ("set", 0, other, value),
        ("commit", 0),
    ],
    small_keys,
    st.booleans(),
    small_values,
    small_keys,
)
chunks = st.one_of(ops.map(lambda op: [op]), races)

# A committed seed first, so that reads find data and writes overwrite it.
programs = st.builds(
    lambda seed, rest: [
        *(("set", 0, k, v) for k, v in seed),
        ("commit", 0),
        *(op for chunk in rest for op in chunk),
    ],
    st.lists(st.tuples(small_keys, small_values), min_size=2, max_size=8),
    st.lists(chunks, min_size=10, max_size=40),
)


# --- running a program ------------------------------------------------------------------


def _outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """What a step gave, comparable across engines."""
    try:
        result = fn()
    except FDBError as error:
        return ("error", error.code)
    except Exception as error:  # a non-FDB error must agree too
        return ("raised", type(error).__name__)
    return ("ok", _plain(result))


def _plain(value: Any) -> Any:
    """``value`` with the type of every part spelled out (``bytes`` equals a ``bytearray``
    and a ``KeyValue`` equals a tuple in Python; an engine must return the same types)."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, [_plain(item) for item in value])
    return (type(value).__name__, value)


class Runner:
    """One engine's transactions of a program, and their pending versionstamps."""

    def __init__(self, db: Any) -> None:
        self.db = db
        self.slots = [db.create_transaction() for _ in range(SLOTS)]
        self.stamps: list[Any] = [tr.get_versionstamp() for tr in self.slots]

    def _fresh(self, i: int) -> None:
        self.slots[i] = self.db.create_transaction()
        self.stamps[i] = self.slots[i].get_versionstamp()

    def step(self, op: tuple[Any, ...]) -> Any:
        name, i, *args = op
        tr = self.slots[i]
        if name == "set":
            return _outcome(lambda: tr.set(*args))
        if name == "clear":
            return _outcome(lambda: tr.clear(*args))
        if name == "clear_range":
            return _outcome(lambda: tr.clear_range(*args))
        if name == "get":
            key, snap = args
            return _outcome(lambda: (tr.snapshot if snap else tr).get(key))
        if name == "get_range":
            begin, end, limit, reverse, mode, snap = args
            reads = tr.snapshot if snap else tr
            return _outcome(lambda: reads.get_range(begin, end, limit, reverse, mode))
        if name == "get_ranges":
            ranges, limit, snap = args
            reads = tr.snapshot if snap else tr
            return _outcome(lambda: reads.get_ranges(ranges, limit))
        if name == "get_key":
            selector, snap = args
            return _outcome(lambda: (tr.snapshot if snap else tr).get_key(selector))
        if name == "atomic":
            fn, key, operand = args
            return _outcome(lambda: getattr(tr, fn)(key, operand))
        if name == "stamped_key":
            key, shift = args
            return _outcome(lambda: tr.set_versionstamped_key(_stamped(key, shift), b"s"))
        if name == "stamped_value":
            key, prefix, shift = args
            return _outcome(lambda: tr.set_versionstamped_value(key, _stamped(prefix, shift)))
        if name == "read_conflict":
            return _outcome(lambda: tr.add_read_conflict_range(*args))
        if name == "write_conflict":
            return _outcome(lambda: tr.add_write_conflict_range(*args))
        if name == "read_version":
            return _outcome(lambda: tr.get_read_version().wait())
        if name == "commit":
            committed = _outcome(lambda: tr.commit().wait())
            version = _outcome(tr.get_committed_version)
            stamp = _outcome(self.stamps[i].wait)
            self._fresh(i)  # a committed (or failed) transaction is not used again
            return (committed, version, stamp)
        if name == "on_error":
            (code,) = args
            return _outcome(lambda: tr.on_error(FDBError(code)).wait())
        if name == "reset":
            return _outcome(tr.reset)
        assert name == "new"
        self._fresh(i)
        return ("ok", None)

    def contents(self) -> Any:
        return _outcome(lambda: self.db.create_transaction().get_range(b"", b"\xff"))


def _brief(value: Any) -> str:
    """``repr(value)`` with long byte strings shortened (keys and values at the limits)."""
    if isinstance(value, bytes) and len(value) > 40:
        return f"<{len(value)} bytes {value[:12]!r}...>"
    if isinstance(value, list | tuple):
        inner = ", ".join(_brief(item) for item in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return repr(value)


@contextmanager
def engines() -> Iterator[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="differential-") as tmp:
        backing = fdb_backend.open_database("memory:")
        opened = {
            "memory": fdb_backend.open_database("memory:"),
            "embedded": fdb_backend.open_database(f"embedded://{tmp}/store.sqlite3"),
            "cluster-double": fake_fdb.open_adapter(backing),
        }
        try:
            yield opened
        finally:
            for db in opened.values():
                db.close()
            backing.close()


def run_everywhere(program: list[tuple[Any, ...]]) -> None:
    with engines() as dbs:
        runners = {name: Runner(db) for name, db in dbs.items()}
        for n, op in enumerate(program):
            got = {name: runner.step(op) for name, runner in runners.items()}
            expected = got["memory"]
            for name, outcome in got.items():
                assert outcome == expected, (
                    f"step {n} {_brief(op)}: {name} {_brief(outcome)} != {_brief(expected)}"
                    f" in {_brief(program)}"
                )
        ends = {name: runner.contents() for name, runner in runners.items()}
        for name, end in ends.items():
            assert end == ends["memory"], f"final contents differ on {name}"


# Passing takes seconds; a failure is shrunk for up to hypothesis's 5 minutes before the
# smallest program is reported, which the suite's 300 s timeout would cut short.
@pytest.mark.timeout(600)
@given(programs)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
def test_engines_agree_on_random_programs(program: list[tuple[Any, ...]]) -> None:
    run_everywhere(program)


def test_a_program_with_a_conflict_agrees_and_conflicts() -> None:
    """A fixed program through the same machinery: the comparison sees real conflicts."""
    k = bytes(fdb.tuple.pack(("d", 1, "")))
    program: list[tuple[Any, ...]] = [
        ("get", 0, k, False),
        ("set", 1, k, b"1"),
        ("commit", 1),
        ("set", 0, k, b"0"),
        ("commit", 0),
        ("get", 0, k, False),
    ]
    run_everywhere(program)
    with engines() as dbs:
        runner = Runner(dbs["embedded"])
        results = [runner.step(op) for op in program]
    assert results[4][0] == ("error", 1020)
    assert results[5] == ("ok", ("bytes", b"1"))


def _commit_after_a_failed_batch(db: Any, *, written: bool) -> Any:
    """The reader's commit after its failed batch and another's write to its first range."""
    a, b = bytes(fdb.tuple.pack(("d", 1))), bytes(fdb.tuple.pack(("d", 2)))
    reader = db.create_transaction()
    if written:
        reader.set(bytes(fdb.tuple.pack(("x",))), b"")
    with pytest.raises(FDBError):
        reader.get_ranges([(a, b), (b, a)])  # the second range is inverted: 2005
    writer = db.create_transaction()
    writer.set(a, b"w")
    writer.commit().wait()
    reader.set(bytes(fdb.tuple.pack(("y",))), b"")
    return _outcome(lambda: reader.commit().wait())


def test_a_failed_get_ranges_keeps_the_same_conflicts_with_or_without_writes() -> None:
    with engines() as dbs:
        db = dbs["embedded"]
        with_writes = _commit_after_a_failed_batch(db, written=True)
        without = _commit_after_a_failed_batch(db, written=False)
        assert with_writes == without, (with_writes, without)


def test_get_ranges_refuses_a_range_like_get_range() -> None:
    with engines() as dbs:
        db = dbs["embedded"]
        bounds = (b"\xff\x00", b"d" * 10_001)
        single = _outcome(lambda: db.create_transaction().get_range(*bounds))
        batched = _outcome(lambda: db.create_transaction().get_ranges([bounds, (b"", b"a")]))
        assert single == ("error", 2004)
        assert batched == single


def test_a_refused_range_stops_a_batch_before_the_next_range_takes_a_read_version() -> None:
    """Found by the random programs: the cluster adapter started every range of a batch,
    so a valid range after a refused one took a read version the separate reads never take,
    and a later snapshot read missed a commit that the engines saw."""
    seen: dict[str, Any] = {}
    with engines() as dbs:
        for name, db in dbs.items():
            key = bytes(fdb.tuple.pack(("later", name)))
            reader: Any = db.create_transaction()
            batch = [(b"b", b"a"), (b"", b"z")]  # the first range is inverted: 2005
            refused = _outcome(functools.partial(reader.get_ranges, batch))
            writer = db.create_transaction()
            writer.set(key, b"w")
            writer.commit().wait()
            found = reader.snapshot.get(key)
            seen[name] = (refused, found)
    assert seen == {name: (("error", 2005), b"w") for name in seen}, seen
