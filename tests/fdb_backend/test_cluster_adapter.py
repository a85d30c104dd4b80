"""The cluster engine's adapter, run over a double of the official binding (fake_fdb.py).

No cluster and no C client exist here, so the adapter's own code (translation of futures,
ranges and errors, the batched reads, the database-level helpers) runs over a stand-in with
the binding's API. The conformance suite and the records layer's batched reads are run
through it unchanged, and the log of the double proves that a batch of reads is issued as
futures before the first is waited on. Against a real cluster the conformance suite runs
as it is (conftest.py's ``cluster`` engine, when ``FDB_CLUSTER_FILE`` is set).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fdb.subspace_impl import Subspace

import fdb_backend
from fdb_backend import FDBError, KeySelector, StreamingMode
from fdb_backend.engines.cluster import ClusterDatabase
from fdb_backend.records import Collection, get_together, insert_together
from tests.fdb_backend import fake_fdb

# The conformance suite, collected here a second time with `db` below: the adapter over the
# double. (The two-process counter is left out: it reopens the store by URL in a child.)
from tests.fdb_backend.test_conformance import (  # noqa: F401 - collected by pytest
    test_atomic_on_unread_base_is_applied_at_commit,
    test_atomic_ops_byte_for_byte,
    test_counter_hammered_by_threads_is_exact,
    test_disjoint_keys_never_conflict,
    test_every_limit_raises_its_code,
    test_explicit_conflict_ranges,
    test_get_range_limit_and_reverse_return_the_first_and_last_n,
    test_get_ranges_conflicts_like_separate_reads,
    test_get_ranges_in_a_snapshot_adds_no_conflict,
    test_get_ranges_reads_what_separate_reads_read,
    test_get_ranges_refuses_what_get_range_refuses,
    test_get_ranges_sees_the_transactions_own_writes,
    test_key_selectors,
    test_non_retryable_errors_propagate,
    test_range_conflicts_are_key_precise,
    test_ranges_come_back_in_tuple_order,
    test_read_only_transaction_always_commits,
    test_read_write_conflict_is_not_committed,
    test_read_your_writes,
    test_retry_limit,
    test_snapshot_reads_add_no_conflict,
    test_threads_with_their_own_transactions,
    test_timeout_option,
    test_transaction_too_large,
    test_transaction_too_old_after_five_seconds,
    test_transactional_joins_a_transaction_and_commits_a_database,
    test_transactional_retries_conflicts,
    test_versionstamp_offset_is_checked,
    test_versionstamped_value_is_unreadable_in_its_transaction,
    test_versionstamps_strictly_increase,
)

# The records layer's batched reads (get_many, get_together, insert_together), the same way.
from tests.fdb_backend.test_records import (  # noqa: F401 - collected by pytest
    Part,
    Widget,
    outer,
    scope,
    test_get_many_reads_like_get,
    test_get_together_reads_several_collections_like_get,
    test_insert_together_creates_new_records_of_several_collections,
    widgets,
)


@pytest.fixture
def engine() -> str:
    return "cluster-double"


@pytest.fixture
def backing() -> Iterator[Any]:
    store = fdb_backend.open_database("memory:")
    yield store
    store.close()


@pytest.fixture
def db(backing: Any) -> Iterator[ClusterDatabase]:
    adapter = fake_fdb.open_adapter(backing)
    yield adapter
    adapter.close()


@pytest.fixture
def database(db: ClusterDatabase) -> ClusterDatabase:
    return db


def _log(db: ClusterDatabase) -> fake_fdb.Log:
    binding: fake_fdb.Binding = db._fdb
    return binding.log


def _reads_after(db: ClusterDatabase, mark: int) -> list[tuple[str, str]]:
    """The read events logged since ``mark``, commits and retries left out."""
    return [
        (what, label)
        for what, label in _log(db).events[mark:]
        if label.startswith(("range", "get"))
    ]


def _issued_before_waited(events: list[tuple[str, str]], count: int) -> None:
    issues = [label for what, label in events if what == "issue"]
    waits = [label for what, label in events if what == "wait"]
    assert len(issues) == count and sorted(waits) == sorted(issues)
    first_wait = next(i for i, (what, _) in enumerate(events) if what == "wait")
    assert all(what == "issue" for what, _ in events[:first_wait])
    assert first_wait == count, "a read was waited on before every read was issued"


# --- the batched reads issue every read before waiting ----------------------------------


def test_get_ranges_issues_every_read_before_the_first_wait(db: ClusterDatabase) -> None:
    ks = Subspace(("adapter", uuid.uuid4()))
    db.set(ks.pack((1, "a")), b"1")
    db.set(ks.pack((3, "c")), b"3")
    bounds = [(ks.range((n,)).start, ks.range((n,)).stop) for n in (1, 2, 3)]
    for reads in (lambda tr: tr, lambda tr: tr.snapshot):
        tr = db.create_transaction()
        mark = len(_log(db).events)
        got = reads(tr).get_ranges(bounds)
        assert got == [[(ks.pack((1, "a")), b"1")], [], [(ks.pack((3, "c")), b"3")]]
        assert all(type(kv) is fdb_backend.KeyValue for rows in got for kv in rows)
        _issued_before_waited(_reads_after(db, mark), 3)


def test_records_batched_reads_issue_every_read_before_the_first_wait(
    db: ClusterDatabase,
    scope: Any,  # noqa: F811 - the fixture imported above
    widgets: Collection[Widget],  # noqa: F811
) -> None:
    parts = Collection(Part, scope)
    red = widgets.save(db, Widget(id=uuid.uuid4(), color="red"))
    part = Part(
        widget_id=red.id, n=1, weight=1.0, active=True, made_at=datetime(2026, 1, 1, tzinfo=UTC),
        raw=b"", meta={}, kind="a",
    )  # fmt: skip

    mark = len(_log(db).events)
    assert widgets.get_many(db, [red.id, uuid.uuid4(), red.id]) == [red, None, red]
    _issued_before_waited(_reads_after(db, mark), 3)

    mark = len(_log(db).events)
    assert get_together(db, [(widgets, red.id), (parts, (red.id, 1))]) == [red, None]
    _issued_before_waited(_reads_after(db, mark), 2)

    mark = len(_log(db).events)
    made = insert_together(db, [(parts, part), (widgets, Widget(id=uuid.uuid4(), color="b"))])
    assert [m.version for m in made] == [1, 1]
    # The two key checks go out together; the index checks of the saves come after.
    _issued_before_waited(_reads_after(db, mark)[:4], 2)


def test_the_old_way_waits_on_each_read_in_turn(db: ClusterDatabase) -> None:
    """The check above fails for reads waited on one by one (what the adapter did before)."""
    ks = Subspace(("adapter", uuid.uuid4()))
    tr = db.create_transaction()
    mark = len(_log(db).events)
    for n in (1, 2):
        tr.get_range(ks.range((n,)).start, ks.range((n,)).stop)
    with pytest.raises(AssertionError, match="waited on before every read"):
        _issued_before_waited(_reads_after(db, mark), 2)


# --- the adapter's translation and the embedded-only helpers -----------------------------


def test_binding_errors_become_fdb_backend_errors_with_their_code(db: ClusterDatabase) -> None:
    tr = db.create_transaction()
    with pytest.raises(FDBError) as info:
        tr.get(b"\xff\x00")
    assert info.value.code == 2004 and type(info.value.__cause__) is fake_fdb.FDBError
    with pytest.raises(FDBError) as info:
        tr.get_ranges([(b"a", b"b"), (b"c", b"b")])
    assert info.value.code == 2005
    with pytest.raises(FDBError) as info:
        tr.set(b"k" * 10_001, b"")
    assert info.value.code == 2102
    with pytest.raises(FDBError) as info:
        tr.get_range(b"a", b"b", streaming_mode=StreamingMode.exact)
    assert info.value.code == 2210


def test_reads_return_the_embedded_engines_types(db: ClusterDatabase) -> None:
    tr = db.create_transaction()
    tr[b"a"] = b"1"
    tr[b"b"] = b"2"
    assert tr[b"a"] == b"1" and tr.get(b"z") is None and tr.snapshot[b"b"] == b"2"
    assert tr[b"a":b"c"] == [(b"a", b"1"), (b"b", b"2")]
    assert tr.snapshot[b"a":b"b"] == [(b"a", b"1")]
    assert tr.get_range_startswith(b"a") == [(b"a", b"1")]
    assert tr.snapshot.get_range_startswith(b"b", limit=1, reverse=True) == [(b"b", b"2")]
    assert tr.get_key(KeySelector.first_greater_than(b"a")) == b"b"
    assert tr.snapshot.get_key(KeySelector.last_less_than(b"b")) == b"a"
    assert isinstance(tr.get_read_version().wait(), int)
    del tr[b"a":b"b"]
    del tr[b"b"]
    assert tr.get_range(b"", b"\xff") == []
    stamp = tr.get_versionstamp()
    tr.set(b"c", b"3")
    commit = tr.commit()
    assert commit.is_ready() and commit.block_until_ready() is None and commit.wait() is None
    assert len(stamp.wait()) == 10 and tr.get_committed_version() > 0


def test_database_level_helpers_run_in_their_own_transactions(db: ClusterDatabase) -> None:
    db[b"a"] = b"1"
    db.set(b"b", b"2")
    db.set(b"c", b"3")
    assert db[b"a"] == b"1" and db.get(b"b") == b"2" and db.get(b"nope") is None
    assert db.get_range(b"a", b"c") == [(b"a", b"1"), (b"b", b"2")]
    assert db.get_range(b"a", b"\xff", limit=1, reverse=True) == [(b"c", b"3")]
    assert db[b"b":b"d"] == [(b"b", b"2"), (b"c", b"3")]
    db.clear(b"a")
    del db[b"b"]
    assert db.get_range(b"", b"\xff") == [(b"c", b"3")]
    db.set(b"d", b"4")
    db.clear_range(b"c", b"d")
    del db[b"d":b"e"]
    assert db.get_range(b"", b"\xff") == []


def test_database_level_helpers_retry_conflicts(db: ClusterDatabase, backing: Any) -> None:
    db.set(b"n", b"0")
    calls = []

    def bump(tr: Any) -> None:
        calls.append(tr.get(b"n"))
        if len(calls) == 1:  # another client writes what this one read
            backing.set(b"n", b"1")
        tr.set(b"m", b"x")

    db._run(bump)
    assert calls == [b"0", b"1"] and db.get(b"m") == b"x"


def test_fault_injection_is_refused_and_the_cluster_file_is_opened(backing: Any) -> None:
    binding = fake_fdb.Binding(backing)
    db = ClusterDatabase("/etc/foundationdb/fdb.cluster", binding=binding)
    assert binding.opened == ["/etc/foundationdb/fdb.cluster"]
    assert db.fault_rate == 0.0
    db.set_fault_injection(0.0)
    with pytest.raises(ValueError, match="embedded-engine feature"):
        db.set_fault_injection(0.1)
    assert "fdb.cluster" in repr(db)
    default = ClusterDatabase(None, binding=binding)
    assert binding.opened[-1] is None and "default cluster file" in repr(default)


def test_on_error_retries_what_is_retryable_and_raises_the_rest(db: ClusterDatabase) -> None:
    tr = db.create_transaction()
    tr.set(b"a", b"1")
    tr.on_error(FDBError(1020)).wait()
    assert tr.get(b"a") is None  # reset by the retry
    with pytest.raises(FDBError) as info:
        tr.on_error(2004).wait()
    assert info.value.code == 2004
