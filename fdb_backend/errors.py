"""FoundationDB's error type and codes, shared by every engine.

The numbers and descriptions are FoundationDB's own (``fdb_get_error``), so code that
branches on ``err.code`` behaves the same against the embedded engine and a cluster.
"""

from __future__ import annotations

DESCRIPTIONS: dict[int, str] = {
    1007: "Transaction is too old to perform reads or be committed",
    1009: "Request for future version",
    1020: "Transaction not committed due to conflict with another transaction",
    1021: "Transaction may or may not have committed",
    1025: "Operation aborted because the transaction was cancelled",
    1031: "Operation aborted because the transaction timed out",
    1036: "Read or wrote an unreadable key",
    1037: "Storage process does not have recent mutations",
    1038: "Database is locked",
    2000: "Invalid API call",
    2004: "Key outside legal range",
    2005: "Range begin key larger than end key",
    2006: "Invalid database name",
    2017: "Operation issued while a commit was outstanding",
    2021: "Transaction is read-only and therefore does not have a commit version",
    2101: "Transaction exceeds byte limit",
    2102: "Key length exceeds limit",
    2103: "Value length exceeds limit",
    2210: "EXACT streaming mode requires limits, but none were given",
    4100: "An unknown error occurred",
}

# FoundationDB's onError retries exactly these (fdbclient NativeAPI onError).
RETRYABLE: frozenset[int] = frozenset({1007, 1009, 1020, 1021, 1037, 1038})
# Errors after which the transaction may or may not have been applied.
MAYBE_COMMITTED: frozenset[int] = frozenset({1021})


class FDBError(Exception):
    """An error with FoundationDB's numeric ``code`` and its standard description."""

    injected = False  # set on errors made by fault injection, never on real ones

    def __init__(self, code: int) -> None:
        self.code = code
        self.description = DESCRIPTIONS.get(code, "Unknown error")
        super().__init__(code)

    def __str__(self) -> str:
        return f"{self.description} ({self.code})"

    def __repr__(self) -> str:
        return f"FDBError({self.code})"

    def __reduce__(self) -> tuple[type[FDBError], tuple[int]]:
        return (FDBError, (self.code,))


class predicates:
    """The official binding's ``fdb.predicates``: classify an error by its code."""

    @staticmethod
    def retryable(error: BaseException) -> bool:
        return isinstance(error, FDBError) and error.code in RETRYABLE

    @staticmethod
    def maybe_committed(error: BaseException) -> bool:
        return isinstance(error, FDBError) and error.code in MAYBE_COMMITTED

    @staticmethod
    def retryable_not_committed(error: BaseException) -> bool:
        return (
            isinstance(error, FDBError)
            and error.code in RETRYABLE
            and error.code not in MAYBE_COMMITTED
        )
