"""Typed records with secondary indexes over the storage layer (docs/keyspace.md).

Declare a record type (``Record``, ``Index``), bind it to a scope from
``fdb_backend.keyspace`` with ``Collection``, then ``get`` / ``save`` / ``delete`` /
``list_by_key`` / ``list_by_index`` / ``find_unique`` inside transactions; ``get_together``
and ``insert_together`` read and create records of several collections at once.
"""

from fdb_backend.records.errors import (
    CorruptRecord,
    InvalidContinuation,
    RecordError,
    RecordTooLarge,
    UniqueViolation,
    VersionConflict,
)
from fdb_backend.records.paging import Page
from fdb_backend.records.schema import Index, Record, epoch_micros, utcnow
from fdb_backend.records.store import (
    MAX_RECORD_SIZE,
    Collection,
    collection,
    get_together,
    insert_together,
    insert_together_sized,
    resolve_unique,
    stored_size,
)

__all__ = [
    "MAX_RECORD_SIZE",
    "Collection",
    "CorruptRecord",
    "Index",
    "InvalidContinuation",
    "Page",
    "Record",
    "RecordError",
    "RecordTooLarge",
    "UniqueViolation",
    "VersionConflict",
    "collection",
    "epoch_micros",
    "get_together",
    "insert_together",
    "insert_together_sized",
    "resolve_unique",
    "stored_size",
    "utcnow",
]
