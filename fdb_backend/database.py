"""Opening a database from a storage URL, and the process-wide database of the settings."""

from __future__ import annotations

import os
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ACCEPTED = "embedded:///abs/path, memory:, fdb: or fdb:///path/to/fdb.cluster"

_lock = threading.Lock()
_database: Any = None
_database_url: str | None = None


def _fault_rate(query: str) -> float:
    values = parse_qs(query).get("faults")
    if not values:
        return 0.0
    try:
        rate = float(values[-1])
    except ValueError:
        raise ValueError("storage URL 'faults' must be a number from 0 to 1", values[-1]) from None
    if not 0.0 <= rate <= 1.0:
        raise ValueError("storage URL 'faults' must be a number from 0 to 1", rate)
    return rate


def open_database(url: str) -> Any:
    """Open the store that ``url`` names.

    ``embedded:///abs/path/store.sqlite3`` (durable, shared by processes), ``memory:``
    (private to this process, gone on close), ``fdb:`` (cluster file from
    ``FDB_CLUSTER_FILE`` or the default location) or ``fdb:///path/to/fdb.cluster``.
    Embedded and memory URLs take ``?faults=0.05`` to inject commit failures.
    Raises ValueError for an unknown scheme or a file that is not a store.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("storage URL is empty; accepted: " + ACCEPTED)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "memory":
        from fdb_backend.engines.embedded import open_memory

        return open_memory(fault_rate=_fault_rate(parts.query))
    if scheme == "embedded":
        path = unquote(parts.path)
        if parts.netloc or not path.startswith("/"):
            raise ValueError("embedded storage URL needs an absolute path: embedded:///abs/path")
        from fdb_backend.engines.embedded import open_embedded

        return open_embedded(path, fault_rate=_fault_rate(parts.query))
    if scheme == "fdb":
        from fdb_backend.engines.cluster import open_cluster

        cluster_file = unquote(parts.path) or os.environ.get("FDB_CLUSTER_FILE") or None
        return open_cluster(cluster_file)
    raise ValueError("unknown storage URL scheme; accepted: " + ACCEPTED, parts.scheme)


def get_database() -> Any:
    """The process-wide database named by ``settings.CODITECT_STORAGE_URL``."""
    global _database, _database_url
    from django.conf import settings

    url = settings.CODITECT_STORAGE_URL
    db = _database
    if db is not None and _database_url == url:
        return db
    with _lock:
        if _database is None or _database_url != url:
            if _database is not None:
                _database.close()
            _database = open_database(url)
            _database_url = url
        return _database


def reset_database() -> None:
    """Close the process-wide database (tests switch stores between cases)."""
    global _database, _database_url
    with _lock:
        if _database is not None:
            _database.close()
        _database = None
        _database_url = None
