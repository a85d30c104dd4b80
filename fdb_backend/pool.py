"""The process's storage pool: the threads that run storage-bound work under ASGI.

Lean REST views (coditect/lean.py), the WebSocket consumers' service calls and the realtime
watch all run their storage calls here, so that they take turns rather than hand the GIL back
and forth: the embedded engine's reads are CPU work in this process that releases the GIL at
every SQLite step, so a second thread adds a hand-off per step, not CPU (one daphne process
served 27% fewer session lists per second with six threads than with one,
docs/benchmarks.md). The cluster engine's reads wait on the network, which threads overlap.

``CODITECT_API_THREADS`` is how many of them compute at once (turns, fdb_backend/turns.py);
0 (the default) picks the engine's own default. The pool has ``WAITING_THREADS`` threads more,
for commits that wait on the disk with their turn given back.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar
from urllib.parse import urlsplit

from asgiref.sync import sync_to_async

from fdb_backend.turns import Turns

T = TypeVar("T")
P = ParamSpec("P")

EMBEDDED_THREADS = 1
CLUSTER_THREADS = 8
# Pool threads beyond the turns: requests whose commits wait on the disk (or on other
# processes' commits) without a turn, while the next one computes.
WAITING_THREADS = 3


def api_threads() -> int:
    """Threads of the pool: ``CODITECT_API_THREADS``, or the storage engine's default."""
    from django.conf import settings  # the storage layer itself never needs Django

    configured: int = settings.CODITECT_API_THREADS
    if configured:
        return configured
    scheme = urlsplit(settings.CODITECT_STORAGE_URL).scheme.lower()
    return CLUSTER_THREADS if scheme == "fdb" else EMBEDDED_THREADS


def made_once(make: Callable[[], T]) -> Callable[[], T]:
    """``make()`` on first use, once (settings are read then, not at import)."""
    lock = threading.Lock()
    made: list[T] = []

    def get() -> T:
        if not made:
            with lock:
                if not made:
                    made.append(make())
        return made[0]

    return get


storage_turns = made_once(lambda: Turns(api_threads()))
storage_executor = made_once(
    lambda: ThreadPoolExecutor(api_threads() + WAITING_THREADS, thread_name_prefix="api")
)


def in_turn(fn: Callable[P, T]) -> Callable[P, T]:
    """``fn`` run holding one of the process's storage turns."""

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with storage_turns().turn():
            return fn(*args, **kwargs)

    return run


def in_pool(fn: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``fn`` as a coroutine function that runs in the storage pool, in a turn (no
    thread-sensitive context: storage is thread-safe and these calls never touch the ORM)."""
    pooled: Any = _pooled(fn)
    return pooled


@functools.lru_cache(maxsize=256)
def _pooled(fn: Callable[..., Any]) -> Any:
    # Made once per function (callers pass module-level services), not per socket message.
    return sync_to_async(in_turn(fn), thread_sensitive=False, executor=storage_executor())
