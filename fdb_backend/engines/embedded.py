"""The embedded engine: FoundationDB's transaction semantics over one SQLite file.

How it keeps FoundationDB's promises on one machine:

* Reads happen inside an SQLite read transaction opened at the first read, so every read of
  a transaction sees one snapshot; the store's commit counter at that snapshot is the read
  version.
* Writes are buffered in the transaction (read-your-writes) and applied at commit under
  ``BEGIN IMMEDIATE``, which serialises committers across threads and processes.
* Before applying, the commit checks its read conflict ranges against the write ranges of
  every commit newer than its read version, kept in ``write_log`` in the same file: an
  overlap is 1020 not_committed. Ranges are exact keys, so disjoint keys never conflict.
* Every commit also keeps the values it replaces in its ``write_log`` row (the keys it
  changed and their values before), in the same SQLite transaction: a transaction
  whose read version is older than the store's (``set_read_version``) reads the database
  as of that version, as a FoundationDB storage server does within its 5-second MVCC window.
* ``write_log`` is pruned to the last few seconds; a transaction whose read
  version is older than that window gets 1007 transaction_too_old, as a cluster would.
* SQLite runs in WAL mode with ``synchronous=FULL`` (durable when commit returns) and rolls
  back a half-written commit after a crash.
"""

from __future__ import annotations

import bisect
import fcntl
import functools
import itertools
import os
import random
import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Generator, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from fdb_backend import atomic, clock, metrics, turns
from fdb_backend.conveniences import DatabaseConveniences
from fdb_backend.errors import RETRYABLE, FDBError
from fdb_backend.limits import (
    KEY_SIZE_LIMIT,
    SYSTEM_KEYS_BEGIN,
    TRANSACTION_AGE_LIMIT_S,
    TRANSACTION_SIZE_LIMIT,
    VALUE_SIZE_LIMIT,
    VERSIONSTAMP_LENGTH,
)
from fdb_backend.selectors import KeySelector, KeyValue, StreamingMode

STORE_FORMAT = "coditect-embedded-fdb/3"
# Both are upgraded in place on open (see _initialise): format 1 kept no before-images,
# format 2 kept them in a `history` table, one row per commit, beside `write_log`.
_FORMAT_1 = "coditect-embedded-fdb/1"
_FORMAT_2 = "coditect-embedded-fdb/2"
SQLITE_MAGIC = b"SQLite format 3\x00"
# The MVCC window: a read version is served while its successor was committed at most this
# long ago (FoundationDB's max_read_transaction_life_versions, 5,000,000 versions = 5 s).
MVCC_WINDOW_S = TRANSACTION_AGE_LIMIT_S
# How long commit write ranges (conflict checks) and replaced values (reads at old
# versions) are kept: the window plus a second of slack between the clock that ages a
# transaction (monotonic) and the one that stamps commits (wall).
WRITE_LOG_RETENTION_S = MVCC_WINDOW_S + 1.0
# Pruning runs in a commit, after this many commits or this long since the last one.
TRIM_EVERY_COMMITS = 128
TRIM_EVERY_S = 1.0

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY CHECK (id = 0),"
    " format TEXT NOT NULL, version INTEGER NOT NULL, horizon INTEGER NOT NULL)",
    # `images`: the keys the commit changed, each with the value it had just before (absent:
    # see _encode_images), NULL when it changed none. In the commit's own row rather than a
    # table of their own: a second row per commit cost a single-key commit an insert and
    # one more page written to the WAL, about a tenth of its CPU.
    "CREATE TABLE IF NOT EXISTS write_log (version INTEGER PRIMARY KEY,"
    " committed_at REAL NOT NULL, ranges BLOB NOT NULL, images BLOB)",
)

# What an old read version V needs: every change after it, the earliest per key first.
_HISTORY_AFTER = (
    "SELECT images FROM write_log WHERE version > ? AND images IS NOT NULL ORDER BY version"
)
# A commit reads the values it replaces within statements it runs anyway (a range clear's
# DELETE returns its rows, an atomic op reuses its read, the write_log INSERT reads a single
# key's), and only a commit of several blind writes adds one read of them all. TEMP
# triggers handing each image to Python through an SQL function cost a single-key commit
# about a tenth of its CPU (a trigger program and a call per row); a read statement of its
# own costs more still (each statement is ~20,000 instructions of Python's sqlite3).
_CLEAR_RETURNING = "DELETE FROM kv WHERE key >= ? AND key < ? RETURNING key, value"
_VALUE_OF = "SELECT value FROM kv WHERE key = ?"
# The commit's row numbers the commit itself (_VERSION_AND_HORIZON's version plus one, in
# the same statement; the version is the row's rowid, which the cursor's lastrowid gives
# back without a RETURNING clause, which costs SQLite an ephemeral table): a commit that
# needs the number sooner (conflict checks, versionstamps) has read it already, and a blind
# one saves a statement, about a tenth of its CPU, which pays for its before-images.
_LOG = (
    "INSERT INTO write_log (version, committed_at, ranges, images) VALUES ("
    "(SELECT MAX(version, COALESCE((SELECT MAX(version) FROM write_log), 0)) + 1 FROM state),"
    " ?, ?, ?)"
)
# The commit's row, run before its writes, reading the value before of the one key whose
# value is not known yet (a single-key commit's) in a subquery. `||` joins the bytes
# (as text, which CAST makes bytes again without changing them); a NULL (absent) value
# makes it NULL, and COALESCE takes the image that says absent instead.
_LOG_READING_ONE = (
    "INSERT INTO write_log (version, committed_at, ranges, images) VALUES ("
    "(SELECT MAX(version, COALESCE((SELECT MAX(version) FROM write_log), 0)) + 1 FROM state),"
    " ?, ?, COALESCE(CAST(? || (SELECT value FROM kv WHERE key = ?) AS BLOB), ?))"
)
# The oldest commit still inside the write log's retention (the newest if none is: the log
# in version order, from its start), and the oldest the log keeps.
_FIRST_YOUNG_AND_OLDEST = (
    "SELECT COALESCE((SELECT version FROM write_log WHERE committed_at >= ?"
    " ORDER BY version LIMIT 1), (SELECT MAX(version) FROM write_log)),"
    " (SELECT MIN(version) FROM write_log)"
)
# The values of many keys: one statement per this many (a bound parameter each).
_VALUES_PER_STATEMENT = 100
# A range's rows in either order: two fixed statements, so no SQL is ever formatted with a
# value (each takes ``begin, end`` and, with the LIMIT, the limit).
_RANGE = {
    False: "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key ASC",
    True: "SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key DESC",
}
_RANGE_UP_TO = {reverse: sql + " LIMIT ?" for reverse, sql in _RANGE.items()}


@functools.cache
def _values_of(count: int) -> str:
    """The statement reading the values of ``count`` keys (made once per count)."""
    # Only the placeholders are formatted into the SQL (one "?" per key); the keys are bound.
    marks = ",".join("?" * count)
    return f"SELECT key, value FROM kv WHERE key IN ({marks})"  # noqa: S608


# Commits and point reads bind keys and values as bytearray: Python 3.11's sqlite3 binds
# bytes only after its adaptation protocol has failed to find an adapter (attribute lookups
# raising and formatting AttributeErrors, about 2,700 instructions a parameter, a tenth of
# a single-key commit's for the six it binds), a bytearray directly, as the same BLOB.
_blob = bytearray
# A commit's writes go in statements of up to this many rows: one SQLite step for all of them
# instead of one each (every step is a GIL hand-off, which the other threads of a busy process
# stretch while the store's lock is held), and few enough shapes of statement (one per count)
# to stay in sqlite3's statement cache.
_ROWS_PER_WRITE = 16


@functools.cache
def _upserts_of(count: int) -> str:
    """The statement setting ``count`` keys' values (made once per count); a later row of
    one key wins, as a later write of one transaction does."""
    rows = ",".join(["(?, ?)"] * count)
    return (
        f"INSERT INTO kv (key, value) VALUES {rows}"  # noqa: S608 - only placeholders
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value"
    )


@functools.cache
def _deletes_of(count: int) -> str:
    """The statement deleting ``count`` keys (made once per count)."""
    marks = ",".join("?" * count)
    return f"DELETE FROM kv WHERE key IN ({marks})"  # noqa: S608 - only placeholders


# The read version's age: when the commit after it happened (it stopped being the newest).
_SUCCESSOR_COMMITTED_AT = (
    "SELECT committed_at FROM write_log WHERE version > ? ORDER BY version LIMIT 1"
)

# The store's version is the newest write_log entry (a commit writes no other bookkeeping
# page); state.version is a floor for a log that was never written or fully trimmed.
_VERSION_AND_HORIZON = (
    "SELECT MAX(version, COALESCE((SELECT MAX(version) FROM write_log), 0)), horizon FROM state"
)

# Entries of a transaction's write buffer, by key.
_VALUE = 0  # (value bytes) or None for a cleared key
_ATOMIC = 1  # pending atomic ops on a base value not read yet
_STAMPED = 2  # set_versionstamped_value: unreadable until commit

Entry = tuple[int, Any]


# Builds KeyValue tuples without NamedTuple.__new__'s argument handling (hot in range reads).
_as_key_value = functools.partial(tuple.__new__, KeyValue)


def _key_after(key: bytes) -> bytes:
    return key + b"\x00"


def _check_key(key: object, *, allow_end: bool = False) -> bytes:
    if not isinstance(key, bytes):
        if isinstance(key, bytearray | memoryview):
            key = bytes(key)
        else:
            raise TypeError("keys must be bytes")
    if len(key) > KEY_SIZE_LIMIT:
        raise FDBError(2102)
    if key >= SYSTEM_KEYS_BEGIN and not (allow_end and key == SYSTEM_KEYS_BEGIN):
        raise FDBError(2004)
    return key


def _check_value(value: object) -> bytes:
    if not isinstance(value, bytes):
        if isinstance(value, bytearray | memoryview):
            value = bytes(value)
        else:
            raise TypeError("values must be bytes")
    if len(value) > VALUE_SIZE_LIMIT:
        raise FDBError(2103)
    return value


def _encode_ranges(ranges: Iterable[tuple[bytes, bytes]]) -> bytes:
    parts = []
    for begin, end in ranges:
        parts.append(struct.pack(">II", len(begin), len(end)))
        parts.append(begin)
        parts.append(end)
    return b"".join(parts)


def _decode_ranges(blob: bytes) -> Iterator[tuple[bytes, bytes]]:
    pos = 0
    size = len(blob)
    while pos < size:
        nb, ne = struct.unpack_from(">II", blob, pos)
        pos += 8
        begin = blob[pos : pos + nb]
        pos += nb
        end = blob[pos : pos + ne]
        pos += ne
        yield begin, end


_IMAGE_HEADER = struct.Struct(">Ii")
_ABSENT = -1
# The last image's value runs to the end of the blob: SQL appends it (see _LOG_READING_ONE).
_TO_THE_END = -2


def _encode_images(images: Iterable[tuple[bytes, bytes | None]]) -> bytes:
    """Keys and the values they had: key length, value length (-1: absent; -2: the rest of
    the blob), key, value."""
    parts: list[bytes] = []
    append = parts.append
    pack = _IMAGE_HEADER.pack
    for key, value in images:
        if value is None:
            append(pack(len(key), _ABSENT))
            append(key)
        else:
            append(pack(len(key), len(value)))
            append(key)
            append(value)
    return b"".join(parts)


def _decode_images(blob: bytes) -> Iterator[tuple[bytes, bytes | None]]:
    pos = 0
    size = len(blob)
    unpack_from = _IMAGE_HEADER.unpack_from
    while pos < size:
        nk, nv = unpack_from(blob, pos)
        pos += 8
        key = blob[pos : pos + nk]
        pos += nk
        if nv == _ABSENT:
            yield key, None
        elif nv == _TO_THE_END:
            yield key, blob[pos:]
            pos = size
        else:
            yield key, blob[pos : pos + nv]
            pos += nv


def _merge_ranges(ranges: list[tuple[bytes, bytes]]) -> tuple[list[bytes], list[bytes]]:
    """Sorted, disjoint begins and ends covering ``ranges``."""
    begins: list[bytes] = []
    ends: list[bytes] = []
    for begin, end in sorted(ranges):
        if ends and begin <= ends[-1]:
            if end > ends[-1]:
                ends[-1] = end
        else:
            begins.append(begin)
            ends.append(end)
    return begins, ends


def _add_range(begins: list[bytes], ends: list[bytes], begin: bytes, end: bytes) -> None:
    """Add [begin, end) to sorted, disjoint ``begins``/``ends`` in place, merging the ranges
    it overlaps or touches (as _merge_ranges would, without sorting them all again: a
    transaction deleting 1,000 records clears 1,000 ranges)."""
    first = bisect.bisect_left(ends, begin)  # the first range ending at or after begin
    past = bisect.bisect_right(begins, end)  # the first range beginning after end
    if first < past:
        begin = min(begin, begins[first])
        end = max(end, ends[past - 1])
    begins[first:past] = [begin]
    ends[first:past] = [end]


def _overlaps(begins: list[bytes], ends: list[bytes], begin: bytes, end: bytes) -> bool:
    i = bisect.bisect_left(begins, end) - 1
    return i >= 0 and ends[i] > begin


def _apply_ops(base: bytes | None, ops: list[tuple[atomic.AtomicFn, bytes]]) -> bytes | None:
    for fn, param in ops:
        base = fn(base, param)
    return base


def _stamp(data: bytes, stamp: bytes) -> bytes:
    """Place a 10-byte versionstamp at the little-endian offset in the last 4 bytes."""
    (offset,) = struct.unpack("<I", data[-4:])
    body = data[:-4]
    return body[:offset] + stamp + body[offset + VERSIONSTAMP_LENGTH :]


def _check_stamp_offset(data: bytes) -> None:
    if len(data) < 4:
        raise FDBError(2000)
    (offset,) = struct.unpack("<I", data[-4:])
    if offset + VERSIONSTAMP_LENGTH > len(data) - 4:
        raise FDBError(2000)


def _injected(code: int) -> FDBError:
    """An error from fault injection, marked so tests can tell it from a real one."""
    error = FDBError(code)
    error.injected = True
    return error


class Future:
    """A completed future, so ``tr.commit().wait()`` reads as with the official binding."""

    __slots__ = ("_error", "_value")

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def wait(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value

    def is_ready(self) -> bool:
        return True

    def block_until_ready(self) -> None:
        return None


_DONE = Future()  # every successful commit returns this one completed future


class _VersionstampFuture(Future):
    __slots__ = ("_tr",)

    def __init__(self, tr: Transaction) -> None:
        super().__init__()
        self._tr = tr

    def wait(self) -> bytes:
        tr = self._tr
        if tr._versionstamp is not None:
            return tr._versionstamp
        if tr._committed_read_only:
            raise FDBError(2021)
        # The official future blocks until commit; waiting on it first would block forever.
        raise FDBError(2000)


class TransactionOptions:
    def __init__(self, tr: Transaction) -> None:
        self._tr = tr

    def set_timeout(self, milliseconds: int) -> None:
        self._tr._timeout_s = milliseconds / 1000 if milliseconds else None

    def set_retry_limit(self, limit: int) -> None:
        self._tr._retry_limit = None if limit < 0 else limit

    def set_max_retry_delay(self, milliseconds: int) -> None:
        self._tr._max_backoff_s = milliseconds / 1000

    def set_read_your_writes_disable(self) -> None:
        # Always on here; disabling it only changes what a transaction sees of itself.
        return None


_RANGE_ALL = (
    "SELECT * FROM (SELECT ? AS i, key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key)"
)
_RANGE_LIMITED = _RANGE_ALL[:-1] + " LIMIT ?)"


@functools.cache
def _ranges_of(count: int, *, limited: bool) -> str:
    """The statement reading ``count`` ranges at once (made once per count), each row tagged
    with its range's number, so it goes back to its range even where ranges overlap."""
    return " UNION ALL ".join([_RANGE_LIMITED if limited else _RANGE_ALL] * count)


# The WAL is checkpointed by a thread of each process (PASSIVE: it never blocks a commit),
# woken after this many commits or this often; a commit checkpoints itself only past the
# safety net of WAL pages, if that thread cannot keep up.
CHECKPOINT_AFTER_COMMITS = 100
CHECKPOINT_EVERY_S = 1.0
WAL_SAFETY_NET_PAGES = 20_000

# Subqueries per statement of get_ranges (SQLite allows 500 terms in a compound SELECT).
_RANGES_PER_STATEMENT = 100
# What a transaction keeps of the stored rows it read (``Transaction._stored``): ranges of at
# most this many rows (a record's chunks, a small index scan), this many ranges at most.
_KEPT_ROWS_MAX = 32
_KEPT_RANGES_MAX = 256


class _Snapshot:
    """``tr.snapshot``: reads that see the transaction's writes but add no read conflict."""

    def __init__(self, tr: Transaction) -> None:
        self._tr = tr

    def get(self, key: bytes) -> bytes | None:
        return self._tr._get(key, snapshot=True)

    def __getitem__(self, key: bytes | slice) -> Any:
        if isinstance(key, slice):
            return self._tr._get_range(key.start, key.stop, 0, False, snapshot=True)
        return self._tr._get(key, snapshot=True)

    def get_range(
        self,
        begin: bytes | KeySelector,
        end: bytes | KeySelector,
        limit: int = 0,
        reverse: bool = False,
        streaming_mode: int = StreamingMode.iterator,
    ) -> list[KeyValue]:
        if streaming_mode == StreamingMode.exact and not limit:
            raise FDBError(2210)
        return self._tr._get_range(begin, end, limit, reverse, snapshot=True)

    def get_range_startswith(self, prefix: bytes, limit: int = 0, reverse: bool = False) -> Any:
        return self._tr._get_range(prefix, _strinc(prefix), limit, reverse, snapshot=True)

    def get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], limit: int = 0
    ) -> list[list[KeyValue]]:
        return self._tr._get_ranges(ranges, limit, snapshot=True)

    def get_key(self, selector: KeySelector) -> bytes:
        return self._tr._get_key(selector, snapshot=True)

    def get_read_version(self) -> Future:
        return self._tr.get_read_version()


def _strinc(prefix: bytes) -> bytes:
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        raise ValueError("key must contain at least one byte not equal to 0xFF")
    return stripped[:-1] + bytes([stripped[-1] + 1])


class Transaction:
    """One FoundationDB transaction: snapshot reads, buffered writes, optimistic commit.

    Not safe to share between threads while in use (the official binding's transactions
    are not either); use one transaction per thread.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self._timeout_s: float | None = db._default_timeout_s
        self._retry_limit: int | None = db._default_retry_limit
        self._max_backoff_s = 1.0
        self._retries = 0
        self._backoff_s = 0.01
        self._started = clock.monotonic()
        self._conn: sqlite3.Connection | None = None
        self._clear_state()

    # --- lifecycle -------------------------------------------------------------------

    def _reset_state(self) -> None:
        self._release_snapshot()
        self._clear_state()

    def _clear_state(self) -> None:
        self._read_version: int | None = None
        self._requested_read_version: int | None = None
        # When the read version is older than the snapshot: the value each key changed
        # since had at the read version (None: absent), and those keys in order.
        self._past: dict[bytes, bytes | None] | None = None
        self._past_keys: Sequence[bytes] = ()
        self._read_started = 0.0
        self._writes: dict[bytes, Entry] = {}
        self._sorted_keys: list[bytes] | None = None
        self._cleared_begins: list[bytes] = []
        self._cleared_ends: list[bytes] = []
        self._stamped_keys: list[tuple[bytes, bytes]] = []
        self._read_ranges: list[tuple[bytes, bytes]] = []
        # The stored rows (before this transaction's writes) of whole ranges read from the
        # snapshot, ascending: the snapshot does not change, so reading a range again (the
        # records layer reads a record, then saves over it) needs no statement, as in
        # FoundationDB's client, whose read-your-writes cache keeps what was read. Given up
        # with the snapshot (``_release_snapshot``).
        self._stored: dict[tuple[bytes, bytes], list[tuple[bytes, bytes]]] = {}
        self._extra_write_ranges: list[tuple[bytes, bytes]] = []
        self._size = 0
        self._committing = False
        self._committed_version = -1
        self._committed_read_only = False
        self._versionstamp: bytes | None = None

    def reset(self) -> None:
        """Forget everything, as a new transaction; options and retry state remain."""
        self._reset_state()
        self._started = clock.monotonic()

    def cancel(self) -> None:
        self._reset_state()

    # No reference cycles (options and snapshot are made on use), so an abandoned
    # transaction is freed at once and gives its snapshot connection back here.
    def __del__(self) -> None:
        self._release_snapshot()

    @property
    def options(self) -> TransactionOptions:
        return TransactionOptions(self)

    @property
    def snapshot(self) -> _Snapshot:
        return _Snapshot(self)

    def _release_snapshot(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            self._conn = None
            self._stored = {}  # rows of that snapshot
            self.db._release_reader(conn)

    def _keep(self, begin: bytes, end: bytes, rows: list[tuple[bytes, bytes]]) -> None:
        if len(rows) <= _KEPT_ROWS_MAX and len(self._stored) < _KEPT_RANGES_MAX:
            self._stored[begin, end] = rows

    def _snapshot_conn(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            self._check_age()
            return conn
        if self._timeout_s is not None:
            self._check_timeout()
        conn = self.db._acquire_reader()
        age = 0.0
        try:
            # The snapshot starts at the first statement after BEGIN; the read version is
            # read from the same snapshot only when needed (commit, get_read_version).
            conn.execute("BEGIN")
            wanted = self._requested_read_version
            if wanted is not None:
                version, horizon = conn.execute(_VERSION_AND_HORIZON).fetchone()
                if wanted > version:
                    raise FDBError(1009)
                if wanted < horizon:
                    raise FDBError(1007)
                if wanted < version:
                    # An old version: readable while the commit that superseded it is
                    # younger than the window; its reads merge the before-images.
                    row = conn.execute(_SUCCESSOR_COMMITTED_AT, (wanted,)).fetchone()
                    if row is None:
                        raise FDBError(1007)
                    age = max(clock.wall() - row[0], 0.0)
                    if age > MVCC_WINDOW_S:
                        raise FDBError(1007)
                    # Loaded once: the snapshot's history is fixed, and within the
                    # window it is what the commits since `wanted` changed.
                    past: dict[bytes, bytes | None] = {}
                    for (images,) in conn.execute(_HISTORY_AFTER, (wanted,)):
                        for key, value in _decode_images(images):
                            if key not in past:
                                past[key] = value
                    self._past = past
                    self._past_keys = sorted(past)
                self._read_version = wanted
        except BaseException:
            self.db._release_reader(conn)
            raise
        self._conn = conn
        # The transaction is as old as its read version: it has the rest of the window.
        self._read_started = clock.monotonic() - age
        return conn

    def _snapshot_version(self) -> int:
        version = self._read_version
        if version is None:
            conn = self._snapshot_conn()
            version, _ = conn.execute(_VERSION_AND_HORIZON).fetchone()
            self._read_version = version
        return version

    def _check_age(self) -> None:
        if clock.monotonic() - self._read_started > TRANSACTION_AGE_LIMIT_S:
            raise FDBError(1007)
        if self._timeout_s is not None:
            self._check_timeout()

    def _check_timeout(self) -> None:
        if self._timeout_s is not None and clock.monotonic() - self._started > self._timeout_s:
            raise FDBError(1031)

    def _rows_at_read_version(
        self,
        conn: sqlite3.Connection,
        begin: bytes,
        end: bytes,
        reverse: bool,
        past: dict[bytes, bytes | None],
    ) -> Generator[tuple[bytes, bytes], None, None]:
        """The stored rows of [begin, end) as of an old read version, in key order.

        Current rows, except keys a later commit changed: those take the value they had
        (keys created since disappear, keys cleared since come back).
        """
        keys = self._past_keys
        changed = list(keys[bisect.bisect_left(keys, begin) : bisect.bisect_left(keys, end)])
        cursor = conn.execute(_RANGE[reverse], (begin, end))
        try:
            if not changed:
                yield from cursor
                return
            if reverse:
                changed.reverse()
            i = 0
            n = len(changed)
            for key, value in cursor:
                while i < n and (changed[i] > key if reverse else changed[i] < key):
                    old = past[changed[i]]
                    if old is not None:
                        yield changed[i], old
                    i += 1
                if i < n and changed[i] == key:
                    i += 1
                    old = past[key]
                    if old is not None:
                        yield key, old
                    continue
                yield key, value
            for key in changed[i:]:
                old = past[key]
                if old is not None:
                    yield key, old
        finally:
            cursor.close()

    # --- versions --------------------------------------------------------------------

    def get_read_version(self) -> Future:
        return Future(self._snapshot_version())

    def set_read_version(self, version: int) -> None:
        if self._conn is not None:
            raise FDBError(2000)
        self._requested_read_version = version

    def get_committed_version(self) -> int:
        return self._committed_version

    def get_versionstamp(self) -> Future:
        return _VersionstampFuture(self)

    # --- reads -----------------------------------------------------------------------

    def _in_cleared(self, key: bytes) -> bool:
        i = bisect.bisect_right(self._cleared_begins, key) - 1
        return i >= 0 and self._cleared_ends[i] > key

    def _get(self, key: bytes, *, snapshot: bool) -> bytes | None:
        if type(key) is not bytes or len(key) > KEY_SIZE_LIMIT or key >= SYSTEM_KEYS_BEGIN:
            key = _check_key(key)
        entry = self._writes.get(key) if self._writes else None
        if entry is not None:
            kind, data = entry
            if kind == _VALUE:
                return data
            if kind == _STAMPED:
                raise FDBError(1036)
        elif self._cleared_begins and self._in_cleared(key):
            return None
        conn = self._snapshot_conn()
        self._size += len(key)
        if not snapshot:
            self._read_ranges.append((key, _key_after(key)))
        past = self._past
        if past is not None and key in past:
            base = past[key]
        else:
            # bytearray: bound without the adapter lookup bytes pays (see _blob).
            row = conn.execute(_VALUE_OF, (_blob(key),)).fetchone()
            base = row[0] if row is not None else None
        if entry is not None:
            return _apply_ops(base, entry[1])
        return base

    def get(self, key: bytes) -> bytes | None:
        return self._get(key, snapshot=False)

    def __getitem__(self, key: bytes | slice) -> Any:
        if isinstance(key, slice):
            return self._get_range(key.start, key.stop, 0, False, snapshot=False)
        return self._get(key, snapshot=False)

    def get_range(
        self,
        begin: bytes | KeySelector,
        end: bytes | KeySelector,
        limit: int = 0,
        reverse: bool = False,
        streaming_mode: int = StreamingMode.iterator,
    ) -> list[KeyValue]:
        if streaming_mode == StreamingMode.exact and not limit:
            raise FDBError(2210)
        return self._get_range(begin, end, limit, reverse, snapshot=False)

    def get_range_startswith(
        self, prefix: bytes, limit: int = 0, reverse: bool = False
    ) -> list[KeyValue]:
        return self._get_range(prefix, _strinc(prefix), limit, reverse, snapshot=False)

    def get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], limit: int = 0
    ) -> list[list[KeyValue]]:
        """``[tr.get_range(b, e, limit) for b, e in ranges]``, read at once.

        Not in FoundationDB's API: there a client issues the reads together and waits for
        all (each read is a future); here they become one SQL statement instead of one each.
        Semantics, limits and conflict ranges are those of the separate reads.
        """
        return self._get_ranges(ranges, limit, snapshot=False)

    def _get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], limit: int, *, snapshot: bool
    ) -> list[list[KeyValue]]:
        if (
            len(ranges) <= 1
            or self._writes
            or self._cleared_begins
            or self._requested_read_version is not None
        ):
            # One read, ranges this transaction wrote to, or an old read version (history
            # to merge): the single reads' path.
            return [self._get_range(b, e, limit, False, snapshot=snapshot) for b, e in ranges]
        if limit < 0:
            raise FDBError(2000)
        bounds = []
        try:
            for begin, end in ranges:
                # Plain keys within the limits (what callers pass) need no resolving; the
                # rest (selectors, None, keys to refuse) take the checked path.
                if not (type(begin) is bytes and len(begin) <= KEY_SIZE_LIMIT):
                    begin = self._resolve(begin, b"", snapshot)
                if not (type(end) is bytes and len(end) <= KEY_SIZE_LIMIT):
                    end = self._resolve(end, SYSTEM_KEYS_BEGIN, snapshot)
                if begin > SYSTEM_KEYS_BEGIN or end > SYSTEM_KEYS_BEGIN:
                    raise FDBError(2004)
                if begin > end:
                    raise FDBError(2005)
                bounds.append((begin, end))
        except FDBError:
            # A range the single reads refuse: answer exactly as they would, one after the
            # other (the ranges before it read, with their conflicts; its own error, checked
            # in get_range's order), whatever the transaction wrote before.
            return [self._get_range(b, e, limit, False, snapshot=snapshot) for b, e in ranges]
        for begin, end in bounds:
            self._size += len(begin) + len(end)
        conn = self._snapshot_conn()
        results: list[list[KeyValue]] = [[] for _ in bounds]
        stored = self._stored
        wanted = []  # the ranges not kept already, by number
        for i, bound in enumerate(bounds):
            kept = stored.get(bound)
            if kept is None:
                wanted.append(i)
            else:
                results[i] = list(map(_as_key_value, kept[:limit] if limit else kept))
        for first in range(0, len(wanted), _RANGES_PER_STATEMENT):
            part = wanted[first : first + _RANGES_PER_STATEMENT]
            params: list[Any] = []
            for i in part:
                b, e = bounds[i]
                params.extend((i, b, e, limit) if limit else (i, b, e))
            sql = _ranges_of(len(part), limited=bool(limit))
            for i, key, value in conn.execute(sql, params).fetchall():
                results[i].append(KeyValue(key, value))
        for i in wanted:
            results[i].sort()  # SQL promises no order across a compound SELECT: key order
            if not limit:
                self._keep(*bounds[i], [(kv.key, kv.value) for kv in results[i]])
        if not snapshot:
            for (b, e), result in zip(bounds, results, strict=True):
                if limit and len(result) >= limit:
                    self._read_ranges.append((b, _key_after(result[-1].key)))
                else:
                    self._read_ranges.append((b, e))
        return results

    def get_key(self, selector: KeySelector) -> bytes:
        return self._get_key(selector, snapshot=False)

    def _get_key(self, selector: KeySelector, *, snapshot: bool) -> bytes:
        if not isinstance(selector, KeySelector):
            raise TypeError("get_key takes a KeySelector")
        key = selector.key
        if selector.offset >= 1:
            start = _key_after(key) if selector.or_equal else key
            start = min(start, SYSTEM_KEYS_BEGIN)
            found = self._get_range(
                start, SYSTEM_KEYS_BEGIN, selector.offset, False, snapshot=snapshot
            )
            return found[-1].key if len(found) == selector.offset else SYSTEM_KEYS_BEGIN
        stop = _key_after(key) if selector.or_equal else key
        stop = min(stop, SYSTEM_KEYS_BEGIN)
        wanted = 1 - selector.offset
        found = self._get_range(b"", stop, wanted, True, snapshot=snapshot)
        return found[-1].key if len(found) == wanted else b""

    def _resolve(self, key: bytes | KeySelector | None, default: bytes, snapshot: bool) -> bytes:
        if key is None:
            return default
        if isinstance(key, KeySelector):
            return self._get_key(key, snapshot=snapshot)
        return _check_key(key, allow_end=True)

    def _local_keys(self, begin: bytes, end: bytes) -> list[bytes]:
        if not self._writes:
            return []
        keys = self._sorted_keys
        if keys is None:
            keys = self._sorted_keys = sorted(self._writes)
        return keys[bisect.bisect_left(keys, begin) : bisect.bisect_left(keys, end)]

    def _get_range(
        self,
        begin: bytes | KeySelector | None,
        end: bytes | KeySelector | None,
        limit: int,
        reverse: bool,
        *,
        snapshot: bool,
    ) -> list[KeyValue]:
        b = self._resolve(begin, b"", snapshot)
        e = self._resolve(end, SYSTEM_KEYS_BEGIN, snapshot)
        if b > e:
            raise FDBError(2005)
        if limit < 0:
            raise FDBError(2000)
        if b == e:
            return []
        conn = self._snapshot_conn()
        self._size += len(b) + len(e)
        local = self._local_keys(b, e)
        past = self._past
        if past is not None:
            past_rows = self._rows_at_read_version(conn, b, e, reverse, past)
            try:
                if not local and not self._cleared_begins:
                    result = list(map(_as_key_value, itertools.islice(past_rows, limit or None)))
                else:
                    result = self._merge(past_rows, local, limit, reverse)
            finally:
                past_rows.close()
        else:
            kept = self._stored.get((b, e))
            if kept is None and not limit:
                kept = conn.execute(_RANGE[False], (b, e)).fetchall()
                self._keep(b, e, kept)
            if kept is not None:
                rows: Iterable[tuple[bytes, bytes]] = reversed(kept) if reverse else kept
            elif not local and not self._cleared_begins:
                rows = conn.execute(_RANGE_UP_TO[reverse], (b, e, limit)).fetchall()
            else:
                rows = conn.execute(_RANGE[reverse], (b, e))  # read as far as the limit
            if not local and not self._cleared_begins:
                result = list(map(_as_key_value, itertools.islice(rows, limit or None)))
            else:
                result = self._merge(rows, local, limit, reverse)
        if not snapshot:
            if limit and len(result) >= limit:
                last = result[-1].key
                self._read_ranges.append((last, e) if reverse else (b, _key_after(last)))
            else:
                self._read_ranges.append((b, e))
        return result

    def _merge(
        self,
        rows: Iterable[tuple[bytes, bytes]],
        local: list[bytes],
        limit: int,
        reverse: bool,
    ) -> list[KeyValue]:
        """Stored rows overlaid with this transaction's writes, in key order."""
        if reverse:
            local = local[::-1]
        writes = self._writes
        result: list[KeyValue] = []

        def emit(key: bytes, base: bytes | None, entry: Entry | None) -> bool:
            if entry is None:
                if base is not None:
                    result.append(KeyValue(key, base))
            else:
                kind, data = entry
                if kind == _STAMPED:
                    raise FDBError(1036)
                value = data if kind == _VALUE else _apply_ops(base, data)
                if value is not None:
                    result.append(KeyValue(key, value))
            return bool(limit) and len(result) >= limit

        i = 0
        n = len(local)
        for key, value in rows:
            while i < n and (local[i] > key if reverse else local[i] < key):
                if emit(local[i], None, writes[local[i]]):
                    return result
                i += 1
            if i < n and local[i] == key:
                done = emit(key, value, writes[key])
                i += 1
            elif self._cleared_begins and self._in_cleared(key):
                continue
            else:
                done = emit(key, value, None)
            if done:
                return result
        while i < n:
            if emit(local[i], None, writes[local[i]]):
                return result
            i += 1
        return result

    # --- writes ----------------------------------------------------------------------

    def _put(self, key: bytes, entry: Entry) -> None:
        if key not in self._writes and self._sorted_keys is not None:
            # Kept sorted as keys arrive: re-sorting on every read-after-write made a
            # transaction of n read-then-write steps (the records layer's save) O(n² log n).
            bisect.insort(self._sorted_keys, key)
        self._writes[key] = entry

    def set(self, key: bytes, value: bytes) -> None:
        key = _check_key(key)
        value = _check_value(value)
        self._size += len(key) + len(value)
        self._put(key, (_VALUE, value))

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.set(key, value)

    def clear(self, key: bytes) -> None:
        key = _check_key(key)
        self._size += len(key)
        self._put(key, (_VALUE, None))

    def __delitem__(self, key: bytes | slice) -> None:
        if isinstance(key, slice):
            self.clear_range(key.start or b"", key.stop or SYSTEM_KEYS_BEGIN)
        else:
            self.clear(key)

    def clear_range(self, begin: bytes, end: bytes) -> None:
        begin = _check_key(begin, allow_end=True)
        end = _check_key(end, allow_end=True)
        if begin > end:
            raise FDBError(2005)
        if begin == end:
            return
        self._size += len(begin) + len(end)
        keys = self._local_keys(begin, end)
        for key in keys:
            del self._writes[key]
        if keys and self._sorted_keys is not None:
            lo = bisect.bisect_left(self._sorted_keys, begin)
            del self._sorted_keys[lo : lo + len(keys)]
        _add_range(self._cleared_begins, self._cleared_ends, begin, end)

    def clear_range_startswith(self, prefix: bytes) -> None:
        self.clear_range(prefix, _strinc(prefix))

    def _atomic(self, fn: atomic.AtomicFn, key: bytes, param: bytes) -> None:
        key = _check_key(key)
        param = _check_value(param)
        self._size += len(key) + len(param)
        entry = self._writes.get(key)
        if entry is None:
            if self._cleared_begins and self._in_cleared(key):
                self._put(key, (_VALUE, fn(None, param)))
            else:
                self._put(key, (_ATOMIC, [(fn, param)]))
        elif entry[0] == _VALUE:
            self._writes[key] = (_VALUE, fn(entry[1], param))
        elif entry[0] == _ATOMIC:
            entry[1].append((fn, param))
        else:
            raise FDBError(1036)

    def add(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.add, key, param)

    def bit_and(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.bit_and, key, param)

    def bit_or(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.bit_or, key, param)

    def bit_xor(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.bit_xor, key, param)

    def append_if_fits(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.append_if_fits, key, param)

    def max(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.max_, key, param)

    def min(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.min_, key, param)

    def byte_max(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.byte_max, key, param)

    def byte_min(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.byte_min, key, param)

    def compare_and_clear(self, key: bytes, param: bytes) -> None:
        self._atomic(atomic.compare_and_clear, key, param)

    def set_versionstamped_key(self, key: bytes, param: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("keys must be bytes")
        _check_stamp_offset(key)
        if len(key) - 4 > KEY_SIZE_LIMIT:
            raise FDBError(2102)
        if key[:-4] >= SYSTEM_KEYS_BEGIN:
            raise FDBError(2004)
        param = _check_value(param)
        self._size += len(key) + len(param)
        self._stamped_keys.append((key, param))

    def set_versionstamped_value(self, key: bytes, param: bytes) -> None:
        key = _check_key(key)
        if not isinstance(param, bytes):
            raise TypeError("values must be bytes")
        _check_stamp_offset(param)
        if len(param) - 4 > VALUE_SIZE_LIMIT:
            raise FDBError(2103)
        self._size += len(key) + len(param)
        self._put(key, (_STAMPED, param))

    # --- conflict ranges -------------------------------------------------------------

    def add_read_conflict_range(self, begin: bytes, end: bytes) -> None:
        begin = _check_key(begin, allow_end=True)
        end = _check_key(end, allow_end=True)
        if begin > end:
            raise FDBError(2005)
        self._snapshot_version()  # pins the snapshot the range is checked from
        self._size += len(begin) + len(end)
        self._read_ranges.append((begin, end))

    def add_read_conflict_key(self, key: bytes) -> None:
        self.add_read_conflict_range(key, _key_after(_check_key(key)))

    def add_write_conflict_range(self, begin: bytes, end: bytes) -> None:
        begin = _check_key(begin, allow_end=True)
        end = _check_key(end, allow_end=True)
        if begin > end:
            raise FDBError(2005)
        self._size += len(begin) + len(end)
        self._extra_write_ranges.append((begin, end))

    def add_write_conflict_key(self, key: bytes) -> None:
        self.add_write_conflict_range(key, _key_after(_check_key(key)))

    # --- commit ----------------------------------------------------------------------

    def _is_read_only(self) -> bool:
        return not (
            self._writes or self._cleared_begins or self._stamped_keys or self._extra_write_ranges
        )

    def commit(self) -> Future:
        try:
            self._commit()
        except FDBError as error:
            return Future(error=error)
        return _DONE

    def _commit(self) -> None:
        if self._committing:
            raise FDBError(2017)
        if self._conn is not None:
            self._check_age()
        elif self._timeout_s is not None:
            self._check_timeout()
        if self._is_read_only():
            self._release_snapshot()
            self._committed_read_only = True
            return
        if self._size > TRANSACTION_SIZE_LIMIT:
            raise FDBError(2101)
        fault = self.db._draw_fault()
        if fault in (1020, -1021):
            # Injected before anything is applied: not committed, or "unknown" but not.
            raise _injected(abs(fault))
        if self._read_ranges:
            self._snapshot_version()
        self._committing = True
        try:
            self._release_snapshot()
            version = self.db._apply_commit(self)
        finally:
            self._committing = False
        self._committed_version = version
        self._versionstamp = struct.pack(">QH", version, 0)
        if fault == 1021:
            # Injected after the commit is durable: the caller cannot tell it happened.
            raise _injected(1021)

    # --- retry loop ------------------------------------------------------------------

    def on_error(self, error: FDBError | int) -> Future:
        """Back off and reset for a retryable error; re-raise any other."""
        code = error.code if isinstance(error, FDBError) else int(error)
        if code == 0:
            raise FDBError(2000)
        if code not in RETRYABLE:
            raise error if isinstance(error, FDBError) else FDBError(code)
        if self._retry_limit is not None and self._retries >= self._retry_limit:
            raise error if isinstance(error, FDBError) else FDBError(code)
        self._retries += 1
        delay = min(self._backoff_s, self._max_backoff_s)
        self._reset_state()
        time.sleep(delay * random.random())  # noqa: S311 - jitter, not security
        self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)
        self._check_timeout()
        return Future()

    # --- what commit applies ---------------------------------------------------------

    def _write_ranges(self, stamped: list[bytes]) -> list[tuple[bytes, bytes]]:
        ranges = [(k, _key_after(k)) for k in self._writes]
        ranges.extend(zip(self._cleared_begins, self._cleared_ends, strict=True))
        ranges.extend((k, _key_after(k)) for k in stamped)
        ranges.extend(self._extra_write_ranges)
        return ranges


class DatabaseOptions:
    def __init__(self, db: Database) -> None:
        self._db = db

    def set_transaction_timeout(self, milliseconds: int) -> None:
        self._db._default_timeout_s = milliseconds / 1000 if milliseconds else None

    def set_transaction_retry_limit(self, limit: int) -> None:
        self._db._default_retry_limit = None if limit < 0 else limit


class Database(DatabaseConveniences):
    """A store in one SQLite file, shared safely by threads and processes."""

    def __init__(
        self,
        path: Path,
        *,
        durable: bool = True,
        fault_rate: float = 0.0,
        delete_on_close: bool = False,
    ) -> None:
        self.path = path
        self.options = DatabaseOptions(self)
        self._durable = durable
        self._delete_on_close = delete_on_close
        self._default_timeout_s: float | None = None
        self._default_retry_limit: int | None = None
        self._readers: list[sqlite3.Connection] = []
        # Connections lent to transactions, by id. Holding them here keeps a lent connection
        # reachable from the Database, so it can never be collected in the same garbage
        # cycle as its transaction: Python 3.12's sqlite3 finalizer would close it first and
        # the transaction's __del__ would then pool a closed connection. It also makes a
        # second release of one connection a no-op instead of pooling it twice.
        self._lent: dict[int, sqlite3.Connection] = {}
        self._readers_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        # The commit queue, and whether a thread is committing a batch of it (its leader).
        self._queue_ready = threading.Condition(threading.Lock())
        self._queue: list[_Queued] = []
        self._leading = False
        self._fault_rate = fault_rate
        self._fault_random = random.Random()  # noqa: S311 - fault injection, not security
        self._commits_since_trim = 0
        self._trimmed_at = 0.0
        self._closed = False
        self._pid = os.getpid()
        _refuse_foreign_file(path)
        self._writer = self._connect()
        self._initialise()
        self._lock_fd = self._open_lock_file()
        self._commits_since_checkpoint = 0
        self._start_checkpointer()

    # --- connections -----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=60.0
        )
        conn.execute("PRAGMA synchronous=" + ("FULL" if self._durable else "OFF"))
        conn.execute("PRAGMA busy_timeout=60000")
        # Checkpoints are the checkpointer thread's work (below), not a committer's: the
        # commit that crossed SQLite's default 1,000 pages paid tens of milliseconds for it.
        conn.execute(f"PRAGMA wal_autocheckpoint={WAL_SAFETY_NET_PAGES}")
        return conn

    def _start_checkpointer(self) -> None:
        self._checkpoint_wanted = threading.Event()
        self._checkpoint_stop = threading.Event()
        self._checkpointer = threading.Thread(
            target=self._checkpoint_loop, name="embedded-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while not self._checkpoint_stop.is_set():
                self._checkpoint_wanted.wait(CHECKPOINT_EVERY_S)
                self._checkpoint_wanted.clear()
                if self._checkpoint_stop.is_set():
                    break
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:
                    pass  # busy, or the store is closing: the next round tries again
        finally:
            if conn is not None:
                conn.close()

    def _stop_checkpointer(self) -> None:
        self._checkpoint_stop.set()
        self._checkpoint_wanted.set()
        if self._checkpointer is not threading.current_thread():
            self._checkpointer.join(10)

    def _initialise(self) -> None:
        # Under the store's commit lock: two processes opening a new store at once raced on
        # the switch to WAL, which SQLite can refuse at once ("database is locked") rather
        # than wait for (seen when two daphnes started together).
        lock_fd = self._open_lock_file()
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            self._initialise_locked()
        finally:
            os.close(lock_fd)  # releases the lock

    def _initialise_locked(self) -> None:
        conn = self._writer
        try:
            # Look before writing anything: even switching to WAL rewrites the header.
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if tables and "state" not in tables:
                raise ValueError("not a coditect store", str(self.path))
            conn.execute("PRAGMA journal_mode=WAL")
        except BaseException:
            conn.close()
            raise
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO state (id, format, version, horizon) VALUES (0, ?, 0, 0)",
                (STORE_FORMAT,),
            )
            (found,) = conn.execute("SELECT format FROM state").fetchone()
            if found in (_FORMAT_1, _FORMAT_2):
                self._upgrade(conn, found)
            elif found != STORE_FORMAT:
                raise ValueError("unsupported store format", found)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            conn.close()
            raise

    @staticmethod
    def _upgrade(conn: sqlite3.Connection, found: str) -> None:
        """Bring a store of an older format to the current one, inside _initialise's
        transaction (a crash leaves the old format whole)."""
        # Both older formats' write_log lacks the images column (CREATE ... IF NOT EXISTS
        # left the old table as it was).
        conn.execute("ALTER TABLE write_log ADD COLUMN images BLOB")
        if found == _FORMAT_2:
            # Every history row has its commit's write_log row: they were written, and
            # pruned, together.
            conn.execute(
                "UPDATE write_log SET images = (SELECT images FROM history"
                " WHERE history.version = write_log.version)"
            )
            conn.execute("DROP TABLE history")
            conn.execute("UPDATE state SET format = ?", (STORE_FORMAT,))
            return
        # Format 1 kept no before-images: versions before now leave the window (1007)
        # rather than read wrong.
        (current, _) = conn.execute(_VERSION_AND_HORIZON).fetchone()
        conn.execute(
            "UPDATE state SET format = ?, version = MAX(version, ?), horizon = MAX(horizon, ?)",
            (STORE_FORMAT, current, current),
        )

    def _check_process(self) -> None:
        """SQLite connections and flock descriptions must not cross fork(): reopen them."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._readers = []
            self._lent = {}
            self._readers_lock = threading.Lock()
            self._commit_lock = threading.Lock()
            self._queue_ready = threading.Condition(threading.Lock())
            self._queue = []
            self._leading = False
            self._delete_on_close = False
            self._writer = self._connect()
            self._lock_fd = self._open_lock_file()
            self._start_checkpointer()  # threads do not cross fork() either

    def _open_lock_file(self) -> int:
        return os.open(str(self.path) + "-lock", os.O_RDWR | os.O_CREAT, 0o600)

    def _acquire_reader(self) -> sqlite3.Connection:
        if self._closed:
            raise FDBError(2000)
        if os.getpid() != self._pid:
            self._check_process()
        try:
            conn = self._readers.pop()  # atomic under the GIL: no lock needed
        except IndexError:
            conn = self._connect()
        self._lent[id(conn)] = conn
        return conn

    def _release_reader(self, conn: sqlite3.Connection) -> None:
        if self._lent.pop(id(conn), None) is not conn:
            return  # released already (or lent before a fork): never pool it twice
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            conn.close()
            return
        if self._closed or len(self._readers) >= 64:
            conn.close()
        else:
            self._readers.append(conn)

    # --- faults ----------------------------------------------------------------------

    def set_fault_injection(self, rate: float, *, seed: int | None = None) -> None:
        """Make a fraction of commits fail with 1020, or with 1021 before or after applying.

        FoundationDB's simulation ("buggify") does the same to prove that retry loops and
        idempotency hold; a rate of 0 turns it off.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be between 0 and 1", rate)
        self._fault_rate = rate
        if seed is not None:
            self._fault_random.seed(seed)

    @property
    def fault_rate(self) -> float:
        return self._fault_rate

    def _draw_fault(self) -> int:
        """0 for none, 1020 (not applied) or 1021 (applied or not, at random)."""
        if not self._fault_rate or self._fault_random.random() >= self._fault_rate:
            return 0
        choice = self._fault_random.random()
        if choice < 0.4:
            return 1020
        return 1021 if choice < 0.7 else -1021

    # --- commit ----------------------------------------------------------------------

    def _apply_commit(self, tr: Transaction) -> int:
        """Check conflicts and apply ``tr``'s writes atomically; return the commit version.

        Group commit: a committer queues its transaction, then waits for the commit lock;
        whoever holds it takes the store's lock, then applies every transaction queued by
        then in one SQLite transaction, each in its own savepoint, in queue order, each with
        its own version and its conflicts checked against every commit before it (those of
        the same batch too), and makes them all durable with one fsync. A transaction
        refused (1020, 1007) is rolled back to its savepoint alone. None is answered before
        the batch is durable.

        Committers queue on a blocking flock first: SQLite's own busy handler polls with
        growing sleeps, which lets one busy process starve another for seconds.

        A committer whose transaction a batch has committed returns as soon as that batch is
        durable: the leader wakes its batch's threads when it is done, instead of each
        waiting for a lock that the next leader may take first and hold through its own
        fsync (the wait is not first come first served).
        """
        self._check_process()
        mine = _Queued(tr)
        ready = self._queue_ready
        with ready:
            self._queue.append(mine)
            lead = not self._leading
            self._leading = True
        if not lead:
            # Another thread is committing: the wait needs no CPU, so the storage turn this
            # thread holds, if any, goes to the next request (fdb_backend/turns.py).
            turns.waiting()
            with ready:
                while not mine.done and self._leading:
                    ready.wait()
                if not mine.done:  # the leader is gone and this one was not in its batch
                    lead = self._leading = True
        if lead:
            try:
                with self._commit_lock:
                    self._apply_batch()
            finally:
                with ready:
                    self._leading = False
                    ready.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.version

    def _apply_batch(self) -> None:
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            turns.waiting()  # another process is committing: wait without the turn
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        # The batch is what is queued once the store is ours: the transactions queued while
        # another process committed join this batch instead of waiting for the next one.
        with self._queue_ready:
            batch, self._queue = self._queue, []
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            if len(batch) == 1:
                batch[0].version = self._apply_locked(conn, batch[0].tr)
            else:
                for queued in batch:
                    conn.execute("SAVEPOINT queued")
                    try:
                        queued.version = self._apply_locked(conn, queued.tr)
                    except FDBError as error:
                        conn.execute("ROLLBACK TO queued")
                        queued.error = error
                    conn.execute("RELEASE queued")
            # The conflict checks and writes above are CPU work, done in the leader's turn;
            # the fsync is a wait.
            turns.waiting()
            conn.execute("COMMIT")
            committed = sum(queued.error is None for queued in batch)
            if committed > 1:  # a commit alone is not counted: an observe is ~10% of it
                metrics.commit_batch.observe(committed)
        except sqlite3.OperationalError as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Locked or busy past the timeout: retryable, as FoundationDB's 1038 is.
            for queued in batch:
                queued.error = FDBError(1038)
                queued.error.__cause__ = error
        except FDBError as error:  # a batch of one refused: nothing was applied
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            batch[0].error = error
        except BaseException as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            # Nothing of the batch was committed: the transaction whose apply failed gets
            # what failed, the others a retryable 1038 (they may run again).
            failed = [q for q in batch if q.version == 0 and q.error is None][:1]
            for queued in batch:
                queued.error = error if queued in failed else FDBError(1038)
            if not isinstance(error, Exception):
                raise  # KeyboardInterrupt and the like stop this thread, as before
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            for queued in batch:
                if queued.error is not None:
                    queued.version = 0
                queued.done = True
        self._commits_since_checkpoint += len(batch)
        if self._commits_since_checkpoint >= CHECKPOINT_AFTER_COMMITS:
            self._commits_since_checkpoint = 0
            self._checkpoint_wanted.set()

    def _apply_locked(self, conn: sqlite3.Connection, tr: Transaction) -> int:
        rv = tr._read_version
        stamp = b""  # the commit's versionstamp, once something needs it
        if tr._read_ranges and rv is not None:
            current, horizon = conn.execute(_VERSION_AND_HORIZON).fetchone()
            stamp = struct.pack(">QH", current + 1, 0)
            if rv < horizon:
                raise FDBError(1007)
            if rv < current:
                begins, ends = _merge_ranges(tr._read_ranges)
                for (blob,) in conn.execute(
                    "SELECT ranges FROM write_log WHERE version > ?", (rv,)
                ).fetchall():
                    for wb, we in _decode_ranges(blob):
                        if _overlaps(begins, ends, wb, we):
                            raise FDBError(1020)
        execute = conn.execute
        # Before-images, key -> its value before this commit (None: absent).
        images: dict[bytes, bytes | None] = {}
        for begin, end in zip(tr._cleared_begins, tr._cleared_ends, strict=True):
            # The cleared ranges are disjoint: each row comes back once.
            for key, value in execute(_CLEAR_RETURNING, (_blob(begin), _blob(end))):
                images[key] = value
        writes = tr._writes
        now_there: dict[bytes, bytes | None] = {}
        if any(kind != _VALUE and kind != _STAMPED for kind, _ in writes.values()):
            # Atomic operations apply to the values there now: read in one statement with
            # every other key's before-image (a key in a range cleared above reads as absent,
            # its image being the one the clear returned).
            fresh = [key for key in writes if key not in images]
            self._read_images(conn, fresh, images)
            now_there = {key: images[key] for key in fresh}
        upserts: list[bytearray] = []  # key, value, key, value, ...
        deletes: list[bytearray] = []
        unread: list[bytes] = []  # keys whose value before is still to read
        for key, (kind, data) in writes.items():
            if kind == _VALUE:
                value = data
            elif kind == _STAMPED:
                stamp = stamp or self._next_stamp(conn)
                value = _stamp(data, stamp)
            else:
                value = _apply_ops(now_there.get(key), data)
            if key not in images:
                unread.append(key)
            if value is None:
                deletes.append(_blob(key))
            else:
                upserts += (_blob(key), _blob(value))
        stamped = []
        for key, value in tr._stamped_keys:
            stamp = stamp or self._next_stamp(conn)
            real_key = _stamp(key, stamp)
            stamped.append(real_key)
            upserts += (_blob(real_key), _blob(value))
            if real_key not in images:
                unread.append(real_key)
        now = clock.wall()
        ranges = _encode_ranges(tr._write_ranges(stamped))
        # The row goes first, while kv still holds the values before.
        if len(unread) == 1:
            (key,) = unread
            known = _encode_images(images.items())
            header = _IMAGE_HEADER.pack
            cursor = execute(
                _LOG_READING_ONE,
                (
                    now,
                    _blob(ranges),
                    _blob(known + header(len(key), _TO_THE_END) + key),
                    _blob(key),
                    _blob(known + header(len(key), _ABSENT) + key),
                ),
            )
        else:
            if unread:
                self._read_images(conn, list(dict.fromkeys(unread)), images)
            encoded = _blob(_encode_images(images.items())) if images else None
            cursor = execute(_LOG, (now, _blob(ranges), encoded))
        # An INSERT's cursor always has the row's id (the version: INTEGER PRIMARY KEY).
        version = cast(int, cursor.lastrowid)
        for start in range(0, len(deletes), _ROWS_PER_WRITE):
            chunk = deletes[start : start + _ROWS_PER_WRITE]
            execute(_deletes_of(len(chunk)), chunk)
        for start in range(0, len(upserts), 2 * _ROWS_PER_WRITE):
            chunk = upserts[start : start + 2 * _ROWS_PER_WRITE]
            execute(_upserts_of(len(chunk) // 2), chunk)
        self._commits_since_trim += 1
        if self._commits_since_trim >= TRIM_EVERY_COMMITS or now - self._trimmed_at >= TRIM_EVERY_S:
            self._commits_since_trim = 0
            self._trimmed_at = now
            self._trim_write_log(conn, now, version)
        return version

    @staticmethod
    def _next_stamp(conn: sqlite3.Connection) -> bytes:
        current, _ = conn.execute(_VERSION_AND_HORIZON).fetchone()
        return struct.pack(">QH", current + 1, 0)

    @staticmethod
    def _read_images(
        conn: sqlite3.Connection, keys: list[bytes], images: dict[bytes, bytes | None]
    ) -> None:
        """Add the current value (None: absent) of each of ``keys`` to ``images``."""
        if len(keys) == 1:
            row = conn.execute(_VALUE_OF, (_blob(keys[0]),)).fetchone()
            images[keys[0]] = row[0] if row is not None else None
            return
        for key in keys:
            images[key] = None  # the rows found replace it
        for start in range(0, len(keys), _VALUES_PER_STATEMENT):
            chunk = [_blob(key) for key in keys[start : start + _VALUES_PER_STATEMENT]]
            images.update(conn.execute(_values_of(len(chunk)), chunk))

    def _trim_write_log(self, conn: sqlite3.Connection, now: float, version: int) -> None:
        """Forget commits that left the window: their write ranges and replaced values.

        A read version V stays readable while the commit after it is younger than the
        window, so it only needs history and conflict entries of versions > V. The entries
        forgotten are those before the oldest one still inside the retention (the window
        plus slack): a prefix of the log, read from its start, so a trim reads the rows it
        deletes rather than the whole log under the store's lock. Stopping at the first
        young entry also keeps what a wall clock stepped back would otherwise lose: an
        entry stamped before the retention after a younger one does not take the younger
        one's history with it.
        """
        # The commit trimming has written its own row: the log is not empty.
        first_young, oldest = conn.execute(
            _FIRST_YOUNG_AND_OLDEST, (now - WRITE_LOG_RETENTION_S,)
        ).fetchone()
        # The newest entry is kept, so the log's maximum is still the store's version.
        cut = min(first_young, version) - 1
        if oldest <= cut:
            conn.execute("DELETE FROM write_log WHERE version <= ?", (cut,))
            conn.execute(
                "UPDATE state SET horizon = MAX(horizon, ?), version = MAX(version, ?)",
                (cut, version),
            )

    # --- the official binding's Database conveniences --------------------------------

    def create_transaction(self) -> Transaction:
        if self._closed:
            raise FDBError(2000)
        return Transaction(self)

    def close(self) -> None:
        """Close every connection; a memory store's file goes too."""
        if self._closed:
            return
        self._closed = True
        if os.getpid() == self._pid:
            self._stop_checkpointer()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()
        with self._commit_lock:
            self._writer.close()
            os.close(self._lock_fd)
        if self._delete_on_close and os.getpid() == self._pid:
            for suffix in ("", "-wal", "-shm", "-lock"):
                Path(str(self.path) + suffix).unlink(missing_ok=True)

    def __repr__(self) -> str:
        return f"<embedded Database {self.path}>"


class _Queued:
    """A transaction waiting for a batch to commit it (Database._apply_commit)."""

    __slots__ = ("done", "error", "tr", "version")

    def __init__(self, tr: Transaction) -> None:
        self.tr = tr
        self.version = 0
        self.error: BaseException | None = None
        self.done = False


def _refuse_foreign_file(path: Path) -> None:
    """Never take over a file that is not a store: open_database must not overwrite it."""
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return
    except IsADirectoryError:
        raise ValueError("store path is a directory", str(path)) from None
    if head and head != SQLITE_MAGIC:
        raise ValueError("not a coditect store", str(path))


def open_embedded(path: str, *, fault_rate: float = 0.0) -> Database:
    return Database(Path(path), fault_rate=fault_rate)


def open_memory(*, fault_rate: float = 0.0) -> Database:
    """A private, non-durable store: same engine, a temporary file, gone on close."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None  # noqa: S108 - private temp file
    fd, name = tempfile.mkstemp(prefix="coditect-memory-", suffix=".sqlite3", dir=base)
    os.close(fd)
    os.unlink(name)
    return Database(Path(name), durable=False, fault_rate=fault_rate, delete_on_close=True)
