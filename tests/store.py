"""Which store the application tests run on: the memory engine by default, or the store that
``CODITECT_TEST_STORAGE_URL`` names, so the whole suite can run against a FoundationDB
cluster (``fdb:`` or ``fdb:///path/to/fdb.cluster``; docs/storage.md, "The whole suite on a
cluster") or against one durable embedded file shared by every test and server process.

A named store outlives each test, so it is cleared before each one: point the variable at a
cluster (or file) that holds nothing else. Tests that are about one engine (the conformance
suite, crash tests on the embedded file) keep choosing their own.
"""

from __future__ import annotations

import os
from pathlib import Path

import fdb_backend

VARIABLE = "CODITECT_TEST_STORAGE_URL"


def named_store() -> str:
    """The store named by the environment, or "" for the defaults."""
    return os.environ.get(VARIABLE, "").strip()


def store_for_test() -> str:
    """The store of a test that runs the application in this process."""
    return named_store() or "memory:"


def shared_store(tmp_path: Path) -> str:
    """A store that this process and the servers a test starts share."""
    return named_store() or f"embedded://{tmp_path}/store.sqlite3"


def clear_named_store() -> None:
    """Empty the named store (every key below the system keyspace), so each test starts from
    nothing as it does on a fresh memory store. Nothing to do without one."""
    url = named_store()
    if not url:
        return
    db = fdb_backend.open_database(url)
    try:
        db.clear_range(b"", b"\xff")
    finally:
        db.close()
