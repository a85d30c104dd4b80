"""Code that runs in child processes of the conformance suite (spawned, so importable)."""

from __future__ import annotations

import os
import struct
import sys
import threading
import uuid
from typing import Any

import fdb_backend


def _counter_increment(db: Any, counter: bytes, marker_space: bytes) -> None:
    """Increment once, idempotently: the marker makes a retried 1021 commit a no-op."""
    token = uuid.uuid4().bytes  # made outside the retried function, as it must be

    @fdb_backend.transactional
    def increment(tr: Any) -> None:
        marker = marker_space + token
        if tr[marker] is not None:
            return
        current = tr[counter]
        value = struct.unpack("<q", current)[0] if current is not None else 0
        tr[counter] = struct.pack("<q", value + 1)
        tr[marker] = b""

    increment(db)


def hammer_counter(
    url: str, counter: bytes, marker_space: bytes, times: int, faults: float
) -> None:
    db = fdb_backend.open_database(url)
    if faults:
        db.set_fault_injection(faults, seed=os.getpid())
    for _ in range(times):
        _counter_increment(db, counter, marker_space)
    db.close()


def commit_batches(url: str, prefix: bytes, report_path: str, keys_per_batch: int) -> None:
    """Commit big batches forever; append each batch id to the report once commit returns.

    The parent kills this process at random moments, many of them inside a commit.
    """
    commit_batches_in_threads(url, prefix, report_path, keys_per_batch, threads=1)


def commit_batches_in_threads(
    url: str, prefix: bytes, report_path: str, keys_per_batch: int, threads: int
) -> None:
    """commit_batches from ``threads`` threads of one process at once, so the engine's group
    commit makes several of them durable together; batch ids are thread * 10**6 + n."""
    db = fdb_backend.open_database(url)
    value = b"v" * 900
    lock = threading.Lock()

    with open(report_path, "a", buffering=1) as report:

        def run(thread: int) -> None:
            batch = thread * 10**6
            while True:
                batch += 1
                tr = db.create_transaction()
                head = prefix + struct.pack(">Q", os.getpid()) + struct.pack(">I", batch)
                for i in range(keys_per_batch):
                    tr[head + struct.pack(">I", i)] = value
                tr.commit().wait()
                with lock:
                    report.write(f"{os.getpid()} {batch}\n")
                    report.flush()
                    os.fsync(report.fileno())

        workers = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()


if __name__ == "__main__":  # pragma: no cover - used by hand when debugging a worker
    commit_batches(sys.argv[1], sys.argv[2].encode(), sys.argv[3], int(sys.argv[4]))
