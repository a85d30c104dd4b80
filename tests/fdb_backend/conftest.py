"""Engines under test: every conformance test runs against each one available.

* ``memory``: the embedded engine on a private, non-durable file.
* ``embedded``: the default engine on a durable file, as production runs it.
* ``embedded-faults``: the same with fault injection on (commits fail with 1020 and 1021
  at random), so retry loops and idempotency are exercised by every test.
* ``cluster``: a real FoundationDB cluster, when ``FDB_CLUSTER_FILE`` names one.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import fdb.tuple
import pytest
from fdb.subspace_impl import Subspace

import fdb_backend

FAULT_RATE = 0.2
ENGINES = ["memory", "embedded", "embedded-faults", "cluster"]


def _cluster_database() -> Any:
    cluster_file = os.environ.get("FDB_CLUSTER_FILE")
    if not cluster_file:
        pytest.skip("FDB_CLUSTER_FILE is not set: no FoundationDB cluster to test against")
    try:
        db = fdb_backend.open_database("fdb://" + os.path.abspath(cluster_file))
        db.options.set_transaction_timeout(5000)
        db.create_transaction().get_read_version().wait()
    except Exception as error:  # no C client, or the cluster does not answer
        pytest.skip(f"FoundationDB cluster at FDB_CLUSTER_FILE is not reachable: {error!r}")
    return db


def open_engine(kind: str, tmp_path: Any) -> Any:
    if kind == "memory":
        return fdb_backend.open_database("memory:")
    if kind == "embedded":
        return fdb_backend.open_database(f"embedded://{tmp_path}/store.sqlite3")
    if kind == "embedded-faults":
        db = fdb_backend.open_database(f"embedded://{tmp_path}/store.sqlite3")
        db.set_fault_injection(FAULT_RATE, seed=7)
        return db
    return _cluster_database()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def db(engine: str, tmp_path: Any) -> Iterator[Any]:
    database = open_engine(engine, tmp_path)
    yield database
    database.close()


@pytest.fixture
def ks(db: Any) -> Iterator[Subspace]:
    """A keyspace of this test's own, cleared afterwards (a real cluster is shared)."""
    space = Subspace(("conformance", uuid.uuid4()))
    yield space
    fault_rate = db.fault_rate
    db.set_fault_injection(0.0)
    tr = db.create_transaction()
    tr.clear_range(*_bounds(space))
    tr.commit().wait()
    db.set_fault_injection(fault_rate)


def _bounds(space: Subspace) -> tuple[bytes, bytes]:
    r = space.range()
    return r.start, r.stop


def commit(tr: Any) -> None:
    """Commit once, looking through injected faults only (a real error still raises).

    An injected fault either happened before anything was applied (commit again: the same
    reads are checked again) or after the commit was durable (it is done).
    """
    while True:
        try:
            tr.commit().wait()
            return
        except fdb_backend.FDBError as error:
            if not error.injected:
                raise
            if tr.get_committed_version() > 0:
                return


def pack(*items: Any) -> bytes:
    return bytes(fdb.tuple.pack(items))


def in_threads(work: Callable[[int], None], count: int) -> list[BaseException]:
    """``work(0)`` to ``work(count - 1)``, each on a thread of its own, all at once; what any
    of them raised."""
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            work(n)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors
