"""Turns at the process's storage CPU, given back while a commit waits for the disk.

The embedded engine's reads are CPU work in this process that releases the GIL at every
SQLite step, so two threads reading at once add a GIL hand-off per step, not CPU: storage work
takes turns (``CODITECT_API_THREADS`` of them at once, fdb_backend/pool.py). A durable commit
is different: most of its time is spent waiting, for the other committers (threads and
processes queue on the store's lock) and for its fsync, with the GIL released. A thread that
holds a turn gives it back for that wait (``waiting()``, called by the engine), so the next
request computes meanwhile instead of the process idling, and goes on without one: what is left
after a commit (rendering its answer) is little CPU. It never waits to take a turn again,
because a caller may hold its own lock across a commit (the rate limiter holds a bucket's lock
around a lease) while the thread that took the turn waits for that lock: waiting for the turn
there deadlocked. Threads that hold no turn (tests, commands, the storage layer used on its
own) are not affected.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_held = threading.local()


class Turns:
    """At most ``count`` threads at once inside ``turn()``."""

    def __init__(self, count: int) -> None:
        # A plain lock for one turn: acquired in C, where threading's semaphores wake their
        # waiters through a Python Condition.
        self._lock: Any = threading.Lock() if count == 1 else threading.BoundedSemaphore(count)

    @contextmanager
    def turn(self) -> Iterator[None]:
        self._lock.acquire()
        _held.turns = self
        try:
            yield
        finally:
            if _held.turns is self:  # not given back by a commit meanwhile
                self.give_back()

    def give_back(self) -> None:
        _held.turns = None
        self._lock.release()


def waiting() -> None:
    """Before a wait that needs no CPU: the calling thread's turn, if it holds one, is given
    back; the thread goes on without one."""
    turns: Turns | None = getattr(_held, "turns", None)
    if turns is not None:
        turns.give_back()
