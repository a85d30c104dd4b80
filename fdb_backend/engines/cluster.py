"""The cluster engine: a FoundationDB cluster through the official ``fdb`` binding.

As thin as the application's API allows: single reads are waited on at once and return
``bytes | None`` / lists of ``KeyValue`` like the embedded engine, and the binding's
``FDBError`` becomes ``fdb_backend.FDBError`` with the same code. Everything else (conflict
detection, limits, versionstamps) is the cluster's own.

Every helper the embedded engine offers beyond the binding has its path here: the batched
``get_ranges`` issues all of its reads as futures before waiting on the first (what a
FoundationDB client does to overlap round trips), the database-level ``get``/``set``/...
run in a retried transaction as the binding's do, and fault injection is refused. The
binding is passed in (``ClusterDatabase(..., binding=...)``) so tests can run this code
over a double of the official API where no cluster and no C client exist
(tests/fdb_backend/fake_fdb.py).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from fdb_backend.conveniences import DatabaseConveniences
from fdb_backend.errors import FDBError
from fdb_backend.limits import KEY_SIZE_LIMIT, SYSTEM_KEYS_BEGIN
from fdb_backend.selectors import KeySelector, KeyValue, StreamingMode

API_VERSION = int(os.environ.get("FDB_API_VERSION", "730"))
T = TypeVar("T")


class ClientLibraryMissing(RuntimeError):
    """The ``fdb`` binding or the C client library it loads (libfdb_c) is not installed."""


INSTALL_HINT = (
    "install the FoundationDB client package (foundationdb-clients 7.3 .deb/.rpm from "
    "https://github.com/apple/foundationdb/releases; the Dockerfile does) or use "
    "CODITECT_STORAGE_URL=embedded:///path/to/store.sqlite3"
)


def _binding() -> Any:
    # Without the library the binding raises a bare Exception (or OSError for a broken one)
    # deep in ctypes; the operator gets one line naming what is missing instead.
    try:
        import fdb
    except ImportError:
        raise ClientLibraryMissing(
            "CODITECT_STORAGE_URL is fdb: but the foundationdb Python package is not "
            "installed; " + INSTALL_HINT
        ) from None
    try:
        fdb.api_version(API_VERSION)
    except Exception as error:
        if not isinstance(error, OSError) and "shared library" not in str(error):
            raise
        raise ClientLibraryMissing(
            "CODITECT_STORAGE_URL is fdb: but the FoundationDB client library (libfdb_c) "
            "could not be loaded; " + INSTALL_HINT
        ) from None
    return fdb


def _translated(fn: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except Exception as error:
            code = getattr(error, "code", None)
            if isinstance(code, int) and type(error).__name__ == "FDBError":
                raise FDBError(code) from error
            raise

    return wrapper


def _selector(fdb: Any, key: Any) -> Any:
    if isinstance(key, KeySelector):
        return fdb.KeySelector(key.key, key.or_equal, key.offset)
    return key


class _Future:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    @_translated
    def wait(self) -> Any:
        return self._inner.wait()

    def is_ready(self) -> bool:
        return bool(self._inner.is_ready())

    @_translated
    def block_until_ready(self) -> None:
        self._inner.block_until_ready()


class _Reads:
    def __init__(self, fdb: Any, inner: Any) -> None:
        self._fdb = fdb
        self._inner = inner

    @_translated
    def get(self, key: bytes) -> bytes | None:
        # The binding's wait() hands back its Value future itself, an absent key included
        # (present() is False, the object is not None): the engines' contract is bytes or None.
        value = self._inner.get(key).wait()
        return bytes(value) if value.present() else None

    def __getitem__(self, key: bytes | slice) -> Any:
        if isinstance(key, slice):
            return self.get_range(key.start or b"", key.stop or b"\xff")
        return self.get(key)

    @_translated
    def get_range(
        self,
        begin: bytes | KeySelector,
        end: bytes | KeySelector,
        limit: int = 0,
        reverse: bool = False,
        streaming_mode: int = StreamingMode.iterator,
    ) -> list[KeyValue]:
        rows = self._inner.get_range(
            _selector(self._fdb, begin),
            _selector(self._fdb, end),
            limit=limit,
            reverse=reverse,
            streaming_mode=streaming_mode,
        )
        return [KeyValue(kv.key, kv.value) for kv in rows]

    def get_range_startswith(
        self, prefix: bytes, limit: int = 0, reverse: bool = False
    ) -> list[KeyValue]:
        return self.get_range(prefix, self._fdb.strinc(prefix), limit, reverse)

    @_translated
    def get_ranges(
        self, ranges: Sequence[tuple[bytes, bytes]], limit: int = 0
    ) -> list[list[KeyValue]]:
        """``[tr.get_range(b, e, limit) for b, e in ranges]``, the reads issued together.

        The binding's ``get_range`` sends its first request when called and returns a lazy
        ``FDBRange``; every range is started before the first is waited on, so the round
        trips overlap (one wait, not one per range). Conflict ranges are the separate reads'.
        A batch with a range a single read refuses is read one range after the other, as
        separate reads stop at the refused one (no later range read, no read version taken
        for it): the embedded engine's ``get_ranges`` does the same.
        """
        if not all(_plainly_readable(b, e) for b, e in ranges):
            return [self.get_range(b, e, limit, False, StreamingMode.want_all) for b, e in ranges]
        pending = [
            self._inner.get_range(
                _selector(self._fdb, b),
                _selector(self._fdb, e),
                limit=limit,
                streaming_mode=StreamingMode.want_all,
            )
            for b, e in ranges
        ]
        return [[KeyValue(kv.key, kv.value) for kv in rows.to_list()] for rows in pending]

    @_translated
    def get_key(self, selector: KeySelector) -> bytes:
        return bytes(self._inner.get_key(_selector(self._fdb, selector)).wait())

    def get_read_version(self) -> _Future:
        return _Future(self._inner.get_read_version())


def _plainly_readable(begin: Any, end: Any) -> bool:
    """A range of plain keys that no check refuses (selectors resolve in the cluster)."""
    return (
        type(begin) is bytes
        and type(end) is bytes
        and begin <= end <= SYSTEM_KEYS_BEGIN
        and len(begin) <= KEY_SIZE_LIMIT
        and len(end) <= KEY_SIZE_LIMIT
    )


class ClusterTransaction(_Reads):
    def __init__(self, fdb: Any, inner: Any) -> None:
        super().__init__(fdb, inner)
        self.options = inner.options
        self.snapshot = _Reads(fdb, inner.snapshot)
        self.db: Any = None

    def __getattr__(self, name: str) -> Any:
        # Writes, atomic ops and conflict ranges need no translation of their results.
        attr = getattr(self._inner, name)
        return _translated(attr) if callable(attr) else attr

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.set(key, value)

    def __delitem__(self, key: bytes | slice) -> None:
        if isinstance(key, slice):
            self.clear_range(key.start or b"", key.stop or b"\xff")
        else:
            self.clear(key)

    def commit(self) -> _Future:
        return _Future(self._inner.commit())

    def on_error(self, error: FDBError | int) -> _Future:
        code = error.code if isinstance(error, FDBError) else int(error)
        return _Future(self._inner.on_error(code))

    def get_versionstamp(self) -> _Future:
        return _Future(self._inner.get_versionstamp())


class ClusterDatabase(DatabaseConveniences):
    def __init__(self, cluster_file: str | None, *, binding: Any = None) -> None:
        self._fdb = binding if binding is not None else _binding()
        self._inner = self._fdb.open(cluster_file) if cluster_file else self._fdb.open()
        self.options = self._inner.options
        self.cluster_file = cluster_file

    def create_transaction(self) -> ClusterTransaction:
        tr = ClusterTransaction(self._fdb, self._inner.create_transaction())
        tr.db = self
        return tr

    def set_fault_injection(self, rate: float, *, seed: int | None = None) -> None:
        # A real cluster is tested for faults by FoundationDB's own simulation.
        if rate:
            raise ValueError("fault injection is an embedded-engine feature")

    @property
    def fault_rate(self) -> float:
        return 0.0

    def close(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"<FoundationDB Database {self.cluster_file or 'default cluster file'}>"


def open_cluster(cluster_file: str | None, *, binding: Any = None) -> ClusterDatabase:
    return ClusterDatabase(cluster_file, binding=binding)
