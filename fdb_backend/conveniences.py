"""The official binding's ``Database`` conveniences, for both engines' databases.

``db.get(key)``, ``db[key] = value``, ``db.clear_range(...)`` and the rest each run one
operation in a transaction of its own, committed and retried on retryable errors, as the
binding's ``@fdb.transactional`` would: application code and tests written for ``fdb`` run
unchanged on either engine.
"""

from __future__ import annotations

from typing import Any

from fdb_backend.errors import FDBError
from fdb_backend.selectors import KeySelector, KeyValue


class DatabaseConveniences:
    """Mixed into a database class, which provides ``create_transaction()``."""

    def create_transaction(self) -> Any:
        raise NotImplementedError

    def _run(self, fn: Any) -> Any:
        tr = self.create_transaction()
        while True:
            try:
                result = fn(tr)
                tr.commit().wait()
                return result
            except FDBError as error:
                tr.on_error(error).wait()

    def get(self, key: bytes) -> bytes | None:
        result: bytes | None = self._run(lambda tr: tr.get(key))
        return result

    def __getitem__(self, key: bytes | slice) -> Any:
        return self._run(lambda tr: tr[key])

    def set(self, key: bytes, value: bytes) -> None:
        self._run(lambda tr: tr.set(key, value))

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self.set(key, value)

    def clear(self, key: bytes) -> None:
        self._run(lambda tr: tr.clear(key))

    def __delitem__(self, key: bytes | slice) -> None:
        self._run(lambda tr: tr.__delitem__(key))

    def clear_range(self, begin: bytes, end: bytes) -> None:
        self._run(lambda tr: tr.clear_range(begin, end))

    def get_range(
        self, begin: bytes | KeySelector, end: bytes | KeySelector, limit: int = 0,
        reverse: bool = False,
    ) -> list[KeyValue]:  # fmt: skip
        result: list[KeyValue] = self._run(lambda tr: tr.get_range(begin, end, limit, reverse))
        return result
