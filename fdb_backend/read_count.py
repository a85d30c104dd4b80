"""A database that counts what its transactions read: how the tests and ``bench/lists.py``
show that a request reads only what it answers with (a filtered list reads the entries that
match, not the tenant), whatever the store holds besides.

``ReadCounting(db)`` is used in place of ``db`` (any engine): its transactions are the real
ones, each read counted on the way through (the database's own conveniences, ``db.get``
and the like, are not counted: the services read through transactions). Not for production
paths: it adds a call per read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Reads:
    """What was read: ``calls`` (a point read, a range read, each range of a batched
    read) and ``keys`` (each key-value a range read returned, and each point read)."""

    calls: int = 0
    keys: int = 0

    def reset(self) -> None:
        self.calls = self.keys = 0


class _CountingReader:
    """A transaction's (or its snapshot's) reads, counted into ``reads``."""

    def __init__(self, inner: Any, reads: Reads) -> None:
        self._inner = inner
        self._reads = reads

    def get(self, key: bytes) -> Any:
        self._reads.calls += 1
        self._reads.keys += 1
        return self._inner.get(key)

    def get_range(self, begin: Any, end: Any, *args: Any, **kwargs: Any) -> Any:
        found = self._inner.get_range(begin, end, *args, **kwargs)
        self._reads.calls += 1
        self._reads.keys += len(found)
        return found

    def get_range_startswith(self, prefix: bytes, limit: int = 0, reverse: bool = False) -> Any:
        found = self._inner.get_range_startswith(prefix, limit, reverse)
        self._reads.calls += 1
        self._reads.keys += len(found)
        return found

    def __getattr__(self, name: str) -> Any:
        if name == "get_ranges" and hasattr(self._inner, "get_ranges"):
            return self._get_ranges
        return getattr(self._inner, name)

    def _get_ranges(self, ranges: Sequence[tuple[bytes, bytes]], limit: int = 0) -> Any:
        found = self._inner.get_ranges(ranges, limit)
        self._reads.calls += len(ranges)
        self._reads.keys += sum(len(kvs) for kvs in found)
        return found

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            return self.get_range(key.start, key.stop)
        return self.get(key)


class _CountingTransaction(_CountingReader):
    @property
    def snapshot(self) -> _CountingReader:
        return _CountingReader(self._inner.snapshot, self._reads)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._inner[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._inner[key]


class ReadCounting:
    """``db`` whose transactions count their reads into ``self.reads``."""

    def __init__(self, db: Any) -> None:
        self.inner = db
        self.reads = Reads()

    def create_transaction(self) -> _CountingTransaction:
        return _CountingTransaction(self.inner.create_transaction(), self.reads)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
