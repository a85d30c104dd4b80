"""State kept per running event loop: a process serves its sockets from one loop, and a
loop that ends (a test's, a worker's) takes its state with it."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Generic, ParamSpec, TypeVar

from asgiref.sync import SyncToAsync

T = TypeVar("T")
P = ParamSpec("P")


class PerLoop(Generic[T]):
    """One ``T`` per running event loop, made by ``factory`` on first use."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._made: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        found = self._made.get(loop)
        if found is None:
            found = self._made[loop] = self._factory()
        return found


_background_lock = threading.Lock()
_background: tuple[int, asyncio.AbstractEventLoop] | None = None


def background_loop() -> asyncio.AbstractEventLoop:
    """The process's own event loop, running on a daemon thread (made on first use, and again
    in a forked child, which has the parent's object but not its thread)."""
    global _background
    made = _background
    if made is None or made[0] != os.getpid():
        with _background_lock:
            made = _background
            if made is None or made[0] != os.getpid():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="loop", daemon=True)
                thread.start()
                made = _background = (os.getpid(), loop)
    return made[1]


def awaited(call: Callable[P, Coroutine[Any, Any, T]], timeout: float) -> Callable[P, T]:
    """``call`` made synchronous for sync code.

    Called from a thread that an event loop handed the work to (a view under ASGI), it runs on
    that loop, as ``async_to_sync`` would: the in-memory channel layer's queues belong to it.
    Called from a thread with no loop above it (a WSGI worker's), it runs on the process's
    background loop, not on a new loop in a new thread per call as ``async_to_sync`` would: a
    thread start per call, and the Redis channel layer, which keeps its connections per loop,
    opened and closed a connection per call. Either way the coroutine is handed to the loop
    with ``run_coroutine_threadsafe`` (``async_to_sync``'s context copying and executor
    cost a PATCH's broadcast about 4% of the request's CPU, for calls that need neither) and
    gives up after ``timeout`` seconds (``TimeoutError``).
    """

    async def bounded(*args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.wait_for(call(*args, **kwargs), timeout)

    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        if _running_here():
            # The loop would wait for this thread, which waits for the loop.
            raise RuntimeError("awaited() is for sync code, not a running event loop's thread")
        loop = _loop_above() or background_loop()
        future = asyncio.run_coroutine_threadsafe(bounded(*args, **kwargs), loop)
        try:
            return future.result(timeout + 1)  # (bounded gives up first)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(timeout) from None

    return run


def _running_here() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def _loop_above() -> asyncio.AbstractEventLoop | None:
    """The running event loop of this process that handed this thread its work, if any
    (``sync_to_async`` notes the loop in a thread-local, which ``async_to_sync`` reads to go
    back to it). The note outlives the loop: a thread that once ran such work keeps a closed
    loop there."""
    local = SyncToAsync.threadlocal
    loop: asyncio.AbstractEventLoop | None = getattr(local, "main_event_loop", None)
    if (
        loop is not None
        and loop.is_running()
        and getattr(local, "main_event_loop_pid", None) == os.getpid()
    ):
        return loop
    return None
