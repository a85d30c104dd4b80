"""The storage layer's metrics: transaction latency, conflicts and retries (docs/operations.md).

prometheus_client directly, since fdb_backend imports nothing of the project's; the other
families are in core/metrics.py. Under ``PROMETHEUS_MULTIPROC_DIR`` each process writes its
values to files there and ``/metrics`` sums them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# From a commit of a few keys in memory (tens of microseconds) to a retried cluster
# transaction (hundreds of milliseconds).
_LATENCY_BUCKETS = (
    *(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
    *(0.25, 0.5, 1.0, 2.5, 5.0),
)

transaction_seconds = Histogram(
    "coditect_storage_transaction_seconds",
    "Time of a @transactional call from its first attempt to its commit, retries included.",
    buckets=_LATENCY_BUCKETS,
)
conflicts = Counter(
    "coditect_storage_conflicts",
    "Transaction attempts refused by a conflict (FoundationDB error 1020).",
)
retries = Counter(
    "coditect_storage_retries",
    "Transaction attempts retried after a retryable error, by FoundationDB error code.",
    ["code"],
)
commit_batch = Histogram(
    "coditect_storage_commit_batch",
    "Batches of two or more transactions the embedded engine committed together with one "
    "fsync (group commit), by size; a commit alone is not counted.",
    buckets=(2, 3, 4, 6, 8, 12, 16, 32),
)


def retried(code: int) -> None:
    retries.labels(str(code)).inc()
    if code == 1020:
        conflicts.inc()
