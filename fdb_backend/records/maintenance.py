"""Long walks over a collection (export, purge, index checks), in bounded batches.

Each batch is its own short transaction (well under FoundationDB's 5 seconds), resumed from
the previous one's continuation, so a walk sees no single snapshot: records changed during
it may be seen before or after the change. Batches are retried on their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import fdb.tuple

from fdb_backend.records.schema import Index, Record, utcnow
from fdb_backend.transactional import transactional

if TYPE_CHECKING:
    from fdb_backend.keyspace import IndexKeys
    from fdb_backend.records.store import Collection

R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class IndexProblem:
    """An inconsistency between records and index entries.

    ``missing``: a record lacks an entry it should have (or another record holds it);
    ``dangling``: an entry points at no record; ``stale``: an entry points at a record
    whose values no longer produce it.
    """

    kind: Literal["missing", "dangling", "stale"]
    index: str
    key: tuple[Any, ...]  # the primary key concerned
    entry: bytes  # the raw entry key


def scan(
    collection: Collection[R], db: Any, *, batch_size: int, include_expired: bool
) -> Iterator[R]:
    continuation: str | None = None
    while True:
        page = collection._page_stored(db, batch_size, continuation)
        moment = utcnow()
        for record in page.records:
            if include_expired or not collection.schema.is_expired(record, moment):
                yield record
        if page.continuation is None:
            return
        continuation = page.continuation


@transactional
def _purge_batch(
    tr: Any, collection: Collection[R], limit: int, continuation: str | None, now: datetime
) -> tuple[int, str | None]:
    page = collection._page_by_key(tr, (), limit, False, continuation, None, live_only=False)
    removed = 0
    for record in page.records:
        if collection.schema.is_expired(record, now):
            collection._remove(tr, collection.key_of(record), record)
            removed += 1
    return removed, page.continuation


def purge_expired(
    collection: Collection[R], db: Any, *, batch_size: int, now: datetime | None
) -> int:
    # A batch retried after commit_unknown_result may find its records gone and count 0.
    total = 0
    continuation: str | None = None
    while True:
        removed, continuation = _purge_batch(
            db, collection, batch_size, continuation, now or utcnow()
        )
        total += removed
        if continuation is None:
            return total


@transactional
def _check_records(
    tr: Any, collection: Collection[R], limit: int, continuation: str | None
) -> tuple[list[IndexProblem], str | None]:
    page = collection._page_by_key(tr, (), limit, False, continuation, None, live_only=False)
    problems = []
    for record in page.records:
        pk = collection.key_of(record)
        for key, (index, _, value) in collection._entries(record).items():
            if tr.get(key) != value:
                problems.append(IndexProblem("missing", index.name, pk, key))
    return problems, page.continuation


@transactional
def _check_entries(
    tr: Any,
    collection: Collection[R],
    index: Index,
    keys: IndexKeys,
    begin: bytes,
    end: bytes,
    limit: int,
) -> tuple[list[IndexProblem], bytes | None]:
    kvs = tr.get_range(begin, end, limit=limit)
    prefix_len = len(keys.subspace.key())
    pointer_len = len(keys.pointer_prefix) + len(collection.schema.key_fields)
    problems = []
    for kv in kvs:
        if index.unique:
            pointer = fdb.tuple.unpack(kv.value)
        else:
            pointer = fdb.tuple.unpack(kv.key, prefix_len=prefix_len)[-pointer_len:]
        pk = collection._local_pk(keys, pointer)
        if pk is None:
            continue  # another tenant's entry in a root index
        stored = collection._read(tr, pk)
        if stored is None:
            problems.append(IndexProblem("dangling", index.name, pk, kv.key))
            continue
        expected = collection._entries(stored).get(kv.key)
        if expected is None or expected[2] != kv.value:
            problems.append(IndexProblem("stale", index.name, pk, kv.key))
    resume = kvs[-1].key + b"\x00" if len(kvs) == limit else None
    return problems, resume


def verify_indexes(collection: Collection[R], db: Any, *, batch_size: int) -> list[IndexProblem]:
    problems: list[IndexProblem] = []
    continuation: str | None = None
    while True:
        found, continuation = _check_records(db, collection, batch_size, continuation)
        problems.extend(found)
        if continuation is None:
            break
    for index, keys in collection._indexes.values():
        begin, end = keys.range()
        resume: bytes | None = begin
        while resume is not None:
            found, resume = _check_entries(db, collection, index, keys, resume, end, batch_size)
            problems.extend(found)
    return problems
