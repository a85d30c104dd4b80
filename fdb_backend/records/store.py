"""``Collection``: one record type's records and indexes in one scope, read and written
transactionally.

Layout (all under the collection's subspace from ``fdb_backend.keyspace``):

* record: ``(pk..., 0) -> payload`` when the payload fits one value (100,000 bytes), else
  ``(pk..., 1) .. (pk..., n)`` holding consecutive 100,000-byte chunks of it;
* unique index entry: ``(values...) -> pack(pointer)``;
* other index entry: ``(values..., pointer...) -> b""``;

where ``pointer`` is the record's primary key, prefixed by the tenant id when the index lives
outside the tenant (``IndexKeys.pointer_prefix``). A record and its index entries always
change in one transaction.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

from fdb_backend import tuples
from fdb_backend.keyspace import CollectionKeys, IndexKeys, Scope
from fdb_backend.limits import VALUE_SIZE_LIMIT
from fdb_backend.records.errors import CorruptRecord, UniqueViolation, VersionConflict
from fdb_backend.records.paging import Page, decode_continuation, encode_continuation
from fdb_backend.records.reader import ChunkGroups, Chunks, RangeReader, assemble
from fdb_backend.records.schema import Index, Record, Schema, index_tuple, schema_of, utcnow
from fdb_backend.transactional import transactional

R = TypeVar("R", bound=Record)

MAX_RECORD_SIZE = 1024 * 1024  # default per-record maximum of the serialized form
CHUNK_SIZE = VALUE_SIZE_LIMIT

# Entry key -> (index, values, entry value): what a record puts in its indexes.
Entries = dict[bytes, tuple[Index, tuple[Any, ...], bytes]]

log = logging.getLogger(__name__)

# Index entries whose records an unlimited list_by_index reads together.
LIST_BATCH = 200

# The packed tail of a record key and its chunk number, both ways, for every chunk a record
# can have in a transaction (10 MB in 100,000-byte chunks; beyond, the tuple layer), so
# writing and reading a record needs no tuple coding of chunk numbers.
_CHUNK_KEYS = [tuples.pack((n,)) for n in range(128)]
_CHUNK_NUMBERS = {tail: n for n, tail in enumerate(_CHUNK_KEYS)}


def _chunks(kvs: list[Any], pk_len: int) -> Chunks:
    """A record's (chunk number, value) pairs from the key-values of its range, whose keys
    are the record's packed key (``pk_len`` bytes) and then the packed chunk number."""
    found = []
    for kv in kvs:
        tail = kv.key[pk_len:]
        number = _CHUNK_NUMBERS.get(tail)
        if number is None:
            number = tuples.unpack(tail)[-1]
        found.append((number, kv.value))
    return found


def _page_reader(
    tr: Any,
    continuation: str | None,
    prefix: bytes,
    start: bytes,
    stop: bytes,
    limit: int,
    reverse: bool,
    key_arity: int | None = None,
) -> RangeReader:
    """The reader of one page of ``[start, stop)``: resumed where ``continuation`` says, and
    fetching one key more than ``limit`` so that ``has_more()`` tells whether a page follows
    (``key_arity``: as ``decode_continuation``)."""
    begin, end = start, stop
    if continuation is not None:
        begin, end = decode_continuation(
            continuation, prefix, start, stop, reverse, key_arity=key_arity
        )
    return RangeReader(tr, begin, end, reverse=reverse, batch=limit + 1 if limit else 0)


class Collection(Generic[R]):
    """The records of type ``R`` in one scope (a tenant, or the global scope).

    Every read and write takes ``tr`` first: a transaction (joined, not committed) or a
    database (its own transaction, retried on retryable errors, so it may run several times
    and must be given everything, ids included, from outside). Readers treat a record whose
    expiry field is at or before ``now`` (default: the current UTC time) as absent. Reads
    accept ``tr.snapshot`` for reads that add no conflicts.
    """

    def __init__(
        self, record_type: type[R], scope: Scope, *, max_record_size: int = MAX_RECORD_SIZE
    ) -> None:
        self.schema: Schema = schema_of(record_type)
        self.keys: CollectionKeys = scope.collection(self.schema.collection)
        self.max_record_size = max_record_size
        self.indexes: dict[str, tuple[Index, IndexKeys]] = {}
        for index in self.schema.indexes:
            keys = self.keys.index(index.name)
            if keys.cross_scope and not index.unique:
                raise TypeError("an index outside the record's scope must be unique", index.name)
            self.indexes[index.name] = (index, keys)
        self._prefix = self.keys.records.key()

    def __repr__(self) -> str:
        return f"<Collection {self.schema.collection} {self._prefix!r}>"

    # --- keys ------------------------------------------------------------------------

    def key_of(self, record: R) -> tuple[Any, ...]:
        return self.schema.key_of(record)

    def pk_of(self, key: Any) -> tuple[Any, ...]:
        arity = len(self.schema.key_fields)
        if not isinstance(key, tuple):
            key = (key,)
        if len(key) != arity:
            raise ValueError("primary key has the wrong number of fields", arity, len(key))
        return key

    def entries_of(self, record: R) -> Entries:
        pk = self.key_of(record)
        entries: Entries = {}
        for index, keys in self.indexes.values():
            pointer = keys.pointer_prefix + pk
            for values in self.schema.index_entries(index, record):
                if index.unique:
                    key = keys.subspace.pack(values)
                    entries[key] = (index, values, tuples.pack(pointer))
                else:
                    entries[keys.subspace.pack(values + pointer)] = (index, values, b"")
        return entries

    def local_pk(self, keys: IndexKeys, pointer: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The primary key an index pointer names in this scope, or None (another scope)."""
        n = len(keys.pointer_prefix)
        if pointer[:n] != keys.pointer_prefix:
            return None
        return pointer[n:]

    # --- the stored form -------------------------------------------------------------

    def decode(self, pk: tuple[Any, ...], chunks: Chunks) -> R:
        payload = assemble(chunks)
        if payload is None:
            raise CorruptRecord("record chunks are not contiguous", self.schema.collection, pk)
        try:
            return self.schema.decode(payload)  # type: ignore[return-value]
        except (ValueError, TypeError, UnicodeDecodeError) as error:
            raise CorruptRecord(str(error.args[0]), self.schema.collection, pk) from None

    def read_stored(self, tr: Any, pk: tuple[Any, ...]) -> R | None:
        """The stored record, expired or not."""
        begin, end = self._bounds(pk)
        return self._from_range(pk, begin, tr.get_range(begin, end))

    def _read_stored_sized(self, tr: Any, pk: tuple[Any, ...]) -> tuple[R | None, int]:
        """The stored record, expired or not, and its stored size (0 when absent)."""
        begin, end = self._bounds(pk)
        kvs = tr.get_range(begin, end)
        return self._from_range(pk, begin, kvs), stored_size(kvs)

    def _bounds(self, pk: tuple[Any, ...]) -> tuple[bytes, bytes]:
        """The key range of a record's chunks (``self.keys.records.range(pk)``)."""
        key = self._prefix + tuples.pack(pk)
        return key + b"\x00", key + b"\xff"

    def _from_range(self, pk: tuple[Any, ...], begin: bytes, kvs: list[Any]) -> R | None:
        """The stored record of ``pk`` from the key-values of its range (starting at
        ``begin``, its packed key and a 0 byte), expired or not."""
        return self.decode(pk, _chunks(kvs, len(begin) - 1)) if kvs else None

    def _read_many(self, tr: Any, pks: list[tuple[Any, ...]]) -> list[R | None]:
        """``[self.read_stored(tr, pk) for pk in pks]``, the reads issued together."""
        bounds = [self._bounds(pk) for pk in pks]
        rows = _read_ranges(tr, bounds)
        return [
            self._from_range(pk, begin, kvs)
            for pk, (begin, _), kvs in zip(pks, bounds, rows, strict=True)
        ]

    def _live(self, record: R | None, now: datetime) -> R | None:
        if record is None or self.schema.is_expired(record, now):
            return None
        return record

    def _write(self, tr: Any, pk: tuple[Any, ...], payload: bytes) -> None:
        key = self._prefix + tuples.pack(pk)
        if len(payload) <= CHUNK_SIZE:
            tr[key + _CHUNK_KEYS[0]] = payload
            return
        for number, offset in enumerate(range(0, len(payload), CHUNK_SIZE), start=1):
            tail = _CHUNK_KEYS[number] if number < len(_CHUNK_KEYS) else tuples.pack((number,))
            tr[key + tail] = payload[offset : offset + CHUNK_SIZE]

    def remove_stored(self, tr: Any, pk: tuple[Any, ...], stored: R) -> None:
        tr.clear_range(*self._bounds(pk))
        for key in self.entries_of(stored):
            tr.clear(key)

    # --- reads -----------------------------------------------------------------------

    @transactional
    def get(self, tr: Any, key: Any, *, now: datetime | None = None) -> R | None:
        """The live record with primary key ``key`` (a value, or a tuple for several fields)."""
        return self._live(self.read_stored(tr, self.pk_of(key)), now or utcnow())

    @transactional
    def get_sized(self, tr: Any, key: Any, *, now: datetime | None = None) -> tuple[R | None, int]:
        """``get``, also returning the stored size of the record, live or expired (0: none)."""
        stored, size = self._read_stored_sized(tr, self.pk_of(key))
        return self._live(stored, now or utcnow()), size

    @transactional
    def get_many(self, tr: Any, keys: list[Any], *, now: datetime | None = None) -> list[R | None]:
        """The live record of each primary key in ``keys`` (None where there is none), read
        together rather than one after another."""
        moment = now or utcnow()
        return [self._live(r, moment) for r in self._read_many(tr, [self.pk_of(k) for k in keys])]

    @transactional
    def index_keys(
        self, tr: Any, index: str, prefixes: list[tuple[Any, ...]], *, limit: int = 0
    ) -> list[list[tuple[Any, ...]]]:
        """For each prefix of index ``index`` (not unique), the primary keys of its first
        ``limit`` entries (0: all), read together and without reading the records: for
        callers that need only ids. Indexes are written with their records in the same
        transaction, so an entry names a record (``storage check`` verifies it); an expired
        record's entry is not left out, as list_by_index leaves it out."""
        idx, keys = self._index(index)
        if idx.unique or keys.cross_scope:
            raise ValueError("index_keys reads a local index that is not unique", index)
        subspace = keys.subspace
        prefix_len = len(subspace.key())
        bounds = []
        for values in prefixes:
            start = subspace.pack(index_tuple(values))
            bounds.append((start, start + b"\xff"))
        rows = _read_ranges(tr, bounds, limit)
        arity = len(self.schema.key_fields)
        return [
            [tuples.unpack(kv.key, prefix_len=prefix_len)[-arity:] for kv in kvs] for kvs in rows
        ]

    @transactional
    def find_unique(
        self, tr: Any, index: str, values: tuple[Any, ...], *, now: datetime | None = None
    ) -> R | None:
        """The live record of this scope holding ``values`` in unique index ``index``."""
        idx, keys = self._index(index)
        if not idx.unique:
            raise ValueError("find_unique needs a unique index", index)
        found = tr.get(keys.subspace.pack(index_tuple(values)))
        if found is None:
            return None
        pk = self.local_pk(keys, tuples.unpack(found))
        if pk is None:
            return None
        return self._live(self.read_stored(tr, pk), now or utcnow())

    def _index(self, name: str) -> tuple[Index, IndexKeys]:
        try:
            return self.indexes[name]
        except KeyError:
            raise KeyError("record type declares no such index", name) from None

    @transactional
    def list_by_key(
        self,
        tr: Any,
        prefix: tuple[Any, ...] = (),
        *,
        limit: int = 0,
        reverse: bool = False,
        continuation: str | None = None,
        now: datetime | None = None,
    ) -> Page[R]:
        """Live records in primary-key order, optionally those whose key starts with ``prefix``.

        ``limit`` 0 means all. The page's continuation resumes exactly after its last record
        (None when nothing follows); raises InvalidContinuation for one from another query.
        """
        return self._page_by_key(tr, prefix, limit, reverse, continuation, now, live_only=True)

    def _page_by_key(
        self,
        tr: Any,
        prefix: tuple[Any, ...],
        limit: int,
        reverse: bool,
        continuation: str | None,
        now: datetime | None,
        *,
        live_only: bool,
    ) -> Page[R]:
        if len(prefix) > len(self.schema.key_fields):
            raise ValueError("key prefix is longer than the primary key", len(prefix))
        if limit < 0:
            raise ValueError("limit must not be negative", limit)
        records = self.keys.records
        r = records.range(tuple(prefix))
        arity = len(self.schema.key_fields)
        reader = _page_reader(
            tr, continuation, self._prefix, r.start, r.stop, limit, reverse, arity
        )
        moment = now or utcnow()
        groups = ChunkGroups(reader, len(self._prefix), reverse=reverse)
        found: list[R] = []
        last: tuple[Any, ...] | None = None
        while not limit or len(found) < limit:
            group = groups.next()
            if group is None:
                break
            last, chunks = group
            record = self.decode(last, chunks)
            if not live_only or not self.schema.is_expired(record, moment):
                found.append(record)
        token = None
        if last is not None and reader.has_more():
            boundary = records.pack(last) if reverse else records.range(last).stop
            token = encode_continuation(self._prefix, r.start, r.stop, reverse, boundary)
        return Page(found, token)

    @transactional
    def list_by_index(
        self,
        tr: Any,
        index: str,
        values: tuple[Any, ...] = (),
        *,
        limit: int = 0,
        reverse: bool = False,
        continuation: str | None = None,
        now: datetime | None = None,
    ) -> Page[R]:
        """Live records in the order of index ``index``, optionally those under the prefix
        ``values`` of its tuples; paging as ``list_by_key``.

        A record with several entries under the prefix appears once per entry.
        """
        idx, keys = self._index(index)
        if keys.cross_scope:
            raise ValueError("an index outside the scope can only be searched", index)
        if limit < 0:
            raise ValueError("limit must not be negative", limit)
        subspace = keys.subspace
        start = subspace.pack(index_tuple(values))
        stop = start + b"\xff"
        prefix = subspace.key()
        reader = _page_reader(tr, continuation, prefix, start, stop, limit, reverse)
        moment = now or utcnow()
        found: list[R] = []
        last: bytes | None = None
        exhausted = False
        while not exhausted and (not limit or len(found) < limit):
            # As many entries as records still wanted, then their records in one go.
            wanted = limit - len(found) if limit else LIST_BATCH
            entries: list[tuple[bytes, tuple[Any, ...]]] = []
            while len(entries) < wanted:
                kv = reader.next()
                if kv is None:
                    exhausted = True
                    break
                if idx.unique:
                    pk = tuples.unpack(kv.value)
                else:
                    pk = tuples.unpack(kv.key, prefix_len=len(prefix))[
                        -len(self.schema.key_fields) :
                    ]
                entries.append((kv.key, pk))
            if not entries:
                break
            stored_records = self._read_many(tr, [pk for _, pk in entries])
            for (key, pk), stored in zip(entries, stored_records, strict=True):
                last = key
                if stored is None:
                    log.warning(
                        "index entry without its record",
                        extra={"collection": self.schema.collection, "index": index, "key": pk},
                    )
                    continue
                if self._live(stored, moment) is not None:
                    found.append(stored)
        token = None
        if last is not None and reader.has_more():
            boundary = last if reverse else last + b"\x00"
            token = encode_continuation(prefix, start, stop, reverse, boundary)
        return Page(found, token)

    # --- writes ----------------------------------------------------------------------

    @transactional
    def save(
        self,
        tr: Any,
        record: R,
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> R:
        """Insert or replace ``record`` and its index entries atomically; return it as stored.

        The stored version is the previous one plus one (1 for a new record). With
        ``expected_version`` the save happens only if the live record has that version
        (0: there must be none), else VersionConflict. A retry after commit_unknown_result
        that finds its own write already applied returns it instead of conflicting.
        Raises UniqueViolation, RecordTooLarge. ``record`` itself is not changed.
        """
        moment = now or utcnow()
        stored = self.read_stored(tr, self.key_of(record))
        return self._save_over(tr, record, stored, expected_version, moment)[0]

    @transactional
    def save_sized(
        self,
        tr: Any,
        record: R,
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> tuple[R, int]:
        """``save``, also returning how much the stored size changed (the new record's size
        less the one it replaces; 0 when nothing was written). A record's stored size is
        that of its serialized form, its chunks' values: what quotas count."""
        moment = now or utcnow()
        stored, old_size = self._read_stored_sized(tr, self.key_of(record))
        new, size = self._save_over(tr, record, stored, expected_version, moment)
        return new, (size - old_size if size is not None else 0)

    def _save_over(
        self, tr: Any, record: R, stored: R | None, expected_version: int | None, moment: datetime
    ) -> tuple[R, int | None]:
        """``save`` once the stored record of ``record``'s key (expired or not) is known;
        also the stored size of what was written (None: nothing was)."""
        pk = self.key_of(record)
        live = self._live(stored, moment)
        actual = live.version if live is not None else 0
        if expected_version is not None and expected_version != actual:
            if live is not None and actual == expected_version + 1 and self._same(live, record):
                return live, None
            raise VersionConflict(expected_version, actual)
        new = dataclasses.replace(record, version=(stored.version if stored else 0) + 1)
        payload = self.schema.encode(new, self.max_record_size)
        old_entries = self.entries_of(stored) if stored is not None else {}
        new_entries = self.entries_of(new)
        for key, (index, values, _) in new_entries.items():
            if index.unique and key not in old_entries:
                self._claim(tr, key, index, values, moment)
        for key in old_entries.keys() - new_entries.keys():
            tr.clear(key)
        for key, (_, _, value) in new_entries.items():
            if old_entries.get(key, (None, None, None))[2] != value:
                tr[key] = value
        if stored is not None:
            tr.clear_range(*self._bounds(pk))
        self._write(tr, pk, payload)
        return new, len(payload)

    def _same(self, stored: R, record: R) -> bool:
        a = self.schema.fields_json(stored)
        b = self.schema.fields_json(record)
        a.pop("version")
        b.pop("version")
        return a == b

    def _claim(
        self, tr: Any, key: bytes, index: Index, values: tuple[Any, ...], now: datetime
    ) -> None:
        """Make the unique entry ``key`` free for a new holder, or raise UniqueViolation."""
        found = tr.get(key)
        if found is None:
            return
        _, keys = self.indexes[index.name]
        holder_pk = self.local_pk(keys, tuples.unpack(found))
        if holder_pk is None:
            raise UniqueViolation(index.name, values)
        holder = self.read_stored(tr, holder_pk)
        if holder is None:
            return  # an entry whose record is gone: overwriting it repairs the index
        if self._live(holder, now) is not None:
            raise UniqueViolation(index.name, values)
        self.remove_stored(tr, holder_pk, holder)  # expired records are absent: evict it

    @transactional
    def delete(
        self,
        tr: Any,
        key: Any,
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Remove the record and its index entries; True if a live record was removed.

        An expired record is removed too but counts as absent (False), as does a missing
        one, whatever ``expected_version`` says (so a retried delete is not an error). A live
        record whose version is not ``expected_version`` raises VersionConflict.
        """
        return self.delete_sized(tr, key, expected_version=expected_version, now=now)[0]

    @transactional
    def delete_sized(
        self,
        tr: Any,
        key: Any,
        *,
        expected_version: int | None = None,
        now: datetime | None = None,
    ) -> tuple[bool, int]:
        """``delete``, also returning the stored size removed (0: nothing was)."""
        pk = self.pk_of(key)
        stored, size = self._read_stored_sized(tr, pk)
        if stored is None:
            return False, 0
        live = self._live(stored, now or utcnow())
        if live is not None and expected_version is not None and expected_version != live.version:
            raise VersionConflict(expected_version, live.version)
        self.remove_stored(tr, pk, stored)
        return live is not None, size

    # --- maintenance: each call runs batches in transactions of their own ----------------

    def scan(self, db: Any, *, batch_size: int = 100, include_expired: bool = False) -> Iterator[R]:
        """Every record, in key order, read ``batch_size`` at a time, each batch its own short
        transaction (a walk sees no single snapshot). Index checks, repairs and purges are
        ``fdb_backend.maintenance``'s."""
        continuation: str | None = None
        while True:
            page = self._page_stored(db, batch_size, continuation)
            moment = utcnow()
            for record in page.records:
                if include_expired or not self.schema.is_expired(record, moment):
                    yield record
            if page.continuation is None:
                return
            continuation = page.continuation

    @transactional
    def _page_stored(self, tr: Any, limit: int, continuation: str | None) -> Page[R]:
        return self._page_by_key(tr, (), limit, False, continuation, None, live_only=False)


@functools.lru_cache(maxsize=8192)
def _collection(record_type: type[Any], scope: Scope, max_record_size: int) -> Collection[Any]:
    return Collection(record_type, scope, max_record_size=max_record_size)


def collection(
    record_type: type[R], scope: Scope, *, max_record_size: int = MAX_RECORD_SIZE
) -> Collection[R]:
    """The collection of ``record_type`` in ``scope``, made once: a collection holds nothing
    of its uses, and a request asks for the same ones several times (a GET made seven, each
    building its index key tables)."""
    found: Collection[R] = _collection(cast(Any, record_type), scope, max_record_size)
    return found


def _read_ranges(tr: Any, bounds: list[tuple[bytes, bytes]], limit: int = 0) -> list[list[Any]]:
    """The key-values of each range, in one batched read where the engine has one."""
    batched = getattr(tr, "get_ranges", None)
    if batched is None or len(bounds) <= 1:
        return [tr.get_range(b, e, limit) for b, e in bounds]
    result: list[list[Any]] = batched(bounds, limit)
    return result


@transactional
def get_together(
    tr: Any, wanted: list[tuple[Collection[Any], Any]], *, now: datetime | None = None
) -> list[Any]:
    """``[collection.get(tr, key) for collection, key in wanted]`` for records of several
    collections, the reads issued together (one statement on the embedded engine)."""
    moment = now or utcnow()
    pks = [collection.pk_of(key) for collection, key in wanted]
    bounds = [collection._bounds(pk) for (collection, _), pk in zip(wanted, pks, strict=True)]
    rows = _read_ranges(tr, bounds)
    return [
        collection._live(collection._from_range(pk, begin, kvs), moment)
        for (collection, _), pk, (begin, _), kvs in zip(wanted, pks, bounds, rows, strict=True)
    ]


@transactional
def insert_together(
    tr: Any, new: list[tuple[Collection[Any], Any]], *, now: datetime | None = None
) -> list[Any]:
    """``[collection.save(tr, record, expected_version=0) for collection, record in new]``,
    the reads that check each key is free issued together (one statement on the embedded
    engine). Raises VersionConflict where a live record holds a key; a retry after
    commit_unknown_result that finds its own records gets them back."""
    return [record for record, _ in insert_together_sized(tr, new, now=now)]


@transactional
def insert_together_sized(
    tr: Any, new: list[tuple[Collection[Any], Any]], *, now: datetime | None = None
) -> list[tuple[Any, int]]:
    """``insert_together``, each record with the stored size it added (0 for one found
    already written by an earlier try of this transaction)."""
    moment = now or utcnow()
    pks = [collection.key_of(record) for collection, record in new]
    bounds = [collection._bounds(pk) for (collection, _), pk in zip(new, pks, strict=True)]
    rows = _read_ranges(tr, bounds)
    saved = []
    for (collection, record), pk, (begin, _), kvs in zip(new, pks, bounds, rows, strict=True):
        done, size = collection._save_over(
            tr, record, collection._from_range(pk, begin, kvs), 0, moment
        )
        saved.append((done, 0 if size is None else size - stored_size(kvs)))
    return saved


def stored_size(kvs: list[Any]) -> int:
    """The stored size of a record from the key-values of its range: its chunks' values."""
    return sum(len(kv.value) for kv in kvs)


@transactional
def resolve_unique(tr: Any, index: Any, values: tuple[Any, ...]) -> tuple[Any, ...] | None:
    """The pointer stored under ``values`` in a unique index subspace (e.g. the root
    ``user_by_email`` from ``keyspace.GLOBAL.index``: ``(tenant_id, user_id)``), or None.

    It says where a record was at the time; load it through its tenant's Collection, which
    also applies expiry.
    """
    found = tr.get(index.pack(index_tuple(values)))
    return None if found is None else tuples.unpack(found)
