"""Bounded range reads: key-values in growing batches, and record chunks grouped by key."""

from __future__ import annotations

from collections import deque
from typing import Any

from fdb_backend import tuples
from fdb_backend.selectors import KeyValue

# Later batches grow from the first (a page size) up to this many keys per read.
MAX_BATCH = 1000


class RangeReader:
    """Key-values of ``[begin, end)`` in order, read lazily in batches.

    The first batch is ``batch`` keys (0: the whole range at once), so a page of n records
    usually costs one read of n + 1 keys; the read conflict range covers only what was read.
    """

    def __init__(self, tr: Any, begin: bytes, end: bytes, *, reverse: bool, batch: int) -> None:
        self._tr = tr
        self._begin = begin
        self._end = end
        self._reverse = reverse
        self._batch = batch
        self._buffer: deque[KeyValue] = deque()
        self._exhausted = begin >= end

    def _fill(self, limit: int) -> bool:
        if self._exhausted:
            return False
        kvs = self._tr.get_range(self._begin, self._end, limit=limit, reverse=self._reverse)
        if not limit or len(kvs) < limit:
            self._exhausted = True
        if kvs:
            last = kvs[-1].key
            if self._reverse:
                self._end = last
            else:
                self._begin = last + b"\x00"
            self._buffer.extend(kvs)
        return bool(kvs)

    def peek(self) -> KeyValue | None:
        if not self._buffer:
            self._fill(self._batch)
            if self._batch:
                self._batch = min(self._batch * 2, MAX_BATCH)
        return self._buffer[0] if self._buffer else None

    def next(self) -> KeyValue | None:
        found = self.peek()
        if found is not None:
            self._buffer.popleft()
        return found

    def has_more(self) -> bool:
        """Whether another key follows, reading at most one more key to find out."""
        return bool(self._buffer) or self._fill(1)


Chunks = list[tuple[int, bytes]]


class ChunkGroups:
    """The records of a range: ``(primary key, chunks)`` per record, in key order.

    Record keys end with a chunk number (0 for a whole record, 1..n for the parts of a
    split one), so a record's keys are contiguous; a group ends at chunk 0, at chunk 1 when
    reading in reverse, or where the primary key changes.
    """

    def __init__(self, reader: RangeReader, prefix_len: int, *, reverse: bool) -> None:
        self.reader = reader
        self._prefix_len = prefix_len
        self._reverse = reverse

    def next(self) -> tuple[tuple[Any, ...], Chunks] | None:
        pk: tuple[Any, ...] | None = None
        chunks: Chunks = []
        while True:
            kv = self.reader.peek()
            if kv is None:
                break
            key = tuples.unpack(kv.key, prefix_len=self._prefix_len)
            if pk is not None and key[:-1] != pk:
                break
            self.reader.next()
            pk = key[:-1]
            chunk = key[-1]
            chunks.append((chunk, kv.value))
            if chunk == 0 or (self._reverse and chunk == 1):
                break
        return None if pk is None else (pk, chunks)


def assemble(chunks: Chunks) -> bytes | None:
    """The record bytes from its chunks, or None when they are not a whole record."""
    if len(chunks) == 1 and chunks[0][0] == 0:
        return chunks[0][1]
    ordered = sorted(chunks)
    if [n for n, _ in ordered] != list(range(1, len(ordered) + 1)):
        return None
    return b"".join(value for _, value in ordered)
