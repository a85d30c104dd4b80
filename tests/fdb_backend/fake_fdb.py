"""A test double of the official ``fdb`` binding, for the cluster adapter where no cluster is.

It offers the subset of the binding's API that ``fdb_backend.engines.cluster`` uses, with the
binding's shapes: ``fdb.open()``, ``fdb.KeySelector``, ``fdb.strinc``, an ``FDBError`` class of
its own (the adapter must translate it), transactions whose ``get``/``get_key``/
``get_read_version``/``commit``/``on_error``/``get_versionstamp`` return futures with
``.wait()``, and ``get_range`` returning a lazy range with ``to_list()`` whose request is sent
when it is made (as the binding's ``FDBRange`` sends its first request in ``__init__``).

The data and the semantics come from an embedded engine underneath, so conflicts, limits and
error codes are real ones; what the double adds is the binding's API and a log of when each
read is *issued* and when it is *waited on*, so a test can prove that the adapter starts every
read of a batch before it waits on the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fdb_backend
from fdb_backend import KeySelector as OurSelector


class FDBError(Exception):
    """The binding's error: a different class from ``fdb_backend.FDBError``, same name."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class KeySelector:
    """The binding's ``fdb.KeySelector(key, or_equal, offset)``."""

    def __init__(self, key: bytes, or_equal: bool, offset: int) -> None:
        self.key = key
        self.or_equal = or_equal
        self.offset = offset


class KeyValue:
    """The binding's ``fdb.KeyValue``: attributes, and iterable as ``(key, value)``."""

    def __init__(self, key: bytes, value: bytes) -> None:
        self.key = key
        self.value = value

    def __iter__(self) -> Iterator[bytes]:
        return iter((self.key, self.value))


def strinc(key: bytes) -> bytes:
    stripped = key.rstrip(b"\xff")
    if not stripped:
        raise ValueError("Key must contain at least one byte not equal to 0xFF.")
    return stripped[:-1] + bytes([stripped[-1] + 1])


def _ours(key: Any) -> Any:
    if isinstance(key, KeySelector):
        return OurSelector(key.key, key.or_equal, key.offset)
    return key


def _call(fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run ``fn`` against the engine underneath; its errors become the binding's."""
    try:
        return fn(), None
    except fdb_backend.FDBError as error:
        return None, FDBError(error.code)


class Log:
    """``("issue", label)`` and ``("wait", label)`` events, in the order they happened."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self._count = 0

    def label(self, kind: str) -> str:
        self._count += 1
        return f"{kind}#{self._count}"


class Value:
    """What the binding's ``Value`` future's ``wait()`` hands back: the future itself, for
    an absent key too (``present()`` False), bytes-like when present."""

    def __init__(self, value: bytes | None) -> None:
        self.value = value

    def present(self) -> bool:
        return self.value is not None

    def __bytes__(self) -> bytes:
        if self.value is None:
            raise TypeError("an absent value has no bytes")
        return self.value


class Future:
    """A binding future. A read's result is computed when it is issued (the snapshot it
    reads is the one current at that moment); ``wait`` hands it over or raises."""

    def __init__(self, log: Log, label: str, fn: Callable[[], Any], *, lazy: bool = False):
        self._log = log
        self._label = label
        self._fn = fn
        self._done = not lazy
        if not lazy:
            self._value, self._error = _call(fn)
        log.events.append(("issue", label))

    def wait(self) -> Any:
        self._log.events.append(("wait", self._label))
        if not self._done:  # e.g. a versionstamp, known only once committed
            self._value, self._error = _call(self._fn)
        if self._error is not None:
            raise self._error
        return self._value

    def is_ready(self) -> bool:
        return self._done

    def block_until_ready(self) -> None:
        return None


class FDBRange:
    """The binding's lazy range: the request goes out when it is made, rows on iteration."""

    def __init__(self, log: Log, fn: Callable[[], Any]) -> None:
        self._future = Future(log, log.label("range"), fn)

    def __iter__(self) -> Iterator[KeyValue]:
        for kv in self._future.wait():
            yield KeyValue(kv.key, kv.value)

    def to_list(self) -> list[KeyValue]:
        return list(self)


class _Reads:
    def __init__(self, log: Log, reads: Any) -> None:
        self._log = log
        self._reads = reads

    def get(self, key: bytes) -> Future:
        return Future(self._log, self._log.label("get"), lambda: Value(self._reads.get(key)))

    def get_key(self, selector: KeySelector) -> Future:
        return Future(
            self._log, self._log.label("get_key"), lambda: self._reads.get_key(_ours(selector))
        )

    def get_range(
        self,
        begin: Any,
        end: Any,
        limit: int = 0,
        reverse: bool = False,
        streaming_mode: int = -1,
    ) -> FDBRange:
        begin = b"" if begin is None else begin
        end = b"\xff" if end is None else end
        return FDBRange(
            self._log,
            lambda: self._reads.get_range(_ours(begin), _ours(end), limit, reverse, streaming_mode),
        )

    def get_read_version(self) -> Future:
        return Future(
            self._log, self._log.label("version"), lambda: self._reads.get_read_version().wait()
        )


class Transaction(_Reads):
    def __init__(self, log: Log, tr: Any) -> None:
        super().__init__(log, tr)
        self._tr = tr
        self.options = tr.options
        self.snapshot = _Reads(log, tr.snapshot)

    def __getattr__(self, name: str) -> Any:
        # Writes, atomic ops, conflict ranges, reset...: no future, errors as the binding's.
        attr = getattr(self._tr, name)

        def call(*args: Any) -> Any:
            value, error = _call(lambda: attr(*args))
            if error is not None:
                raise error
            return value

        return call

    def commit(self) -> Future:
        return Future(self._log, self._log.label("commit"), lambda: self._tr.commit().wait())

    def on_error(self, code: int) -> Future:
        return Future(
            self._log, self._log.label("on_error"), lambda: self._tr.on_error(code).wait()
        )

    def get_versionstamp(self) -> Future:
        versionstamp = self._tr.get_versionstamp()
        return Future(self._log, self._log.label("versionstamp"), versionstamp.wait, lazy=True)


class Database:
    def __init__(self, log: Log, db: Any) -> None:
        self._log = log
        self._db = db
        self.options = db.options

    def create_transaction(self) -> Transaction:
        return Transaction(self._log, self._db.create_transaction())


class Binding:
    """What ``import fdb; fdb.api_version(730)`` gives the adapter, over ``db``."""

    FDBError = FDBError
    KeySelector = KeySelector
    KeyValue = KeyValue
    strinc = staticmethod(strinc)

    def __init__(self, db: Any) -> None:
        self.db = db
        self.log = Log()
        self.opened: list[str | None] = []

    def open(self, cluster_file: str | None = None) -> Database:
        self.opened.append(cluster_file)
        return Database(self.log, self.db)


def open_adapter(db: Any, cluster_file: str = "/etc/foundationdb/fdb.cluster") -> Any:
    """The cluster engine over the double, the double over ``db``."""
    from fdb_backend.engines.cluster import open_cluster

    return open_cluster(cluster_file, binding=Binding(db))
