"""Turns at the process's storage CPU, given back while a commit waits for the disk.

The embedded engine's reads are CPU work in this process that releases the GIL at every
SQLite step, so two threads reading at once add a GIL hand-off per step, not CPU: storage work
takes turns (``CODITECT_API_THREADS`` of them at once, fdb_backend/pool.py). A durable commit
is different: most of its time is spent waiting, for the other committers (threads and
processes queue on the store's lock) and for its fsync, with the GIL released. A thread that
holds a turn gives it back for that wait (``waiting()``, called by the engine), so the next
request computes meanwhile instead of the process idling, and goes on without one: what is left
after a commit (rendering its answer) is little CPU. It never waits to take a turn again,
because a caller may hold its own lock across a commit while the thread that took the turn
waits for that lock: waiting for the turn there deadlocked (the rate limiter held a bucket's
lock around its lease when it did; it no longer does, but no caller has to know). Threads that
hold no turn (tests, commands, the storage layer used on its own) are not affected.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_held = threading.local()


class Turns:
    """At most ``count`` threads at once inside ``turn()``, first come first served.

    FIFO matters: a plain lock lets a thread that just gave its turn back, or a newcomer,
    overtake threads that have waited long, and the per-process p99 of writes went from
    0.2 s to 1.4 s at 16 connections. Uncontended, a turn is one lock and a counter; a thread
    that has to wait blocks on a lock of its own that the releasing thread hands over.
    """

    def __init__(self, count: int) -> None:
        self._mutex = threading.Lock()
        self._free = count
        self._waiting: collections.deque[Any] = collections.deque()

    def acquire(self, *, blocking: bool = True) -> bool:
        with self._mutex:
            if self._free and not self._waiting:
                self._free -= 1
                return True
            if not blocking:
                return False
            handed = threading.Lock()
            handed.acquire()
            self._waiting.append(handed)
        handed.acquire()  # released by the thread that hands this one its turn
        return True

    def release(self) -> None:
        with self._mutex:
            if self._waiting:
                self._waiting.popleft().release()  # the turn passes on, never freed
            else:
                self._free += 1

    @contextmanager
    def turn(self) -> Iterator[None]:
        if getattr(_held, "turns", None) is self:
            yield  # within a turn this thread already holds (a whole request's, say)
            return
        self.acquire()
        _held.turns = self
        try:
            yield
        finally:
            if _held.turns is self:  # not given back by a commit meanwhile
                self.give_back()

    def give_back(self) -> None:
        _held.turns = None
        self.release()


def waiting() -> None:
    """Before a wait that needs no CPU: the calling thread's turn, if it holds one, is given
    back; the thread goes on without one."""
    turns: Turns | None = getattr(_held, "turns", None)
    if turns is not None:
        turns.give_back()
