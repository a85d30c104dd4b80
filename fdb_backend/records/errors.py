"""The records layer's errors: a static message, with the context as data (attributes)."""

from __future__ import annotations

from typing import Any


class RecordError(Exception):
    """Base of every error the records layer raises on purpose."""


class VersionConflict(RecordError):
    """The stored record's version is not the one the caller expected (HTTP 412/409).

    ``actual`` is 0 when the record is absent or expired.
    """

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__("record version does not match the expected version", expected, actual)
        self.expected = expected
        self.actual = actual


class UniqueViolation(RecordError):
    """Another live record already holds these values of a unique index (HTTP 409)."""

    def __init__(self, index: str, values: tuple[Any, ...]) -> None:
        super().__init__("unique index value is held by another record", index, values)
        self.index = index
        self.values = values


class RecordTooLarge(RecordError):
    """The serialized record exceeds the collection's per-record maximum (HTTP 413)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__("record exceeds the maximum record size", size, limit)
        self.size = size
        self.limit = limit


class InvalidContinuation(RecordError):
    """A continuation that is not one this query handed out (HTTP 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__("invalid continuation", reason)
        self.reason = reason


class CorruptRecord(RecordError):
    """Stored bytes that do not decode as a record of this type (a bug, or a bad migration)."""

    def __init__(self, reason: str, collection: str, key: tuple[Any, ...]) -> None:
        super().__init__("stored record cannot be decoded", reason, collection, key)
        self.reason = reason
        self.collection = collection
        self.key = key
