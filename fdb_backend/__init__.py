"""The storage layer: FoundationDB's API and semantics on an embedded engine or a cluster.

Application code uses only what this module exports (and ``fdb_backend.keyspace`` /
``fdb_backend.records`` for keys and records); see docs/storage.md.
"""

from fdb_backend import _fdbcompat  # noqa: F401 - must run before fdb.tuple packs versionstamps
from fdb_backend.database import ACCEPTED, get_database, open_database, reset_database
from fdb_backend.errors import FDBError, predicates
from fdb_backend.selectors import KeySelector, KeyValue, StreamingMode
from fdb_backend.transactional import transactional

__all__ = [
    "ACCEPTED",
    "FDBError",
    "KeySelector",
    "KeyValue",
    "StreamingMode",
    "get_database",
    "open_database",
    "predicates",
    "reset_database",
    "transactional",
]
