"""The embedded engine's pool of snapshot connections.

A transaction borrows a SQLite connection for its snapshot and gives it back when it ends or
is freed. Python 3.12 gave ``sqlite3.Connection`` a finalizer that closes it; when an abandoned
transaction sat in a garbage cycle (a traceback, a frame that refers to itself), the collector
could finalise the connection first and the transaction's ``__del__`` then pooled a closed
connection: every later transaction that drew it failed with "Cannot operate on a closed
database" (14 failures of the suite on 3.12). The pool now holds each lent connection, so
it stays reachable and open until its transaction gives it back.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import fdb_backend


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    database = fdb_backend.open_database(f"embedded://{tmp_path / 'store'}")
    database[b"k"] = b"v"
    yield database
    database.close()


def _abandon_in_a_cycle(db: Any) -> None:
    tr = db.create_transaction()
    assert tr.get(b"k") == b"v"  # borrows a snapshot connection
    cycle: list[Any] = [tr]
    cycle.append(cycle)  # only a garbage cycle refers to the transaction now


def test_transactions_freed_in_garbage_cycles_leave_the_pool_usable(db: Any) -> None:
    for _ in range(50):
        _abandon_in_a_cycle(db)
    gc.collect()
    for _ in range(100):
        tr = db.create_transaction()
        assert tr.get(b"k") == b"v"
        del tr


def test_a_lent_connection_is_held_by_the_pool_until_given_back(db: Any) -> None:
    tr = db.create_transaction()
    tr.get(b"k")
    conn = tr._conn
    assert conn is not None
    # Reachable from the database, not only from the transaction: a cycle holding the
    # transaction can no longer hold the only reference to its connection.
    assert any(referrer is db._lent for referrer in gc.get_referrers(conn))
    tr.commit()
    tr.reset()
    assert conn not in db._lent.values()


def test_a_connection_released_twice_is_pooled_once(db: Any) -> None:
    tr = db.create_transaction()
    tr.get(b"k")
    conn = tr._conn
    pooled = len(db._readers)
    db._release_reader(conn)
    db._release_reader(conn)
    assert len(db._readers) == pooled + 1
    # Two transactions must never share one snapshot connection.
    first, second = db.create_transaction(), db.create_transaction()
    first.get(b"k")
    second.get(b"k")
    assert first._conn is not second._conn
