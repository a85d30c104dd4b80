"""Storage-wide maintenance: bounded walks, counts, raw copies, index checks and repairs.

The operators' commands and the support views build on these (docs/operations.md). Every
walk here runs many short transactions, each well under FoundationDB's 5 seconds and
reading about ``TARGET_BYTES`` (1 MB) at most, resumed by key continuation: a walk sees no
single snapshot, so records changed while it runs may be seen before or after the change.
Each batch is retried on its own; counts of a batch retried after
``commit_unknown_result`` may come out low, never high.

This is the only module besides ``keyspace`` and the records layer that handles raw keys:
it copies them (export, import), counts them (stats) and clears them (tenant deletion,
repairs), always inside ranges that ``keyspace`` hands out.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar

from fdb_backend import keyspace, tuples
from fdb_backend.keyspace import CollectionKeys, IndexKeys, KeyRange, Scope
from fdb_backend.limits import KEY_SIZE_LIMIT, VALUE_SIZE_LIMIT
from fdb_backend.records.errors import CorruptRecord
from fdb_backend.records.schema import Index, Record, utcnow
from fdb_backend.records.store import Collection
from fdb_backend.selectors import KeyValue
from fdb_backend.transactional import transactional

R = TypeVar("R", bound=Record)

TARGET_BYTES = 1_000_000  # what one batch reads at most
MAX_BATCH = 2000  # keys per batch when they are small
# The largest key-value there can be (10,000-byte key, 100,000-byte value): a read of
# ``n`` keys returns at most ``n`` times this, so reads are sized to stay within a budget.
_LARGEST_KV = KEY_SIZE_LIMIT + VALUE_SIZE_LIMIT


def engine_name(db: Any) -> str:
    """``embedded`` or ``fdb``: recorded in export headers."""
    return "fdb" if type(db).__name__ == "ClusterDatabase" else "embedded"


# --- bounded walks ---------------------------------------------------------------------


def _read_budgeted(
    reader: Any, begin: bytes, end: bytes, max_keys: int = MAX_BATCH
) -> tuple[list[KeyValue], bool]:
    """Up to ``max_keys`` key-values from ``begin``, never more than TARGET_BYTES: each read
    asks for as many keys as the budget left could hold at their largest. Returns them and
    whether the range is exhausted."""
    found: list[KeyValue] = []
    size = 0
    while len(found) < max_keys:
        budget = (TARGET_BYTES - size) // _LARGEST_KV
        limit = min(max_keys - len(found), budget if found else max(1, budget))
        if limit < 1:
            return found, False
        kvs = list(reader.get_range(begin, end, limit=limit))
        found.extend(kvs)
        size += sum(len(kv.key) + len(kv.value) for kv in kvs)
        if len(kvs) < limit:
            return found, True
        begin = kvs[-1].key + b"\x00"
    return found, False


@transactional
def _read_batch(tr: Any, begin: bytes, end: bytes) -> tuple[list[KeyValue], bool]:
    return _read_budgeted(tr.snapshot, begin, end)


def walk(db: Any, key_range: KeyRange) -> Iterator[list[KeyValue]]:
    """The key-values of ``key_range`` in key order, one batch per short transaction, each
    at most MAX_BATCH keys and TARGET_BYTES (1 MB) read. Snapshot reads: no conflicts."""
    begin, end = key_range
    while begin < end:
        kvs, exhausted = _read_batch(db, begin, end)
        if kvs:
            yield kvs
        if exhausted or not kvs:
            return
        begin = kvs[-1].key + b"\x00"


# Called inside the transaction that clears (or removes) what it is given, so that what the
# caller keeps about it (a usage counter) changes in the same commit.
OnCleared = Callable[[Any, list[KeyValue]], None]


@transactional
def _clear_batch(
    tr: Any, begin: bytes, end: bytes, on_cleared: OnCleared | None = None
) -> list[KeyValue]:
    kvs, exhausted = _read_budgeted(tr, begin, end)
    if kvs:
        # An exhausted read covered the whole rest of the range (and conflicts with any
        # write into it), so clearing all of it is exact.
        tr.clear_range(begin, end if exhausted else kvs[-1].key + b"\x00")
        if on_cleared is not None:
            on_cleared(tr, kvs)
    return kvs


def clear_walk(
    db: Any, key_range: KeyRange, *, on_cleared: OnCleared | None = None
) -> Iterator[list[KeyValue]]:
    """Clear ``key_range`` in bounded transactions, yielding each batch as it is removed;
    ``on_cleared(tr, batch)`` runs inside each batch's transaction.

    Keys written into the range behind the walk while it runs are not seen; callers that
    must leave the range empty stop writers first (a suspended tenant) and walk again.
    """
    begin, end = key_range
    while True:
        kvs = _clear_batch(db, begin, end, on_cleared)
        if not kvs:
            return
        yield kvs


def write_batches(db: Any, items: Iterable[tuple[bytes, bytes]]) -> Iterator[int]:
    """Set every key to its value, about ``TARGET_BYTES`` per transaction; yields the number
    of keys of each committed batch. Blind writes: running it again changes nothing."""
    batch: list[tuple[bytes, bytes]] = []
    size = 0
    for key, value in items:
        batch.append((key, value))
        size += len(key) + len(value)
        if size >= TARGET_BYTES or len(batch) >= MAX_BATCH:
            _write_batch(db, batch)
            yield len(batch)
            batch, size = [], 0
    if batch:
        _write_batch(db, batch)
        yield len(batch)


@transactional
def _write_batch(tr: Any, batch: list[tuple[bytes, bytes]]) -> None:
    for key, value in batch:
        tr[key] = value


@transactional
def range_is_empty(tr: Any, key_range: KeyRange) -> bool:
    return not tr.snapshot.get_range(key_range.begin, key_range.end, limit=1)


@transactional
def _first_keys(
    tr: Any, begin: bytes, end: bytes, skip: Callable[[bytes], bytes]
) -> tuple[list[bytes], bool]:
    """Keys from ``begin``, each the first one after ``skip`` of the previous, up to 100 or
    TARGET_BYTES read; and whether the range is exhausted."""
    found: list[bytes] = []
    size = 0
    while len(found) < 100 and size < TARGET_BYTES:
        if begin >= end:
            return found, True
        kvs = tr.snapshot.get_range(begin, end, limit=1)
        if not kvs:
            return found, True
        found.append(kvs[0].key)
        size += len(kvs[0].key) + len(kvs[0].value)
        begin = skip(kvs[0].key)
    return found, False


def _skip_scan(db: Any, key_range: KeyRange, skip: Callable[[bytes], bytes]) -> Iterator[bytes]:
    begin, end = key_range
    while True:
        keys, exhausted = _first_keys(db, begin, end, skip)
        yield from keys
        if exhausted or not keys:
            return
        begin = skip(keys[-1])


def tenant_ids_with_data(db: Any) -> Iterator[uuid.UUID]:
    """Every tenant id that has keys in the store, read by skipping from tenant to tenant
    (one key read per tenant), whether or not its tenant record exists."""

    def skip(key: bytes) -> bytes:
        tenant_id = keyspace.tenant_of_key(key)
        return keyspace.tenant(tenant_id).range().end if tenant_id else key + b"\x00"

    for key in _skip_scan(db, keyspace.tenants_range(), skip):
        tenant_id = keyspace.tenant_of_key(key)
        if tenant_id is not None:
            yield tenant_id


def key_prefixes(db: Any, keys: CollectionKeys, depth: int = 1) -> Iterator[tuple[Any, ...]]:
    """The distinct first ``depth`` primary-key fields of a collection's stored keys (e.g.
    the session ids that have events), one key read per prefix."""
    records = keys.records

    def skip(key: bytes) -> bytes:
        return bytes(records.range(records.unpack(key)[:depth]).stop)

    for key in _skip_scan(db, keys.range(), skip):
        yield tuple(records.unpack(key)[:depth])


def clear_prefix(
    db: Any, keys: CollectionKeys, prefix: tuple[Any, ...], *, on_cleared: OnCleared | None = None
) -> int:
    """Remove every stored key of a collection under a primary-key prefix, in batches; for
    records without index entries only (states, events, locks, connections). Returns keys.
    ``on_cleared`` as for ``clear_walk``."""
    r = keys.records.range(prefix)
    return sum(
        len(batch) for batch in clear_walk(db, KeyRange(r.start, r.stop), on_cleared=on_cleared)
    )


def _records_from(
    tr: Any, collection: Collection[R], begin: bytes, end: bytes, max_records: int
) -> tuple[list[tuple[tuple[Any, ...], R | CorruptRecord, int]], bytes | None]:
    """Whole records from ``begin`` (a record boundary): at most ``max_records``, reading
    about TARGET_BYTES (more only to finish a record split across keys). Each comes as
    ``(pk, record, stored size)``, or ``(pk, CorruptRecord, size)`` when its bytes do not
    decode. Returns them and where the next batch starts (None: nothing follows)."""
    records = collection.keys.records
    kvs, exhausted = _read_budgeted(tr, begin, end, max_keys=max_records)
    groups: list[tuple[tuple[Any, ...], list[tuple[int, bytes]]]] = []
    for kv in kvs:
        key = records.unpack(kv.key)
        pk, chunk = tuple(key[:-1]), key[-1]
        if groups and groups[-1][0] == pk:
            groups[-1][1].append((chunk, kv.value))
        else:
            groups.append((pk, [(chunk, kv.value)]))
    if not groups:
        return [], None
    if not exhausted:  # the last record may go on past what was read
        last = records.range(groups[-1][0])
        for kv in tr.get_range(kvs[-1].key + b"\x00", last.stop):
            groups[-1][1].append((records.unpack(kv.key)[-1], kv.value))
    found: list[tuple[tuple[Any, ...], R | CorruptRecord, int]] = []
    for pk, chunks in groups:
        size = sum(len(value) for _, value in chunks)
        try:
            found.append((pk, collection.decode(pk, chunks), size))
        except CorruptRecord as error:
            found.append((pk, error, size))
    resume = None if exhausted else bytes(records.range(groups[-1][0]).stop)
    return found, resume


# --- counting --------------------------------------------------------------------------


@dataclass
class SpaceStats:
    """Keys and bytes (keys plus values) of one space; ``records`` for collections."""

    keys: int = 0
    bytes: int = 0
    records: int = 0

    def add(self, kv: KeyValue, *, record: bool = False) -> None:
        self.keys += 1
        self.bytes += len(kv.key) + len(kv.value)
        if record:
            self.records += 1


def _is_record_key(names: tuple[Any, ...]) -> bool:
    # A record's keys end with its chunk number: 0 (whole) or 1..n (split); one per record.
    return len(names) >= 2 and names[-1] in (0, 1) and isinstance(names[-1], int)


def scope_stats(db: Any, scope: Scope) -> dict[str, SpaceStats]:
    """Keys, bytes and records per top-level name of a scope (collections, indexes, spaces)."""
    stats: dict[str, SpaceStats] = {}
    collections = scope.layout.collections
    for batch in walk(db, scope.range()):
        for kv in batch:
            names = scope.subspace.unpack(kv.key)
            name = str(names[0])
            stats.setdefault(name, SpaceStats()).add(
                kv, record=name in collections and _is_record_key(names)
            )
    return stats


@dataclass
class StoreStats:
    spaces: dict[str, SpaceStats] = field(default_factory=dict)
    tenants: dict[uuid.UUID, SpaceStats] = field(default_factory=dict)


def store_stats(db: Any) -> StoreStats:
    """Keys and bytes per top-level space of the platform and per tenant (one full walk)."""
    stats = StoreStats()
    root = keyspace.GLOBAL
    for batch in walk(db, root.range()):
        for kv in batch:
            tenant_id = keyspace.tenant_of_key(kv.key)
            if tenant_id is not None:
                stats.spaces.setdefault("t", SpaceStats()).add(kv)
                stats.tenants.setdefault(tenant_id, SpaceStats()).add(kv)
                continue
            try:
                name = str(root.subspace.unpack(kv.key)[0])
            except ValueError:
                name = "?"
            stats.spaces.setdefault(name, SpaceStats()).add(kv)
    return stats


def count_keys(db: Any, key_range: KeyRange, *, cap: int) -> int:
    """Keys in a range, counting at most ``cap`` (then returns ``cap``)."""
    total = 0
    for batch in walk(db, key_range):
        total += len(batch)
        if total >= cap:
            return cap
    return total


# --- a record's raw keys (tenant export and deletion) ------------------------------------


def _expected_entries(
    collection: Collection[R], record: R, *, outer_only: bool
) -> list[tuple[bytes, bytes]]:
    entries = collection.entries_of(record)
    outer = {index.name for index, keys in collection.indexes.values() if keys.cross_scope}
    return [
        (key, value)
        for key, (index, _, value) in entries.items()
        if not outer_only or index.name in outer
    ]


def record_items(tr: Any, collection: Collection[R], key: Any) -> list[KeyValue]:
    """The stored keys of one record (its chunks) and those of its index entries that hold
    the expected value; empty when the record is absent."""
    pk = collection.pk_of(key)
    r = collection.keys.records.range(pk)
    chunks = list(tr.get_range(r.start, r.stop))
    if not chunks:
        return []
    record = collection.read_stored(tr, pk)
    assert record is not None
    return chunks + _stored_entries(tr, collection, record, outer_only=False)


def outer_entries(tr: Any, collection: Collection[R], record: R) -> list[KeyValue]:
    """The record's index entries outside its scope (``user_by_email``) that are stored
    with the expected value (an entry now naming another tenant is never included)."""
    return _stored_entries(tr, collection, record, outer_only=True)


def _stored_entries(
    tr: Any, collection: Collection[R], record: R, *, outer_only: bool
) -> list[KeyValue]:
    found = []
    for key, value in _expected_entries(collection, record, outer_only=outer_only):
        if tr.get(key) == value:
            found.append(KeyValue(key, value))
    return found


def global_key_owner(key: bytes, value: bytes) -> tuple[str, uuid.UUID] | None:
    """``(kind, tenant_id)`` for a key outside the tenants' ranges that belongs to one tenant:
    ``tenant`` (its record), ``tenant_by_slug`` or ``user_by_email`` (entries naming it);
    None for any other key. What a tenant export may carry besides its own range."""
    root = keyspace.GLOBAL
    tenants = root.collection("tenants")
    try:
        if tenants.range().contains(key):
            pk = tenants.records.unpack(key)
            if len(pk) == 2 and isinstance(pk[0], uuid.UUID) and _is_record_key(pk):
                return "tenant", pk[0]
            return None
        slug = tenants.index("tenant_by_slug")
        if slug.range().contains(key):
            pointer = tuples.unpack(value)
            if len(pointer) == 1 and isinstance(pointer[0], uuid.UUID):
                return "tenant_by_slug", pointer[0]
            return None
        emails = root.index("user_by_email")
        if KeyRange(*_subspace_range(emails)).contains(key):
            pointer = tuples.unpack(value)
            if len(pointer) == 2 and isinstance(pointer[0], uuid.UUID):
                return "user_by_email", pointer[0]
    except ValueError:
        return None
    return None


def global_key_conflict(tr: Any, key: bytes, value: bytes) -> str | None:
    """Why writing an exported global key would take what another tenant holds here, as
    ``"email 'ann@example.com' is held by another tenant"``; None when the key is free,
    holds this very value, or belongs to the same tenant (``global_key_owner``)."""
    owner = global_key_owner(key, value)
    current = tr.get(key)
    if owner is None or current is None or current == value or owner[0] == "tenant":
        return None
    held = global_key_owner(key, current)
    if held is not None and held[1] == owner[1]:
        return None
    root = keyspace.GLOBAL
    if owner[0] == "tenant_by_slug":
        what, subspace = "slug", root.collection("tenants").index("tenant_by_slug").subspace
    else:
        what, subspace = "email", root.index("user_by_email")
    try:
        shown = repr(subspace.unpack(key)[0])
    except (ValueError, IndexError):
        shown = repr(key)
    return f"{what} {shown} is held by another tenant"


def _subspace_range(subspace: Any) -> tuple[bytes, bytes]:
    r = subspace.range()
    return r.start, r.stop


# --- index checks and repairs ----------------------------------------------------------

IssueKind = Literal["missing", "dangling", "stale", "corrupt"]


@dataclass(frozen=True)
class IndexIssue:
    """An index entry that disagrees with its record.

    ``missing``: a record lacks an entry (or another record's entry sits where it belongs);
    ``dangling``: an entry names no record; ``stale``: an entry names a record whose values
    no longer produce it; ``corrupt``: a record's stored bytes do not decode (its entries
    cannot be checked, and nothing repairs it but a person). ``tenant_id`` is the scope of
    the record (None: global).
    """

    kind: IssueKind
    collection: str
    index: str
    tenant_id: uuid.UUID | None
    key: tuple[Any, ...]
    entry: bytes


def _issue_of(
    tr: Any, collection: Collection[R], index: Index, keys: IndexKeys, kv: KeyValue
) -> tuple[IssueKind, tuple[Any, ...]] | None:
    """What is wrong with one stored entry of ``collection`` (None: nothing)."""
    if index.unique:
        pointer = tuples.unpack(kv.value)
    else:
        pointer_len = len(keys.pointer_prefix) + len(collection.schema.key_fields)
        pointer = keys.subspace.unpack(kv.key)[-pointer_len:]
    pk = collection.local_pk(keys, pointer)
    if pk is None:
        return None  # another tenant's entry in a root index
    try:
        stored = collection.read_stored(tr, pk)
    except CorruptRecord:
        return None  # reported as corrupt by the record side of the check
    if stored is None:
        return "dangling", pk
    expected = collection.entries_of(stored).get(kv.key)
    if expected is None or expected[2] != kv.value:
        return "stale", pk
    return None


@transactional
def _check_entries_batch(
    tr: Any, collection: Collection[R], index_name: str, kvs: list[KeyValue]
) -> list[tuple[IssueKind, tuple[Any, ...], bytes]]:
    index, keys = collection.indexes[index_name]
    found = []
    for kv in kvs:
        issue = _issue_of(tr, collection, index, keys, kv)
        if issue is not None:
            found.append((issue[0], issue[1], kv.key))
    return found


def _scope_id(collection: Collection[R]) -> uuid.UUID | None:
    return keyspace.tenant_of_key(collection.keys.records.key())


@transactional
def _check_records_batch(
    tr: Any, collection: Collection[R], begin: bytes, end: bytes, max_records: int
) -> tuple[list[tuple[IssueKind, str, tuple[Any, ...], bytes]], bytes | None]:
    found: list[tuple[IssueKind, str, tuple[Any, ...], bytes]] = []
    batch, resume = _records_from(tr, collection, begin, end, max_records)
    for pk, record, _ in batch:
        if isinstance(record, CorruptRecord):
            found.append(("corrupt", "", pk, b""))
            continue
        for key, (index, _, value) in collection.entries_of(record).items():
            if tr.get(key) != value:
                found.append(("missing", index.name, pk, key))
    return found, resume


def check_collection(
    collection: Collection[R], db: Any, *, batch_size: int = 200
) -> list[IndexIssue]:
    """Every record decodes and has its entries, and every entry of its in-scope indexes
    has its record.

    Records are read whole, at most ``batch_size`` and about 1 MB per transaction; one
    that does not decode is reported instead of stopping the check. Entries of
    indexes outside the scope (``user_by_email``) are checked from the record side only
    here; ``check_root_index`` walks them once for all tenants.
    """
    tenant_id = _scope_id(collection)
    name = collection.schema.collection
    issues: list[IndexIssue] = []
    begin: bytes | None
    begin, end = collection.keys.range()
    while begin is not None:
        found, begin = _check_records_batch(db, collection, begin, end, batch_size)
        for kind, index_name, pk, entry in found:
            issues.append(IndexIssue(kind, name, index_name, tenant_id, pk, entry))
    for index, keys in collection.indexes.values():
        if keys.cross_scope:
            continue
        for batch in walk(db, keys.range()):
            for kind, pk, entry in _check_entries_batch(db, collection, index.name, batch):
                issues.append(IndexIssue(kind, name, index.name, tenant_id, pk, entry))
    return issues


def check_root_index(
    db: Any, name: str, collection_of: Callable[[uuid.UUID], Collection[Any]]
) -> list[IndexIssue]:
    """Walk a root index of tenant records once (``user_by_email``): every entry must name a
    record of its tenant (``collection_of(tenant_id)``) that produces it."""
    issues: list[IndexIssue] = []
    cache: dict[uuid.UUID, Collection[Any]] = {}
    for batch in walk(db, KeyRange(*_subspace_range(keyspace.GLOBAL.index(name)))):
        by_tenant: dict[uuid.UUID, list[KeyValue]] = {}
        for kv in batch:
            try:
                pointer = tuples.unpack(kv.value)
            except ValueError:
                pointer = ()
            tenant_id = pointer[0] if pointer and isinstance(pointer[0], uuid.UUID) else None
            if tenant_id is None:
                issues.append(IndexIssue("dangling", "?", name, None, (), kv.key))
                continue
            by_tenant.setdefault(tenant_id, []).append(kv)
        for tenant_id, kvs in by_tenant.items():
            if tenant_id not in cache:
                cache[tenant_id] = collection_of(tenant_id)
            collection = cache[tenant_id]
            for kind, pk, entry in _check_entries_batch(db, collection, name, kvs):
                issues.append(
                    IndexIssue(kind, collection.schema.collection, name, tenant_id, pk, entry)
                )
    return issues


@transactional
def repair_issue(tr: Any, collection: Collection[R], issue: IndexIssue) -> bool:
    """Fix one issue if it still holds: clear a dangling or stale entry, write a missing one
    where the key is free. False when there was nothing to do or it cannot be fixed here
    (a missing unique entry whose key another record's entry holds: repair that one first).
    """
    if issue.kind == "corrupt":
        return False
    index, keys = collection.indexes[issue.index]
    if issue.kind in ("dangling", "stale"):
        value = tr.get(issue.entry)
        if value is None:
            return False
        if _issue_of(tr, collection, index, keys, KeyValue(issue.entry, value)) is None:
            return False
        tr.clear(issue.entry)
        return True
    record = collection.read_stored(tr, issue.key)
    if record is None:
        return False
    expected = collection.entries_of(record).get(issue.entry)
    if expected is None:
        return False
    current = tr.get(issue.entry)
    if current == expected[2]:
        return False
    held = KeyValue(issue.entry, current) if current is not None else None
    if held is not None and _issue_of(tr, collection, index, keys, held) is None:
        return False  # a live record holds it: a unique clash, left for a person
    tr[issue.entry] = expected[2]
    return True


REPAIR_BATCH = 100  # issues of one collection repaired per transaction


@transactional
def _repair_batch(tr: Any, collection: Collection[R], issues: list[IndexIssue]) -> list[bool]:
    return [bool(repair_issue(tr, collection, issue)) for issue in issues]


def repair_issues(
    db: Any, collection: Collection[R], issues: list[IndexIssue], *, batch_size: int = REPAIR_BATCH
) -> list[bool]:
    """``[repair_issue(db, collection, issue) for issue in issues]``, ``batch_size`` issues a
    transaction (in order: a later fix sees an earlier one), so a new index over a large
    collection, every entry of it missing, is written in one commit per hundred entries. Each
    fix re-checks its issue in the batch's transaction, as ``repair_issue`` does."""
    fixed: list[bool] = []
    for first in range(0, len(issues), batch_size):
        fixed.extend(_repair_batch(db, collection, issues[first : first + batch_size]))
    return fixed


def repair_root_issue(
    db: Any, issue: IndexIssue, collection_of: Callable[[uuid.UUID], Collection[Any]]
) -> bool:
    """``repair_issue`` for an issue found by ``check_root_index``."""
    if issue.tenant_id is None:
        return _clear_key(db, issue.entry)
    return bool(repair_issue(db, collection_of(issue.tenant_id), issue))


@transactional
def _clear_key(tr: Any, key: bytes) -> bool:
    if tr.get(key) is None:
        return False
    tr.clear(key)
    return True


# --- purges ----------------------------------------------------------------------------

# Told, inside a purge batch's transaction, what it removed: each record and its stored size.
OnRemoved = Callable[[Any, list[tuple[R, int]]], None]


@transactional
def _purge_batch(
    tr: Any,
    collection: Collection[R],
    predicate: Callable[[R, datetime], bool],
    begin: bytes,
    end: bytes,
    limit: int,
    now: datetime,
    dry_run: bool,
    on_removed: OnRemoved[R] | None,
) -> tuple[int, bytes | None]:
    batch, resume = _records_from(tr, collection, begin, end, limit)
    removed: list[tuple[R, int]] = []
    for pk, record, size in batch:
        if isinstance(record, CorruptRecord):
            raise record
        if predicate(record, now):
            removed.append((record, size))
            if not dry_run:
                collection.remove_stored(tr, pk, record)
    if removed and not dry_run and on_removed is not None:
        on_removed(tr, removed)
    return len(removed), resume


def purge_where(
    collection: Collection[R],
    db: Any,
    predicate: Callable[[R, datetime], bool],
    *,
    batch_size: int = 100,
    now: datetime | None = None,
    dry_run: bool = False,
    on_removed: OnRemoved[R] | None = None,
) -> int:
    """Remove the records (and their index entries) for which ``predicate(record, now)``
    holds, at most ``batch_size`` records and about 1 MB read per transaction; returns how
    many were (or, with ``dry_run``, would be) removed. ``on_removed(tr, [(record, stored
    size), ...])`` runs in each batch's transaction with what it removed. Raises
    CorruptRecord for a record that does not decode (``check_collection`` reports it)."""
    moment = now or utcnow()
    total = 0
    begin: bytes | None
    begin, end = collection.keys.range()
    while begin is not None:
        matched, begin = _purge_batch(
            db, collection, predicate, begin, end, batch_size, moment, dry_run, on_removed
        )
        total += matched
    return total


def expired(collection: Collection[R]) -> Callable[[R, datetime], bool]:
    """The predicate of records past their declared expiry field."""
    return collection.schema.is_expired


# --- prefix search in a unique index of strings (support: users by email) --------------


def string_prefix_pointers(
    tr: Any, index: Any, prefix: str, *, limit: int
) -> list[tuple[Any, ...]]:
    """The pointers of the first ``limit`` entries of a unique index whose first value is a
    string starting with ``prefix`` (``user_by_email``: ``(tenant_id, user_id)``), in order.

    Tuple-packed strings are ``02``, the UTF-8 bytes with ``00`` escaped as ``00 ff``, then
    ``00``; UTF-8 never holds ``ff``, so the entries sit in ``[start, start + ff)``.
    """
    start = bytes(index.key()) + b"\x02" + prefix.encode().replace(b"\x00", b"\x00\xff")
    found = []
    for kv in tr.get_range(start, start + b"\xff", limit=limit):
        try:
            found.append(tuple(tuples.unpack(kv.value)))
        except ValueError:
            continue
    return found
